"""Inception blocks (Szegedy et al. 2015): 1x1, 3x3, 5x5 convolutions and a 3x3 max-pool side by side.
Introduced in notebooks/03_residual_inception.ipynb."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from labkit.core import LabError
from labkit.models.base import check_int


def conv_unit(
    c_in: int, c_out: int, k: int, batch_norm: bool = True, prefix: str = ""
) -> list[tuple[str, nn.Module]]:
    """The (name, module) pairs of `conv -> [bn] -> relu`, keeping the spatial size."""
    conv = nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=not batch_norm)
    bn: list[tuple[str, nn.Module]] = [(f"{prefix}bn", nn.BatchNorm2d(c_out))] if batch_norm else []
    return [(f"{prefix}conv", conv), *bn, (f"{prefix}relu", nn.ReLU())]


def _branch(*units: list[tuple[str, nn.Module]]) -> nn.Sequential:
    return nn.Sequential(OrderedDict(pair for unit in units for pair in unit))


class _Branches(nn.Module):
    """Runs the four branches on the same input and concatenates their outputs (N, out_channels, H, W)."""

    def forward(self, x):
        return torch.cat(
            [b(x) for b in (self.branch1x1, self.branch3x3, self.branch5x5, self.branch_pool)], dim=1
        )

    def extra_repr(self) -> str:
        return f"out_channels={self.out_channels}"


class NaiveInception(_Branches):
    """1x1, 3x3 and 5x5 convolutions (c1, c3, c5 output channels) and a 3x3 max-pool (stride 1) that
    passes the input channels through: (N, in_channels, H, W) -> (N, c1 + c3 + c5 + in_channels, H, W)."""

    def __init__(self, in_channels: int, c1: int, c3: int, c5: int, batch_norm: bool = True) -> None:
        super().__init__()
        for name, value in dict(in_channels=in_channels, c1=c1, c3=c3, c5=c5).items():
            check_int(name, value)
        self.config = dict(in_channels=in_channels, c1=c1, c3=c3, c5=c5, batch_norm=batch_norm)
        self.out_channels = c1 + c3 + c5 + in_channels
        self.branch1x1 = _branch(conv_unit(in_channels, c1, 1, batch_norm))
        self.branch3x3 = _branch(conv_unit(in_channels, c3, 3, batch_norm))
        self.branch5x5 = _branch(conv_unit(in_channels, c5, 5, batch_norm))
        self.branch_pool = nn.Sequential(OrderedDict(pool=nn.MaxPool2d(3, stride=1, padding=1)))


class InceptionBlock(_Branches):
    """GoogLeNet's inception module with the arguments of torchvision's `Inception`: (N, in_channels, H, W)
    -> (N, c1 + c3 + c5 + pool_proj, H, W). The 3x3 and 5x5 branches first reduce to `c3_reduce` and
    `c5_reduce` channels by a 1x1 conv; the pooling branch ends with a 1x1 conv to `pool_proj`."""

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
        sizes = dict(in_channels=in_channels, c1=c1, c3_reduce=c3_reduce, c3=c3, c5_reduce=c5_reduce, c5=c5)
        sizes["pool_proj"] = pool_proj
        for name, value in sizes.items():
            check_int(name, value)
        self.config = dict(sizes, batch_norm=batch_norm)
        self.out_channels = c1 + c3 + c5 + pool_proj
        c, bn = in_channels, batch_norm
        self.branch1x1 = _branch(conv_unit(c, c1, 1, bn))
        self.branch3x3 = _branch(conv_unit(c, c3_reduce, 1, bn, "reduce_"), conv_unit(c3_reduce, c3, 3, bn))
        self.branch5x5 = _branch(conv_unit(c, c5_reduce, 1, bn, "reduce_"), conv_unit(c5_reduce, c5, 5, bn))
        self.branch_pool = _branch(
            [("pool", nn.MaxPool2d(3, stride=1, padding=1))], conv_unit(c, pool_proj, 1, bn, "proj_")
        )

    @classmethod
    def with_width(cls, in_channels: int, out_channels: int, batch_norm: bool = True) -> InceptionBlock:
        """A block `out_channels` wide (a multiple of 8), split as GoogLeNet's 3a: 1/4, 1/2, 1/8 and 1/8 from
        the 1x1, 3x3, 5x5 and pooling branches, each reduction half as wide as the conv it feeds."""
        check_int("out_channels", out_channels)
        if out_channels % 8:
            raise LabError(f"out_channels={out_channels}: expected a multiple of 8 (an eighth per branch).")
        e = out_channels // 8
        return cls(in_channels, 2 * e, 2 * e, 4 * e, max(1, e // 2), e, e, batch_norm=batch_norm)
