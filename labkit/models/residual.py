"""Residual networks (He et al. 2016, "Deep Residual Learning for Image Recognition", CVPR).

Introduced in notebooks/03_residual_inception.ipynb.

A residual block computes `relu(F(x) + shortcut(x))`: the convolutions only have to learn the
difference `F` from the identity, and the gradient reaches earlier layers through the `+` unchanged.
When the block changes the shape (stride 2 or a different number of channels) the identity cannot
be added, so the shortcut becomes a *projection*: a 1x1 convolution (with that stride) and batch-norm.

Names follow torchvision (`conv1`, `bn1`, `layer1.0.conv1`, `layer2.0.downsample.0`, `fc`), so that
`resnet18()` here accepts torchvision's ImageNet weights as they are. torchvision calls the
projection shortcut `downsample`; `BasicBlock.shortcut` is the same module under a clearer name.
Unlike torchvision, each ReLU is its own non-inplace module (`relu1`, `relu2`), so that hooks
(feature maps, guided backpropagation) can tell them apart; ReLUs hold no weights, so state_dict
keys are unchanged.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from labkit.core import LabError

STEMS = ("imagenet", "small")


def _check_int(name: str, value, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise LabError(f"{name}={value!r}: expected an int >= {minimum}.")


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a shortcut around them: `relu(bn2(conv2(relu(bn1(conv1 x)))) + s(x))`.

    Args:
        in_channels: channels of the input.
        out_channels: channels of the output.
        stride: 1 keeps the spatial size, 2 halves it (applied by `conv1` and the shortcut).

    The shortcut `s` is the identity when the shape does not change (stride 1 and
    in_channels == out_channels); otherwise a projection: 1x1 conv (stride `stride`, no bias) + BN,
    stored as `downsample` (torchvision's name). `self.projection` says which one is used.

    Shapes: (N, in_channels, H, W) -> (N, out_channels, ceil(H / stride), ceil(W / stride)).
    Parameters: 9*in*out + 2*out (conv1, bn1) + 9*out*out + 2*out (conv2, bn2)
    + [in*out + 2*out if projection].
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        _check_int("in_channels", in_channels)
        _check_int("out_channels", out_channels)
        if stride not in (1, 2):
            raise LabError(f"stride={stride!r}: a basic block uses stride 1 (same size) or 2 (half size).")
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        # bias=False: a batch-norm follows, whose shift would cancel any conv bias.
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu2 = nn.ReLU()
        self.projection = stride != 1 or in_channels != out_channels
        self.downsample = (
            nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels))
            if self.projection
            else None
        )

    @property
    def shortcut(self) -> nn.Module:
        """The shortcut path: the projection (`downsample`) or an identity."""
        return self.downsample if self.downsample is not None else nn.Identity()

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)  # (N, out, H/s, W/s)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + identity)

    def extra_repr(self) -> str:
        return f"{self.in_channels} -> {self.out_channels}, stride={self.stride}, projection={self.projection}"


class ResNet(nn.Module):
    """A ResNet of basic blocks, for ImageNet-size (stem="imagenet") or small (stem="small") images.

    Args:
        num_classes: number of output classes (>= 2).
        blocks: basic blocks per stage, e.g. (2, 2, 2, 2) for ResNet-18.
        channels: output channels per stage, e.g. (64, 128, 256, 512); same length as `blocks`.
        stem: "imagenet": 7x7 conv stride 2 + 3x3 max-pool stride 2 (224 px -> 56 px), as in the
            paper; "small": one 3x3 conv stride 1 and no pooling, for 32-64 px images.
        in_channels: 3 for colour images.
        stem_channels: output channels of the stem (default: channels[0]).

    Every stage after the first starts with a stride-2 block (with a projection shortcut); the
    others keep the shape (identity shortcut). Then global average pooling (`avgpool`) and a
    linear classifier (`fc`).

    Shapes: (N, in_channels, H, W) -> (N, num_classes).
    """

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
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
            raise LabError(f"num_classes={num_classes!r}: a classifier needs an int >= 2.")
        blocks, channels = list(blocks), list(channels)
        if not blocks or any(not isinstance(b, int) or b < 1 for b in blocks):
            raise LabError(f"blocks={blocks!r}: expected a non-empty sequence of ints >= 1 (blocks per stage).")
        if len(channels) != len(blocks) or any(not isinstance(c, int) or c < 1 for c in channels):
            raise LabError(
                f"channels={channels!r}: expected one positive int per stage ({len(blocks)} stages, as in blocks)."
            )
        if stem not in STEMS:
            raise LabError(f"stem={stem!r}: expected one of {STEMS} ('small' for 32-64 px images).")
        _check_int("in_channels", in_channels)
        stem_channels = channels[0] if stem_channels is None else stem_channels
        _check_int("stem_channels", stem_channels)
        self.config = dict(
            num_classes=num_classes, blocks=blocks, channels=channels, stem=stem,
            in_channels=in_channels, stem_channels=stem_channels,
        )  # fmt: skip

        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, stem_channels, 7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        else:
            self.conv1 = nn.Conv2d(in_channels, stem_channels, 3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()  # small images: keep the resolution
        self.bn1 = nn.BatchNorm2d(stem_channels)
        self.relu = nn.ReLU()
        c_in = stem_channels
        for s, (n, c_out) in enumerate(zip(blocks, channels), start=1):
            stride = 1 if s == 1 else 2
            stage = [BasicBlock(c_in, c_out, stride)] + [BasicBlock(c_out, c_out) for _ in range(n - 1)]
            self.add_module(f"layer{s}", nn.Sequential(*stage))
            c_in = c_out
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c_in, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # He initialisation (fan-out, for ReLU), BN as identity: the same as torchvision's ResNet.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def stages(self) -> list[nn.Sequential]:
        """The residual stages `layer1`, `layer2`, ... in order."""
        return [getattr(self, f"layer{s}") for s in range(1, len(self.config["blocks"]) + 1)]

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # imagenet stem: (N, C, H/4, W/4)
        for stage in self.stages:
            x = stage(x)  # each stage after the first halves H and W
        return self.fc(self.flatten(self.avgpool(x)))  # (N, num_classes)

    @property
    def arch(self) -> dict:
        """What `labkit.models.build` needs to make this network again."""
        return {"name": "resnet", "kwargs": {k: (list(v) if isinstance(v, list) else v) for k, v in self.config.items()}}


def resnet18(num_classes: int = 1000, in_channels: int = 3) -> ResNet:
    """ImageNet-style ResNet-18: stem 7x7/2 + max-pool, stages of 2 basic blocks with 64-512 channels.

    Its state_dict has the same keys and shapes as `torchvision.models.resnet18()`, so
    `model.load_state_dict(torchvision_resnet18.state_dict())` works (11,689,512 parameters).
    """
    return ResNet(num_classes, blocks=(2, 2, 2, 2), channels=(64, 128, 256, 512), stem="imagenet", in_channels=in_channels)


def small_resnet(
    num_classes: int, channels: Sequence[int] = (16, 32, 64), blocks: Sequence[int] | None = None, in_channels: int = 3
) -> ResNet:
    """A ResNet for 32-64 px images: a 3x3 stem without pooling, then one stage per entry of `channels`
    (`blocks` basic blocks each; default one per stage)."""
    blocks = [1] * len(channels) if blocks is None else blocks
    return ResNet(num_classes, blocks=blocks, channels=channels, stem="small", in_channels=in_channels)


class ResNet9(nn.Module):
    """The fast CIFAR-10 ResNet of Page (2018, "How to train your ResNet"), built from `BasicBlock`s.

    A 3x3 stem (`prep`), then three stages; each starts with conv-BN-ReLU and a 2x2 max-pool that
    halves the resolution, and the first and last stages add a residual basic block at that
    resolution. Global max pooling and a linear classifier (`fc`) whose logits are scaled by
    `logit_scale` (Page's 1/8: it keeps early logits small, as a lower learning rate for the head
    would). Nine weight layers: 1 + 3 + 2 x 2 convolutions and `fc`.

    Args:
        num_classes: number of output classes (>= 2).
        channels: (stem, stage 1, stage 2, stage 3) channels; Page's are (64, 128, 256, 512).
        residual: which stages carry a basic block after their pooling.
        logit_scale: factor on the logits.

    Shapes: (N, 3, H, W) -> (N, num_classes); any H, W >= 8.
    """

    def __init__(
        self,
        num_classes: int,
        channels: Sequence[int] = (64, 128, 256, 512),
        residual: Sequence[bool] = (True, False, True),
        logit_scale: float = 0.125,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
            raise LabError(f"num_classes={num_classes!r}: a classifier needs an int >= 2.")
        channels, residual = list(channels), [bool(r) for r in residual]
        if len(channels) != 4 or any(not isinstance(c, int) or c < 1 for c in channels):
            raise LabError(f"channels={channels!r}: expected four positive ints (stem, stage 1, stage 2, stage 3).")
        if len(residual) != 3:
            raise LabError(f"residual={residual!r}: expected three booleans, one per stage.")
        self.config = dict(num_classes=num_classes, channels=channels, residual=residual,
                           logit_scale=float(logit_scale), in_channels=in_channels)  # fmt: skip
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
        x = self.prep(x)  # (N, c0, H, W)
        x = self.layer3(self.layer2(self.layer1(x)))  # (N, c3, H / 8, W / 8)
        return self.fc(self.flatten(self.pool(x))) * self.logit_scale  # (N, num_classes)

    @property
    def arch(self) -> dict:
        """What `labkit.models.build` needs to make this network again."""
        return {"name": "resnet9", "kwargs": {k: (list(v) if isinstance(v, list) else v) for k, v in self.config.items()}}


def _conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(OrderedDict(conv=nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                                     bn=nn.BatchNorm2d(c_out), relu=nn.ReLU()))  # fmt: skip
