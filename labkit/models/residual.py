"""Residual networks (He et al. 2016) with torchvision's layer names, so `resnet18()` takes its weights.
Introduced in notebooks/03_residual_inception.ipynb."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from labkit.core import LabError
from labkit.models.base import Rebuildable, check_int

STEMS = ("imagenet", "small")


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers and a shortcut: `relu(bn2(conv2(relu(bn1(conv1 x)))) + s(x))`,
    (N, in_channels, H, W) -> (N, out_channels, ceil(H / stride), ceil(W / stride)). Where the shape
    changes (`projection`), `s` is a 1x1 conv and BN, `downsample`; else the identity."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        check_int("in_channels", in_channels)
        check_int("out_channels", out_channels)
        if stride not in (1, 2):
            raise LabError(f"stride={stride!r}: a basic block uses stride 1 (same size) or 2 (half size).")
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        # bias=False: the batch-norm's shift that follows would cancel a conv bias
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu2 = nn.ReLU()
        self.projection = stride != 1 or in_channels != out_channels
        proj = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False) if self.projection else None
        self.downsample = None if proj is None else nn.Sequential(proj, nn.BatchNorm2d(out_channels))

    @property
    def shortcut(self) -> nn.Module:
        """The shortcut path: the projection (`downsample`) or an identity."""
        return self.downsample if self.downsample is not None else nn.Identity()

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)  # (N, out, H/s, W/s)
        out = self.relu1(self.bn1(self.conv1(x)))
        return self.relu2(self.bn2(self.conv2(out)) + identity)

    def extra_repr(self) -> str:
        return f"{self.in_channels} -> {self.out_channels}, stride={self.stride}"  # `downsample` shows itself


class ResNet(Rebuildable, nn.Module):
    """A ResNet of basic blocks, (N, in_channels, H, W) -> (N, num_classes): a stem ("imagenet": 7x7 conv
    and 3x3 max-pool, both stride 2; "small", for 32-64 px images: one 3x3 conv) to `stem_channels`, a
    stage of `blocks[i]` blocks to `channels[i]` per entry (after the first, each starts with stride 2),
    global average pooling (`avgpool`) and a linear classifier (`fc`)."""

    ARCH = "resnet"

    def __init__(
        self,
        num_classes: int,
        blocks: Sequence[int] = (2, 2, 2, 2),
        channels: Sequence[int] = (64, 128, 256, 512),
        stem: str = "imagenet",
        in_channels: int = 3,
        stem_channels: int | None = None,
    ) -> None:
        super().__init__()
        check_int("num_classes", num_classes, 2)
        blocks, channels = list(blocks), list(channels)
        if not blocks or any(not isinstance(b, int) or b < 1 for b in blocks):
            raise LabError(f"blocks={blocks!r}: expected a non-empty sequence of ints >= 1 per stage.")
        if len(channels) != len(blocks) or any(not isinstance(c, int) or c < 1 for c in channels):
            raise LabError(f"channels={channels!r}: expected one positive int per stage ({len(blocks)}).")
        if stem not in STEMS:
            raise LabError(f"stem={stem!r}: expected one of {STEMS} ('small' for 32-64 px images).")
        check_int("in_channels", in_channels)
        stem_channels = channels[0] if stem_channels is None else stem_channels
        check_int("stem_channels", stem_channels)
        self.config = dict(num_classes=num_classes, blocks=blocks, channels=channels, stem=stem)
        self.config.update(in_channels=in_channels, stem_channels=stem_channels)
        small = stem == "small"  # small images: a 3x3 conv and no pooling keep the resolution
        k, stride = (3, 1) if small else (7, 2)
        self.conv1 = nn.Conv2d(in_channels, stem_channels, k, stride=stride, padding=k // 2, bias=False)
        self.maxpool = nn.Identity() if small else nn.MaxPool2d(3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(stem_channels)
        self.relu = nn.ReLU()
        c_in = stem_channels
        for s, (n, c_out) in enumerate(zip(blocks, channels), start=1):
            stage = nn.Sequential(BasicBlock(c_in, c_out, 1 if s == 1 else 2))
            self.add_module(f"layer{s}", stage.extend(BasicBlock(c_out, c_out) for _ in range(n - 1)))
            c_in = c_out
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c_in, num_classes)
        # He initialisation (fan-out, for ReLU), BN as identity: as torchvision's ResNet
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # imagenet stem: (N, C, H/4, W/4)
        for s in range(1, len(self.config["blocks"]) + 1):
            x = getattr(self, f"layer{s}")(x)  # each stage after the first halves H and W
        return self.fc(self.flatten(self.avgpool(x)))  # (N, num_classes)


def resnet18(num_classes: int = 1000) -> ResNet:
    """ImageNet-style ResNet-18, with the state_dict keys and shapes of `torchvision.models.resnet18()`."""
    return ResNet(num_classes, (2, 2, 2, 2), (64, 128, 256, 512), "imagenet")


def small_resnet(
    num_classes: int, channels: Sequence[int] = (16, 32, 64), blocks: Sequence[int] | None = None
) -> ResNet:
    """A ResNet for 32-64 px images (`stem="small"`), of `blocks` basic blocks per stage (default one)."""
    blocks = [1] * len(channels) if blocks is None else blocks
    return ResNet(num_classes, blocks=blocks, channels=channels, stem="small")


class ResNet9(Rebuildable, nn.Module):
    """The fast CIFAR-10 ResNet of Page (2018), (N, 3, H, W) -> (N, num_classes): a 3x3 stem (`prep`), three
    stages of conv-BN-ReLU, 2x2 max-pool and (where `residual` says) a basic block, global max pooling and
    a linear classifier (`fc`), its logits scaled by `logit_scale` (as a lower learning rate for it would)."""

    ARCH = "resnet9"

    def __init__(
        self,
        num_classes: int,
        channels: Sequence[int] = (64, 128, 256, 512),
        residual: Sequence[bool] = (True, False, True),
        logit_scale: float = 0.125,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        check_int("num_classes", num_classes, 2)
        channels, residual = list(channels), [bool(r) for r in residual]
        if len(channels) != 4 or any(not isinstance(c, int) or c < 1 for c in channels):
            raise LabError(f"channels={channels!r}: expected four positive ints (stem and three stages).")
        if len(residual) != 3:
            raise LabError(f"residual={residual!r}: expected three booleans, one per stage.")
        self.config = dict(num_classes=num_classes, channels=channels, residual=residual)
        self.config.update(logit_scale=float(logit_scale), in_channels=in_channels)
        self.prep = _conv_bn_relu(in_channels, channels[0])
        for s, (c_in, c_out, res) in enumerate(zip(channels[:-1], channels[1:], residual), start=1):
            stage = _conv_bn_relu(c_in, c_out)
            stage.add_module("pool", nn.MaxPool2d(2))
            if res:
                stage.add_module("block", BasicBlock(c_out, c_out))
            self.add_module(f"layer{s}", stage)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(channels[-1], num_classes, bias=False)
        self.logit_scale = float(logit_scale)

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(self.prep(x))))  # (N, c3, H / 8, W / 8)
        return self.fc(self.flatten(self.pool(x))) * self.logit_scale  # (N, num_classes)


def _conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
    return nn.Sequential(OrderedDict(conv=conv, bn=nn.BatchNorm2d(c_out), relu=nn.ReLU()))
