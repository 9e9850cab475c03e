"""Checks a student runs after an exercise: each says what is right, or what is wrong and a hint.

    labkit.check.shape(out, (8, 64, 16, 16), "the residual block's output")
    labkit.check.params(block, 37_056, "ResidualBlock(32, 64, stride=2)")

A failed check raises `CheckFailed` (an AssertionError), so a graded notebook stops there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn


class CheckFailed(AssertionError):
    """An exercise's answer is not right yet; the message says how it differs."""


def _ok(message: str) -> None:
    print(f"✓ {message}")



def _fail(message: str, hint: str | None) -> None:
    raise CheckFailed(message + (f"\nHint: {hint}" if hint else ""))


def shape(value: Any, expected: Sequence[int], what: str = "the output", hint: str | None = None) -> None:
    """`value` (a tensor or array) has shape `expected`."""
    got = tuple(getattr(value, "shape", ()))
    if got != tuple(expected):
        _fail(f"{what} has shape {got}, expected {tuple(expected)}.", hint)
    return _ok(f"{what} has shape {got}.")


def params(model: nn.Module, expected: int, what: str = "the model", hint: str | None = None) -> None:
    """`model` has `expected` parameters (trainable or not)."""
    got = sum(p.numel() for p in model.parameters())
    if got != expected:
        _fail(f"{what} has {got:,} parameters, expected {expected:,} (difference {got - expected:+,}).",
              hint or "count weights and biases of every conv, batch-norm and linear layer.")
    return _ok(f"{what} has {got:,} parameters.")


def close(value: Any, expected: Any, what: str = "the value", atol: float = 1e-6, rtol: float = 1e-5,
          hint: str | None = None) -> None:
    """`value` equals `expected` within tolerances (numbers, arrays or tensors of the same shape)."""
    got = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value, dtype=float)
    want = np.asarray(expected.detach().cpu() if isinstance(expected, torch.Tensor) else expected, dtype=float)
    if got.shape != want.shape:
        _fail(f"{what} has shape {got.shape}, expected {want.shape}.", hint)
    if not np.allclose(got, want, atol=atol, rtol=rtol):
        worst = float(np.max(np.abs(got - want))) if got.size else 0.0
        _fail(f"{what} differs from the expected value (largest difference {worst:.3g}).", hint)
    return _ok(f"{what} is right.")


def equal(value: Any, expected: Any, what: str = "the value", hint: str | None = None) -> None:
    """`value == expected` (plain Python values)."""
    if value != expected:
        _fail(f"{what} is {value!r}, expected {expected!r}.", hint)
    return _ok(f"{what} is {value!r}.")


def at_least(value: float, threshold: float, what: str = "the value", hint: str | None = None) -> None:
    """`value >= threshold`."""
    if not value >= threshold:
        _fail(f"{what} is {value:.4g}, below the {threshold:.4g} this exercise asks for.", hint)
    return _ok(f"{what} is {value:.4g} (≥ {threshold:.4g}).")
