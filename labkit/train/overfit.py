"""The one-batch overfit test: a network that cannot memorise 32 images has a bug.

Introduced in notebooks/02_naive_cnn.ipynb (Karpathy's "overfit one batch" sanity check).
"""

from __future__ import annotations

import pandas as pd
import torch
from torch import nn

from labkit.core import LabError, pick_device
from labkit.train.predict import batch_to
from labkit.util import preserved


def overfit_one_batch(
    model: nn.Module, loader, *, steps: int = 200, lr: float = 1e-3, device: str | torch.device = "cpu"
) -> pd.DataFrame:
    """Train `model` on the first batch of `loader` only, and record loss and accuracy per step.

    The model trains in train mode (batch-norm uses the batch's statistics, as in real training),
    but its Dropout layers are switched off: dropout makes the loss noisy and keeps it from reaching
    zero, which would hide what this test asks ("can the network fit anything at all?"). Every
    module's mode is restored afterwards. The weights ARE changed: use a fresh model for training.

    Args:
        model: the network; trained in place with Adam.
        loader: only its first batch is used.
        steps: optimisation steps on that batch.
        lr: Adam's learning rate.
        device: where to train.

    Returns:
        DataFrame with columns step (from 1), loss, accuracy: the loss and accuracy of the batch as
        seen by the forward pass of that step (before its update).
    """
    if not isinstance(steps, int) or steps < 1:
        raise LabError(f"steps={steps!r}: expected a positive int, e.g. 200.")
    device = pick_device(device)
    x, y = batch_to(next(iter(loader)), device)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise LabError("the model has no trainable parameter (all requires_grad=False); unfreeze some first.")
    optimizer = torch.optim.Adam(params, lr=lr)
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
