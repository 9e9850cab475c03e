"""Optimisers and learning-rate schedules by name, for `fit`.

Introduced in notebooks/02_naive_cnn.ipynb."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

import torch
from torch import nn
from torch.optim import lr_scheduler

from labkit.core import LabError

OPTIMIZERS = ("adam", "adamw", "sgd", "nesterov")
MOMENTUM = 0.9  # of "sgd" and "nesterov"
SCHEDULERS = (None, "cosine", "step", "onecycle", "linear")
EPOCH_DEPENDENT = ("cosine", "step", "onecycle", "linear")  # laid out over `epochs`: a resume must keep it
CUSTOM = "an LRScheduler, or a callable optimizer -> LRScheduler"
PER_BATCH = (lr_scheduler.OneCycleLR, lr_scheduler.CyclicLR)  # stepped after every batch, not every epoch


def trainable_params(model: nn.Module, param_groups: Iterable | None = None) -> list:
    """What the optimiser updates: `param_groups` as given (dicts, as torch takes them), or every
    parameter with `requires_grad` (a frozen backbone stays out of the optimiser)."""
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
    """Two groups of the trainable parameters: batch-norm ones with `lr * norm_lr_scale`, others with `lr`.

    A batch-norm shift moves a whole channel; airbench trains them 64 times faster. Their weight decay
    is divided by the factor, so both groups decay by the same fraction per step (lr * weight_decay)."""
    if not norm_lr_scale > 0:
        raise LabError(f"norm_lr_scale={norm_lr_scale!r}: expected a positive factor, e.g. 64 (1: none).")
    norm_layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._NormBase)]
    norms = {id(p) for m in norm_layers for p in m.parameters()}
    trainable = trainable_params(model)
    scaled = [p for p in trainable if id(p) in norms]
    others = [p for p in trainable if id(p) not in norms]
    scaled_lr = {"lr": lr * norm_lr_scale, "weight_decay": weight_decay / norm_lr_scale}
    groups = [
        {"params": others, "lr": lr, "weight_decay": weight_decay, "name": "weights"},
        {"params": scaled, **scaled_lr, "name": "batch_norm"},
    ]
    return [g for g in groups if g["params"]]


def freeze_after(optimizer: torch.optim.Optimizer, params: Iterable[nn.Parameter], steps: int) -> None:
    """Let `optimizer` update `params` for its first `steps` steps only, then never again.

    airbench trains its whitening stem's bias for the first 3 epochs and then freezes it. Dropping the
    gradient before each later step, rather than setting `requires_grad=False`, keeps momentum and weight
    decay from moving them too (torch's optimisers skip a parameter whose grad is None) and works the
    same under DistributedDataParallel. The count lives in the optimiser's state, so checkpoints keep it."""
    params = list(params)
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        raise LabError(
            f"steps={steps!r}: expected a number of optimiser steps >= 0 (0: frozen from the start)."
        )
    owned = {id(p) for g in optimizer.param_groups for p in g["params"]}
    if not params or any(id(p) not in owned for p in params):
        raise LabError("freeze_after needs parameters the optimiser updates (in one of its param_groups).")

    def drop_late_gradients(opt, args, kwargs):
        for p in params:
            state = opt.state[p]
            state["steps_before_freeze"] = seen = int(state.get("steps_before_freeze", 0)) + 1
            if seen > steps:
                p.grad = None

    optimizer.register_step_pre_hook(drop_late_gradients)


def build_optimizer(
    optimizer: str | torch.optim.Optimizer,
    model: nn.Module,
    *,
    lr: float,
    weight_decay: float = 0.0,
    momentum: float = MOMENTUM,
    param_groups: Iterable | None = None,
) -> torch.optim.Optimizer:
    """An optimiser by name: "adam", "adamw", "sgd" (with `momentum`) or "nesterov" (SGD with Nesterov
    momentum); an Optimizer instance is returned as it is (`lr`, `weight_decay` are then not used)."""
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer
    name = optimizer.lower() if isinstance(optimizer, str) else optimizer
    if name not in OPTIMIZERS:
        raise LabError(f"optimizer={optimizer!r} is not known; use one of {OPTIMIZERS} or a torch Optimizer.")
    params = trainable_params(model, param_groups)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    nesterov = name == "nesterov"
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)


def build_scheduler(
    scheduler: str | Callable | lr_scheduler.LRScheduler | None,
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int,
    steps_per_epoch: int,
) -> tuple[Any, bool]:
    """A learning-rate schedule and whether it is stepped per batch (True) or per epoch (False).

    - None: constant; "cosine": annealed towards 0 over `epochs`; "step": divided by 10 after a third and
      after two thirds of `epochs` (both stepped per epoch).
    - "onecycle": OneCycleLR up to each group's lr, per batch; "linear": airbench's, per batch, from lr / 5
      up to lr over 23 % of the steps, then linearly down to 0.07 * lr (momentum constant).
    - an LRScheduler, or a callable optimizer -> LRScheduler: per epoch, except OneCycleLR and
      CyclicLR. ReduceLROnPlateau is refused: `fit` steps schedules without the validation loss."""
    if scheduler is None:
        return None, False
    if isinstance(scheduler, str):
        if scheduler not in SCHEDULERS:
            raise LabError(f"scheduler={scheduler!r} is not known; use one of {SCHEDULERS} or {CUSTOM}.")
        if scheduler == "cosine":
            return lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs), False
        if scheduler == "step":
            return lr_scheduler.StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.1), False
        if steps_per_epoch < 1:
            raise LabError(f"scheduler={scheduler!r} steps after every batch, but the train loader has none.")
        max_lr, total = [g["lr"] for g in optimizer.param_groups], epochs * steps_per_epoch
        cycle = partial(lr_scheduler.OneCycleLR, optimizer, max_lr=max_lr, total_steps=total)
        if scheduler == "onecycle":
            return cycle(), True
        # airbench's: from lr / 5 up to lr, then down to lr / 5 / final_div_factor = 0.07 * lr.
        return cycle(
            pct_start=0.23,
            anneal_strategy="linear",
            cycle_momentum=False,
            div_factor=5.0,
            final_div_factor=1 / (5.0 * 0.07),
        ), True
    made = scheduler if isinstance(scheduler, lr_scheduler.LRScheduler) else None
    if made is None and callable(scheduler):
        made = scheduler(optimizer)
    if not isinstance(made, lr_scheduler.LRScheduler) or isinstance(made, lr_scheduler.ReduceLROnPlateau):
        raise LabError(
            f"scheduler={scheduler!r} did not give a torch LRScheduler that steps on its own "
            f"(ReduceLROnPlateau needs the validation loss); pass one of {SCHEDULERS} or {CUSTOM}."
        )
    if made.optimizer is not optimizer:
        raise LabError("the scheduler was made for another optimizer; build it on the one passed to fit.")
    return made, isinstance(made, PER_BATCH)
