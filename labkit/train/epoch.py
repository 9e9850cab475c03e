"""One epoch of training: `train_one_epoch`, the plain loop of lab 02's exercise, and `train_sums`,
the same loop as `fit` runs it.

Introduced in notebooks/02_naive_cnn.ipynb.
"""

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


def train_sums(
    model: nn.Module,
    loader: Iterable,
    optimizer: torch.optim.Optimizer,
    criterion: nn.Module,
    device: torch.device,
    batch_scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    bar: dict | None = None,
    *,
    channels_last: bool = False,
    amp: bool = False,
) -> tuple[float, int, int]:
    """`train_one_epoch` as `fit` runs it, on `model` (or its DistributedDataParallel wrapper).

    Sums rather than means, so that the shares of several processes add up; they stay on the device
    until the end, as reading the loss after every batch (`.item()`) would make the CPU wait for a
    GPU at every step. Batch-norm layers whose parameters are all frozen stay in eval mode.

    Args:
        batch_scheduler: a learning-rate schedule stepped after every batch (one-cycle), or None.
        bar: tqdm's arguments for a bar over the batches (desc, disable); None: no bar.
        channels_last: store each batch (N, C, H, W) channels-last, as fit stores the weights.
        amp: run the forward pass in bfloat16 where it is safe (torch.autocast); the loss in float32.

    Returns:
        (summed loss, number correct, number seen) over the epoch.
    """
    train_mode(model)
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    seen = 0
    for batch in tqdm(loader, leave=False, **(bar or {"disable": True})):
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
