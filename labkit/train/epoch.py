"""One epoch of a plain training loop: the reference for lab 02's exercise, and what `fit` does for
every epoch before adding schedules, early stopping, checkpoints and progress bars.

Introduced in notebooks/02_naive_cnn.ipynb.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def train_one_epoch(model: nn.Module, batches: Iterable, optimizer: torch.optim.Optimizer,
                    device: str | torch.device | None = None, criterion: nn.Module | None = None) -> tuple[float, float]:
    """Train `model` for one pass over `batches` of (images (N, C, H, W), labels (N,)).

    Training mode; per batch: zero the gradients, logits, loss (cross-entropy, mean over the batch,
    unless `criterion` says otherwise), backward, optimiser step.

    Returns:
        (mean loss per image, accuracy) over the epoch, weighted by batch size.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    criterion = criterion or nn.CrossEntropyLoss()
    model.train()
    loss_sum, correct, seen = 0.0, 0, 0
    for x, y in batches:
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad()
        logits = model(x)  # (N, classes)
        loss = criterion(logits, y)
        loss.backward()
        optimizer.step()
        loss_sum += loss.item() * len(y)
        correct += (logits.argmax(dim=1) == y).sum().item()
        seen += len(y)
    if not seen:
        raise ValueError("train_one_epoch: `batches` is empty.")
    return loss_sum / seen, correct / seen
