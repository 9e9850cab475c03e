"""Model summaries: parameter counts, and Keras-style tables (layer, output shape, parameters) by torchinfo.
Introduced in notebooks/02_naive_cnn.ipynb."""

from __future__ import annotations

from typing import Any

import torch
import torchinfo
from torch import nn


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """The number of parameters (only those with `requires_grad` when `trainable_only`)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def summary(model: nn.Module, input_size: tuple[int, ...], depth: int = 3, verbose: int = 0, **kwargs: Any):
    """torchinfo's summary for inputs of `input_size` with the batch dimension, e.g. (1, 3, 64, 64): one
    row per layer with its output shape and parameter count; `.total_params` etc. as numbers."""
    device = next(model.parameters(), torch.empty(0)).device
    table: dict[str, Any] = dict(col_names=("output_size", "num_params"), row_settings=("var_names",))
    return torchinfo.summary(
        model, input_size, depth=depth, device=device, verbose=verbose, mode="eval", **table, **kwargs
    )
