"""The one-batch overfit test: a network that cannot memorise 32 images has a bug.

Introduced in notebooks/02_naive_cnn.ipynb (Karpathy's "overfit one batch" sanity check)."""

from __future__ import annotations

import pandas as pd
import torch
from torch import nn

from labkit.core import LabError, pick_device
from labkit.train.optim import trainable_params
from labkit.train.predict import batch_to
from labkit.util import preserved


def overfit_one_batch(
    model: nn.Module, loader, *, steps: int = 200, lr: float = 1e-3, device: str | torch.device = "cpu"
) -> pd.DataFrame:
    """Train `model` in place with Adam for `steps` steps on the first batch of `loader`; return a
    DataFrame of step (from 1), loss and accuracy, as each step's forward pass saw them. Train mode but
    without dropout, which would keep the loss from reaching zero; modes are restored, not weights."""
    if not isinstance(steps, int) or steps < 1:
        raise LabError(f"steps={steps!r}: expected a positive int, e.g. 200.")
    device = pick_device(device)
    x, y = batch_to(next(iter(loader)), device)
    model.to(device)
    optimizer = torch.optim.Adam(trainable_params(model), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    rows = []
    with preserved(model):
        model.train()
        for m in model.modules():
            if isinstance(m, nn.modules.dropout._DropoutNd):
                m.eval()
        for step in range(1, steps + 1):
            optimizer.zero_grad(set_to_none=True)
            logits = model(x)  # (B, K)
            loss = loss_fn(logits, y)
            loss.backward()
            optimizer.step()
            accuracy = (logits.argmax(1) == y).float().mean().item()
            rows.append({"step": step, "loss": loss.detach().item(), "accuracy": accuracy})
    return pd.DataFrame(rows, columns=["step", "loss", "accuracy"])
