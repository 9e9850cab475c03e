"""Architecture variants compared in lab 03, and the deep plain/residual twins behind the
gradient-norm experiment.

Introduced in notebooks/03_residual_inception.ipynb.

- `NaiveCNNVariant`: lab 02's `NaiveCNN` with one extra block (an inception block, a naive
  inception block or a residual block) appended to `features`, after the last stage; with
  `pool="stride"` the pooling layers are removed (each stage's last conv strides by 2 instead,
  the "all-convolutional" net of Springenberg et al. 2015); `pool=None` removes all downsampling.
  Layer names stay those of `NaiveCNN` (`features.conv1_1`, ..., `features.inception`, `pool`,
  `classifier.fc2`), so every later lab can address them the same way.
- `DeepNet`: a stem and `depth` blocks of two 3x3 convolutions at one resolution, with
  (`residual=True`) or without an identity shortcut around each block: twins with identical
  weights-shapes, differing only by the `+ x`.
- `gradient_norms`: the norm of the loss gradient at every convolution's weights, for one batch.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torch.nn import functional as F

from labkit.core import LabError
from labkit.models.inception import InceptionBlock, NaiveInception
from labkit.models.naive import NaiveCNN
from labkit.models.residual import BasicBlock

EXTRAS = ("inception", "naive_inception", "residual", None)
# Lab 03's defaults, smaller than NaiveCNN's own; any other NaiveCNN argument may be given.
VARIANT_DEFAULTS = {"channels": (16, 32, 64), "convs_per_stage": 1, "dropout": 0.2, "hidden": 0}


class NaiveCNNVariant(NaiveCNN):
    """`NaiveCNN` with an extra block after its last stage.

    Args:
        num_classes: number of output classes (>= 2).
        extra: "inception" (reduced inception block, `InceptionBlock.with_width`, as wide as the
            last stage), "naive_inception" (`NaiveInception` with c1 = c3 = c5 = last width / 4;
            it widens the output, the head follows), "residual" (a `BasicBlock` with identity
            shortcut) or None (no extra block: the plain naive CNN).
        **kwargs: `NaiveCNN`'s (channels, convs_per_stage, kernel_size, batch_norm, pool, dropout,
            hidden, in_channels; pool="stride" removes the pooling layers), defaults VARIANT_DEFAULTS.

    The block is `features.<extra>` (e.g. `features.inception`).
    Shapes: (N, in_channels, H, W) -> (N, num_classes).
    """

    def __init__(self, num_classes: int, extra: str | None = None, **kwargs) -> None:
        if extra not in EXTRAS:
            raise LabError(f"extra={extra!r}: expected one of {EXTRAS}.")
        super().__init__(num_classes, **{**VARIANT_DEFAULTS, **kwargs})
        channels, batch_norm = self.config["channels"], self.config["batch_norm"]
        width = channels[-1]
        if extra == "inception":
            if width % 8:
                raise LabError(f"channels={channels!r}: extra='inception' needs a last width divisible by 8.")
            block = InceptionBlock.with_width(width, width, batch_norm=batch_norm)
        elif extra == "naive_inception":
            if width % 4:
                raise LabError(f"channels={channels!r}: extra='naive_inception' needs a last width divisible by 4.")
            block = NaiveInception(width, width // 4, width // 4, width // 4, batch_norm=batch_norm)
        elif extra == "residual":
            block = BasicBlock(width, width)
        if extra is not None:
            self.features.add_module(extra, block)
            out = getattr(block, "out_channels", width)
            if out != width:  # the naive inception block widens the features: widen the head's input too
                fc1 = self.classifier.fc1
                self.classifier.fc1 = nn.Linear(out, fc1.out_features)
        self.config["extra"] = extra

    @property
    def arch(self) -> dict:
        """What `labkit.models.build` needs to make this network again."""
        return {"name": "naive_cnn_variant", "kwargs": dict(self.config)}


class DeepNet(nn.Module):
    """A deep stack of two-conv blocks at one resolution, plain or residual.

    Args:
        num_classes: number of output classes (>= 2).
        depth: number of blocks (each has two 3x3 convolutions): 2*depth + 1 conv layers in all.
        width: channels of every conv.
        residual: add the block input to its output (`relu(F(x) + x)`) — the residual twin.
        batch_norm: batch-norm after each conv (the gradient experiment uses False: without it a plain
            net's gradient fades layer by layer, which is what He et al. 2016 set out to cure).
        in_channels: 3 for colour images.

    Names: `stem` (conv, relu), `blocks.block{i}` (`conv1`, [`bn1`], `relu1`, `conv2`, [`bn2`], `relu2`),
    `pool`, `fc`. Default PyTorch initialisation.
    Shapes: (N, in_channels, H, W) -> (N, num_classes).
    """

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
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
            raise LabError(f"num_classes={num_classes!r}: a classifier needs an int >= 2.")
        for name, value in dict(depth=depth, width=width, in_channels=in_channels).items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise LabError(f"{name}={value!r}: expected an int >= 1.")
        self.config = dict(
            num_classes=num_classes, depth=depth, width=width, residual=bool(residual),
            batch_norm=bool(batch_norm), in_channels=in_channels,
        )  # fmt: skip
        self.stem = nn.Sequential(OrderedDict(conv=nn.Conv2d(in_channels, width, 3, padding=1), relu=nn.ReLU()))
        self.blocks = nn.Sequential(
            OrderedDict((f"block{i}", _TwinBlock(width, residual, batch_norm)) for i in range(1, depth + 1))
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))  # (N, width, H, W) all the way
        return self.fc(self.pool(x).flatten(1))

    @property
    def arch(self) -> dict:
        """What `labkit.models.build` needs to make this network again."""
        return {"name": "deep_net", "kwargs": dict(self.config)}


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
    """L2 norm of d(cross-entropy loss)/d(weight) for every convolution, input to output.

    Uses `torch.autograd.grad`, so nothing accumulates in the parameters' `.grad` and the model is
    left as it was (its train/eval mode is used as it is).

    Args:
        model: a classifier.
        x: a batch of images (N, C, H, W).
        target: class indices (N,).
    Returns:
        {conv module name: gradient norm}, in the order of `model.named_modules()`.
    """
    convs = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise LabError(f"{type(model).__name__} has no nn.Conv2d layer whose gradient could be measured.")
    loss = F.cross_entropy(model(x), target)
    grads = torch.autograd.grad(loss, [m.weight for _, m in convs])
    return {name: g.norm().item() for (name, _), g in zip(convs, grads)}
