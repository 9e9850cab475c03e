"""Optimisers, learning-rate schedules and the loss, by name, for `fit`.

Introduced in notebooks/02_naive_cnn.ipynb.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn
from torch.optim import lr_scheduler

from labkit.core import LabError

OPTIMIZERS = ("adam", "adamw", "sgd", "nesterov")
SCHEDULERS = (None, "cosine", "step", "onecycle", "linear")
# Named schedules whose shape depends on the number of epochs (a resume must keep `epochs`).
EPOCH_DEPENDENT = ("cosine", "step", "onecycle", "linear")
# Schedules stepped after every batch rather than after every epoch.
PER_BATCH = (lr_scheduler.OneCycleLR, lr_scheduler.CyclicLR)


def trainable_params(model: nn.Module, param_groups: Iterable | None = None) -> list:
    """What the optimiser updates: `param_groups` as given (lists of dicts, as torch takes them), or
    every parameter with `requires_grad` (a frozen backbone stays out of the optimiser)."""
    if param_groups is not None:
        groups = [dict(g, params=list(g["params"])) if isinstance(g, dict) else g for g in param_groups]
        if not groups:
            raise LabError("param_groups is empty; pass None to train every trainable parameter.")
        return groups
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise LabError("the model has no trainable parameter (all requires_grad=False); unfreeze some first.")
    return params


def norm_scaled_groups(model: nn.Module, lr: float, weight_decay: float, norm_lr_scale: float) -> list[dict]:
    """Two parameter groups: batch-norm parameters with `lr * norm_lr_scale`, all others with `lr`.

    A batch-norm shift is one number per channel that the whole channel moves with; airbench
    (Jordan 2024) trains them 64 times faster than the weights. Both groups decay by the same
    fraction per step (torch's SGD decays by lr * weight_decay), so the scaled group's weight decay
    is divided by the same factor. Frozen parameters are left out.
    """
    if not norm_lr_scale > 0:
        raise LabError(f"norm_lr_scale={norm_lr_scale!r}: expected a positive factor, e.g. 64 (1: no scaling).")
    norms = {id(p) for m in model.modules() if isinstance(m, nn.modules.batchnorm._NormBase) for p in m.parameters()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise LabError("the model has no trainable parameter (all requires_grad=False); unfreeze some first.")
    scaled = [p for p in trainable if id(p) in norms]
    others = [p for p in trainable if id(p) not in norms]
    groups = [{"params": others, "lr": lr, "weight_decay": weight_decay, "name": "weights"},
              {"params": scaled, "lr": lr * norm_lr_scale, "weight_decay": weight_decay / norm_lr_scale,
               "name": "batch_norm"}]  # fmt: skip
    return [g for g in groups if g["params"]]


def build_optimizer(
    optimizer: str | torch.optim.Optimizer,
    model: nn.Module,
    *,
    lr: float,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    param_groups: Iterable | None = None,
) -> torch.optim.Optimizer:
    """An optimiser by name: "adam", "adamw", "sgd" (with `momentum`) or "nesterov" (SGD with Nesterov
    momentum); an Optimizer instance is returned as it is (`lr`, `weight_decay` are then not used)."""
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer
    name = optimizer.lower() if isinstance(optimizer, str) else optimizer
    if name not in OPTIMIZERS:
        raise LabError(f"optimizer={optimizer!r} is not known; use one of {OPTIMIZERS} or a torch.optim.Optimizer.")
    params = trainable_params(model, param_groups)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=name == "nesterov")


def build_scheduler(
    scheduler: str | Callable | lr_scheduler.LRScheduler | None,
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int,
    steps_per_epoch: int,
) -> tuple[Any, bool]:
    """A learning-rate schedule and whether it is stepped per batch (True) or per epoch (False).

    - None: constant learning rate.
    - "cosine": cosine annealing from `lr` towards 0 over `epochs`, stepped per epoch
      (epoch e, from 1, trains with lr * (1 + cos(pi * (e - 1) / epochs)) / 2).
    - "step": divide by 10 after a third and after two thirds of `epochs`, stepped per epoch.
    - "onecycle": OneCycleLR with max_lr = each group's lr (warm-up over the first 30 % of the
      steps, then cosine down), stepped per batch.
    - "linear": airbench's schedule (Jordan 2024), stepped per batch: linear warm-up from lr / 5
      to lr over the first 23 % of the steps, then linear down to 0.07 * lr; momentum constant.
    - an LRScheduler instance, or a callable optimizer -> LRScheduler: stepped per epoch, except
      OneCycleLR and CyclicLR (per batch); ReduceLROnPlateau is stepped with the validation loss.
    """
    if scheduler is None:
        return None, False
    if isinstance(scheduler, str):
        if scheduler == "cosine":
            return lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs), False
        if scheduler == "step":
            return lr_scheduler.StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.1), False
        if scheduler == "onecycle":
            max_lr = [g["lr"] for g in optimizer.param_groups]
            return lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=epochs * steps_per_epoch), True
        if scheduler == "linear":
            max_lr = [g["lr"] for g in optimizer.param_groups]
            return lr_scheduler.OneCycleLR(
                optimizer, max_lr=max_lr, total_steps=epochs * steps_per_epoch, pct_start=0.23,
                anneal_strategy="linear", div_factor=5.0, final_div_factor=1 / (5.0 * 0.07), cycle_momentum=False,
            ), True  # fmt: skip
        raise LabError(f"scheduler={scheduler!r} is not known; use one of {SCHEDULERS}, an LRScheduler or a "
                       f"callable optimizer -> LRScheduler.")  # fmt: skip
    made = scheduler if isinstance(scheduler, (lr_scheduler.LRScheduler, lr_scheduler.ReduceLROnPlateau)) else None
    if made is None and callable(scheduler):
        made = scheduler(optimizer)
    if not isinstance(made, (lr_scheduler.LRScheduler, lr_scheduler.ReduceLROnPlateau)):
        raise LabError(f"scheduler={scheduler!r} did not give a torch LRScheduler; pass None, a name in "
                       f"{SCHEDULERS[1:]}, an LRScheduler, or a callable optimizer -> LRScheduler.")  # fmt: skip
    if made.optimizer is not optimizer:
        raise LabError("the scheduler was made for another optimizer; build it on the optimizer passed to fit.")
    return made, isinstance(made, PER_BATCH)


def build_criterion(
    label_smoothing: float = 0.0, class_weights: Any = None, device: torch.device | str = "cpu"
) -> nn.CrossEntropyLoss:
    """Cross-entropy with optional label smoothing and per-class weights.

    With weights w and smoothing eps over K classes, one sample of class y with log-probabilities
    log p costs  (1 - eps) * w_y * (-log p_y) + eps / K * sum_k w_k * (-log p_k), and the batch loss
    is the sum over samples divided by the sum of w_y (torch's "mean" reduction).
    """
    if not 0.0 <= float(label_smoothing) < 1.0:
        raise LabError(f"label_smoothing={label_smoothing!r}: expected a number in [0, 1), e.g. 0.1.")
    weight = None
    if class_weights is not None:
        weight = torch.as_tensor(class_weights, dtype=torch.float32)
        if weight.ndim != 1 or not torch.all(weight >= 0) or not torch.any(weight > 0):
            raise LabError(
                "class_weights must be one non-negative number per class (e.g. labkit.data.class_weights(...))."
            )
        weight = weight.to(device)
    return nn.CrossEntropyLoss(weight=weight, label_smoothing=float(label_smoothing))
