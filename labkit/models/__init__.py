"""Networks of the series: the naive CNN (lab 02), residual and inception blocks and small
ResNets (lab 03), pretrained backbones (lab 04), plus summaries and rebuilding from a checkpoint."""

from __future__ import annotations

from torch import nn

from labkit.env import LabError
from labkit.models.naive import NaiveCNN
from labkit.models.summary import count_params, summary

# name -> constructor; `build` and checkpoints use it. Other model files add their entries below.
ARCHITECTURES: dict[str, type[nn.Module]] = {"naive_cnn": NaiveCNN}


def build(arch: dict) -> nn.Module:
    """Make a network from its `arch` record ({"name": ..., "kwargs": {...}}), as saved in checkpoints."""
    name = arch.get("name") if isinstance(arch, dict) else None
    if name not in ARCHITECTURES:
        raise LabError(f"unknown architecture {name!r}; known: {sorted(ARCHITECTURES)}.")
    return ARCHITECTURES[name](**arch.get("kwargs", {}))


__all__ = ["ARCHITECTURES", "NaiveCNN", "build", "count_params", "summary"]
