"""The architecture variants lab 03 compares, and the deep plain/residual twins of its gradient experiment.
Introduced in notebooks/03_residual_inception.ipynb."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torch.nn import functional as F

from labkit.core import LabError
from labkit.models.base import Rebuildable, check_int
from labkit.models.inception import InceptionBlock, NaiveInception
from labkit.models.naive import NaiveCNN
from labkit.models.residual import BasicBlock

EXTRAS = ("inception", "naive_inception", "residual", None)
# lab 03's defaults, smaller than NaiveCNN's own
VARIANT_DEFAULTS = {"channels": (16, 32, 64), "convs_per_stage": 1, "dropout": 0.2, "hidden": 0}


class NaiveCNNVariant(NaiveCNN):
    """`NaiveCNN` (with `kwargs`, defaults VARIANT_DEFAULTS) and one more block `features.<extra>` after
    its last stage: "inception" (`InceptionBlock.with_width`), "naive_inception" (`NaiveInception` with
    c1 = c3 = c5 = width / 4; it widens the head's input), "residual" (a `BasicBlock`) or None."""

    ARCH = "naive_cnn_variant"

    def __init__(self, num_classes: int, extra: str | None = None, **kwargs) -> None:
        if extra not in EXTRAS:
            raise LabError(f"extra={extra!r}: expected one of {EXTRAS}.")
        super().__init__(num_classes, **{**VARIANT_DEFAULTS, **kwargs})
        channels, batch_norm = self.config["channels"], self.config["batch_norm"]
        width = channels[-1]
        divisor = {"inception": 8, "naive_inception": 4}.get(extra or "", 1)
        if width % divisor:
            raise LabError(f"channels={channels!r}: extra={extra!r} needs a width divisible by {divisor}.")
        if extra == "inception":
            self.features.add_module(extra, InceptionBlock.with_width(width, width, batch_norm=batch_norm))
        elif extra == "naive_inception":
            block = NaiveInception(width, width // 4, width // 4, width // 4, batch_norm=batch_norm)
            self.features.add_module(extra, block)
            self.classifier.fc1 = nn.Linear(block.out_channels, self.config["hidden"] or num_classes)
        elif extra == "residual":
            self.features.add_module(extra, BasicBlock(width, width))
        self.config["extra"] = extra


class DeepNet(Rebuildable, nn.Module):
    """A stem, `depth` blocks of two 3x3 convolutions with (`residual`) or without the shortcut `+ x`, `pool`
    and `fc`: (N, in_channels, H, W) -> (N, num_classes). Without batch-norm, a plain one's gradient fades."""

    ARCH = "deep_net"

    def __init__(
        self,
        num_classes: int,
        depth: int = 20,
        width: int = 16,
        residual: bool = False,
        batch_norm: bool = False,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        check_int("num_classes", num_classes, 2)
        for name, value in dict(depth=depth, width=width, in_channels=in_channels).items():
            check_int(name, value)
        self.config = dict(num_classes=num_classes, depth=depth, width=width, residual=bool(residual))
        self.config.update(batch_norm=bool(batch_norm), in_channels=in_channels)
        conv = nn.Conv2d(in_channels, width, 3, padding=1)
        self.stem = nn.Sequential(OrderedDict(conv=conv, relu=nn.ReLU()))
        self.blocks = nn.Sequential()
        for i in range(1, depth + 1):
            self.blocks.add_module(f"block{i}", _TwinBlock(width, residual, batch_norm))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))  # (N, width, H, W) all the way
        return self.fc(self.pool(x).flatten(1))


class _TwinBlock(nn.Module):
    """conv-[bn]-relu-conv-[bn], then `+ x` when residual, then relu."""

    def __init__(self, width: int, residual: bool, batch_norm: bool) -> None:
        super().__init__()
        self.residual = residual
        self.conv1 = nn.Conv2d(width, width, 3, padding=1, bias=not batch_norm)
        self.bn1 = nn.BatchNorm2d(width) if batch_norm else nn.Identity()
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=not batch_norm)
        self.bn2 = nn.BatchNorm2d(width) if batch_norm else nn.Identity()
        self.relu2 = nn.ReLU()

    def forward(self, x):
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(out + x if self.residual else out)

    def extra_repr(self) -> str:
        return f"residual={self.residual}"


def gradient_norms(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """{name: L2 norm of d(cross-entropy of model(x) (N, C, H, W) and target (N,))/d(weight)} of every
    convolution, input side first; nothing accumulates in `.grad`."""
    convs = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise LabError(f"{type(model).__name__} has no nn.Conv2d layer whose gradient could be measured.")
    grads = torch.autograd.grad(F.cross_entropy(model(x), target), [m.weight for _, m in convs])
    return {name: g.norm().item() for (name, _), g in zip(convs, grads)}
