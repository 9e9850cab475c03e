"""Inception blocks (Szegedy et al. 2015, "Going Deeper with Convolutions", CVPR; GoogLeNet).

Introduced in notebooks/03_residual_inception.ipynb.

An inception block looks at the same input with several filter sizes at once: parallel branches
(1x1, 3x3, 5x5 convolutions and a 3x3 max-pool, all keeping the spatial size) whose outputs are
concatenated along the channel axis.

- `NaiveInception`: the four branches as they are. The pooling branch passes all input channels
  through, so the output always has more channels than the input, and the 5x5 convolutions on
  many channels are expensive.
- `InceptionBlock` (the paper's "dimension reductions" version, used in GoogLeNet): 1x1
  convolutions shrink the channels before the 3x3 and 5x5 convolutions and after the pooling,
  which cuts parameters and computation and lets the block set its output width.

Every convolution is followed by batch-norm (not in the 2015 paper, added in Inception-v2; it
makes these small nets train fast) and a non-inplace ReLU. With `batch_norm=False` the
convolutions carry a bias instead.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from labkit.core import LabError


def _check_int(name: str, value, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise LabError(f"{name}={value!r}: expected an int >= {minimum}.")


def conv_unit(in_channels: int, out_channels: int, kernel_size: int, batch_norm: bool = True, prefix: str = ""):
    """(name, module) pairs of one `conv -> [bn] -> relu` unit that keeps the spatial size.

    Parameters: k*k*in*out + (2*out with batch-norm, else out for the conv bias).
    """
    units = [(f"{prefix}conv", nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=not batch_norm))]
    if batch_norm:
        units.append((f"{prefix}bn", nn.BatchNorm2d(out_channels)))
    units.append((f"{prefix}relu", nn.ReLU()))
    return units


class _Branches(nn.Module):
    """Runs `branch1x1`, `branch3x3`, `branch5x5`, `branch_pool` on the same input and concatenates."""

    BRANCHES = ("branch1x1", "branch3x3", "branch5x5", "branch_pool")

    def forward(self, x):
        # each branch keeps H and W, so the outputs stack along the channel axis: (N, out_channels, H, W)
        return torch.cat([getattr(self, b)(x) for b in self.BRANCHES], dim=1)


class NaiveInception(_Branches):
    """The naive inception block: 1x1, 3x3 and 5x5 convolutions and a 3x3 max-pool, concatenated.

    Args:
        in_channels: channels of the input.
        c1: output channels of the 1x1 branch.
        c3: output channels of the 3x3 branch.
        c5: output channels of the 5x5 branch.
        batch_norm: batch-norm after every convolution (else conv bias).

    Shapes: (N, in_channels, H, W) -> (N, c1 + c3 + c5 + in_channels, H, W); the pooling branch
    passes the input channels through unchanged (3x3 max-pool, stride 1, padding 1).
    Parameters (batch_norm=True): (1*in + 2)*c1 + (9*in + 2)*c3 + (25*in + 2)*c5.
    """

    def __init__(self, in_channels: int, c1: int, c3: int, c5: int, batch_norm: bool = True) -> None:
        super().__init__()
        for name, value in dict(in_channels=in_channels, c1=c1, c3=c3, c5=c5).items():
            _check_int(name, value)
        self.config = dict(in_channels=in_channels, c1=c1, c3=c3, c5=c5, batch_norm=batch_norm)
        self.out_channels = c1 + c3 + c5 + in_channels
        self.branch1x1 = nn.Sequential(OrderedDict(conv_unit(in_channels, c1, 1, batch_norm)))
        self.branch3x3 = nn.Sequential(OrderedDict(conv_unit(in_channels, c3, 3, batch_norm)))
        self.branch5x5 = nn.Sequential(OrderedDict(conv_unit(in_channels, c5, 5, batch_norm)))
        self.branch_pool = nn.Sequential(OrderedDict(pool=nn.MaxPool2d(3, stride=1, padding=1)))

    def extra_repr(self) -> str:
        return f"out_channels={self.out_channels}"


class InceptionBlock(_Branches):
    """The inception block with 1x1 dimension reductions (GoogLeNet's "inception module").

    Args:
        in_channels: channels of the input.
        c1: output channels of the 1x1 branch.
        c3_reduce, c3: the 3x3 branch: a 1x1 conv to `c3_reduce` channels, then a 3x3 conv to `c3`.
        c5_reduce, c5: the 5x5 branch: a 1x1 conv to `c5_reduce` channels, then a 5x5 conv to `c5`.
        pool_proj: the pooling branch: 3x3 max-pool (stride 1), then a 1x1 conv to `pool_proj`.
        batch_norm: batch-norm after every convolution (else conv bias).

    Argument names and order follow torchvision's `Inception` module of GoogLeNet
    (e.g. inception 3a: 192 -> 64, 96, 128, 16, 32, 32 = 256 channels).

    Shapes: (N, in_channels, H, W) -> (N, c1 + c3 + c5 + pool_proj, H, W).
    Parameters (batch_norm=True): (in + 2)*c1 + (in + 2)*c3_reduce + (9*c3_reduce + 2)*c3
    + (in + 2)*c5_reduce + (25*c5_reduce + 2)*c5 + (in + 2)*pool_proj.
    """

    def __init__(
        self,
        in_channels: int,
        c1: int,
        c3_reduce: int,
        c3: int,
        c5_reduce: int,
        c5: int,
        pool_proj: int,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        sizes = dict(in_channels=in_channels, c1=c1, c3_reduce=c3_reduce, c3=c3, c5_reduce=c5_reduce, c5=c5, pool_proj=pool_proj)
        for name, value in sizes.items():
            _check_int(name, value)
        self.config = dict(sizes, batch_norm=batch_norm)
        self.out_channels = c1 + c3 + c5 + pool_proj
        self.branch1x1 = nn.Sequential(OrderedDict(conv_unit(in_channels, c1, 1, batch_norm)))
        self.branch3x3 = nn.Sequential(
            OrderedDict(conv_unit(in_channels, c3_reduce, 1, batch_norm, "reduce_") + conv_unit(c3_reduce, c3, 3, batch_norm))
        )
        self.branch5x5 = nn.Sequential(
            OrderedDict(conv_unit(in_channels, c5_reduce, 1, batch_norm, "reduce_") + conv_unit(c5_reduce, c5, 5, batch_norm))
        )
        self.branch_pool = nn.Sequential(
            OrderedDict([("pool", nn.MaxPool2d(3, stride=1, padding=1))] + conv_unit(in_channels, pool_proj, 1, batch_norm, "proj_"))
        )

    @classmethod
    def with_width(cls, in_channels: int, out_channels: int, batch_norm: bool = True) -> InceptionBlock:
        """A reduced block of a given output width, split like GoogLeNet's 3a: 1/4 of the channels
        from the 1x1 branch, 1/2 from the 3x3, 1/8 from the 5x5, 1/8 from the pooling branch; the
        1x1 reductions are half as wide as the 3x3 and 5x5 convolutions they feed (at least 1).

        `out_channels` must be a multiple of 8.
        """
        _check_int("out_channels", out_channels)
        if out_channels % 8:
            raise LabError(f"out_channels={out_channels}: expected a multiple of 8 (the branches split it in eighths).")
        e = out_channels // 8
        return cls(in_channels, 2 * e, max(1, 2 * e), 4 * e, max(1, e // 2), e, e, batch_norm=batch_norm)

    def extra_repr(self) -> str:
        return f"out_channels={self.out_channels}"
