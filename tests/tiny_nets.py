"""Tiny float64 networks with known weights, and a forward pass that breaks on purpose, for the tests
of labkit.interpret's newer techniques (occlusion, deletion curves, sanity checks, fooling images)."""

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
from torch import nn


def tiny_cnn(seed: int = 0, num_classes: int = 4, pooled: int = 2) -> nn.Module:
    """conv-BN-ReLU-pool-conv-ReLU-pool-linear in float64 and eval mode, batch-norm with non-trivial
    running statistics; `pooled` is the side of the last pooling's output."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(pooled), nn.Flatten(),
        nn.Linear(8 * pooled * pooled, num_classes),
    ).double()  # fmt: skip
    with torch.no_grad():
        model[1].running_mean.uniform_(-0.2, 0.2)
        model[1].running_var.uniform_(0.5, 1.5)
    return model.eval()


def linear_model(weights: torch.Tensor, bias: float = 0.0) -> nn.Module:
    """Two classes on images shaped like `weights` (C, H, W): logits = [sum(weights * x) + bias, 0]."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(weights.numel(), 2)).double()
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].weight[0] = weights.flatten()
        model[1].bias.copy_(torch.tensor([bias, 0.0]))
    return model.eval()


@contextmanager
def breaks_in_the_middle(model: nn.Module, after: int) -> Iterator[None]:
    """Put `tiny_cnn` in a mixed state (module 3 training, the first conv's weight frozen), make its
    second conv raise RuntimeError("injected") from forward call `after + 1` on, and check, once
    the block has seen that error, that the model came back in that same state with no hook left."""
    model[3].train()
    model[0].weight.requires_grad_(False)
    calls = []

    def boom(module, args, output):
        calls.append(1)
        if len(calls) > after:
            raise RuntimeError("injected")

    handle = model[4].register_forward_hook(boom)
    try:
        with pytest.raises(RuntimeError, match="injected"):
            yield
    finally:
        handle.remove()
    assert [m.training for m in model] == [m is model[3] for m in model]
    assert [p.requires_grad for p in model.parameters()][:2] == [False, True]
    assert not any(m._forward_hooks or m._backward_hooks for m in model.modules())
