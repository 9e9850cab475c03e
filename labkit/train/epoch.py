"""One epoch of training: `train_one_epoch`, lab 02's exercise, and `train_sums`, as `fit` runs it.

Introduced in notebooks/02_naive_cnn.ipynb."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from labkit.models.freezing import train_mode
from labkit.progress import tqdm  # a live bar in Jupyter and terminals, the final state in headless runs
from labkit.train.predict import batch_to


def train_one_epoch(
    model: nn.Module,
    batches: Iterable,
    optimizer: torch.optim.Optimizer,
    device: str | torch.device | None = None,
    criterion: nn.Module | None = None,
) -> tuple[float, float]:
    """Train `model` (train mode) for one pass over `batches` of (images (N, C, H, W), labels (N,)):
    per batch, zero the gradients, logits, loss (cross-entropy by default), backward, optimiser step.
    Returns (mean loss per image, accuracy) over the epoch."""
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


def train_sums(
    model: nn.Module,
    loader: Iterable,
    optimizer: torch.optim.Optimizer,
    criterion: nn.Module,
    device: torch.device,
    batch_scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    bar: dict,
    *,
    channels_last: bool = False,
    amp: bool = False,
) -> tuple[float, int, int]:
    """(summed loss, number correct, number seen) of a training epoch of `model` (or its DDP wrapper): sums,
    so that processes' shares add up, kept on the device (no wait for the GPU at every batch). Frozen
    batch-norm layers stay in eval mode; `bar` holds tqdm's arguments (desc, disable)."""
    train_mode(model)
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    seen = 0
    for batch in tqdm(loader, leave=False, **bar):
        x, y = batch_to(batch, device, channels_last)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(x)  # (N, K)
        loss = criterion(logits.float(), y)
        loss.backward()
        optimizer.step()
        if batch_scheduler is not None:
            batch_scheduler.step()
        total_loss += loss.detach() * len(y)
        correct += (logits.argmax(1) == y).sum()
        seen += len(y)
    return float(total_loss), int(correct), seen
