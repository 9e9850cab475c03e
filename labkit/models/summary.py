"""Keras-style model summaries (layer, output shape, parameters) through torchinfo."""

from __future__ import annotations

import torch
from torch import nn


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (only those with `requires_grad` when `trainable_only`)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def summary(model: nn.Module, input_size: tuple[int, ...], depth: int = 3, verbose: int = 0, **kwargs):
    """torchinfo summary: one row per layer with output shape and parameter count.

    Args:
        input_size: including the batch dimension, e.g. (1, 3, 64, 64).
    Returns:
        torchinfo's ModelStatistics (prints as a table; `.total_params` etc. as numbers).
    """
    import torchinfo  # imported here: only summaries need it

    device = next(model.parameters(), torch.empty(0)).device
    return torchinfo.summary(
        model,
        input_size=input_size,
        depth=depth,
        device=device,
        verbose=verbose,
        col_names=("output_size", "num_params"),
        row_settings=("var_names",),
        mode="eval",
        **kwargs,
    )
