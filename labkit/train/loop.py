"""`fit`, the series' training loop: early stopping, a checkpoint per epoch and exact resume.

Introduced in notebooks/02_naive_cnn.ipynb."""

from __future__ import annotations

import math
import os
import time
from typing import Any

import torch
from torch import nn

from labkit.core import LabError, pick_device
from labkit.progress import tqdm  # a live bar in Jupyter and terminals, the final state in headless runs
from labkit.train.checkpoint import cpu_state_dict, load_state, resume_hint, resume_training, save_training
from labkit.train.epoch import train_sums
from labkit.train.history import COLUMNS, SMOOTHING, History, Run
from labkit.train.optim import build_optimizer, build_scheduler
from labkit.train.predict import eval_sums, means
from labkit.train.world import OneProcess
from labkit.util import model_device, preserved


def fit(
    model: nn.Module,
    train_loader,
    val_loader,
    *,
    epochs: int,
    device: str | torch.device | None = None,
    optimizer: str | torch.optim.Optimizer = "adam",
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    scheduler: Any = None,
    label_smoothing: float = 0.0,
    patience: int | None = None,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    param_groups: list[dict] | None = None,
    restore_best: bool = True,
    channels_last: bool = False,
    amp: bool = False,
    world: OneProcess | None = None,
) -> History:
    """Train `model` in place for `epochs` epochs, each a pass over `train_loader` and one over `val_loader`
    (eval mode, no gradients), and return the History; every module's train/eval mode is restored.

    Early stopping watches the validation loss smoothed as `smooth` does, so that one noisy epoch does not
    decide: training stops after `patience` epochs without a new lowest value (None: never), and the best
    epoch's weights are restored (unless `restore_best=False`).

    Args:
        train_loader, val_loader: yield (images (N, C, H, W), targets (N,)); `val_loader` may be None.
            A shuffled loader should own a torch.Generator (`make_loaders`' do), which checkpoints save.
        device: "cpu", "cuda", "mps" or "auto"; None trains where the model is.
        optimizer, scheduler: names (`labkit.train.optim`), or a torch Optimizer and LRScheduler (or maker).
        checkpoint, resume: a file written after every epoch; `resume` goes on from it (same arguments,
            fresh model and loaders; on CPU, bit for bit the weights of an uninterrupted run).
        channels_last, amp: weights and batches channels-last; the forward pass in bfloat16 (autocast).
        world: the processes that train together (`labkit.train.world`); None: this one alone."""
    _check_args(epochs, patience, label_smoothing, val_loader, checkpoint, resume, world)
    world = world or OneProcess()
    device = model_device(model) if device is None else pick_device(device)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    fast = {"channels_last": channels_last, "amp": amp}  # memory layout and precision of the batches
    criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    opt = build_optimizer(optimizer, model, lr=lr, weight_decay=weight_decay, param_groups=param_groups)
    train_part, val_part = world.shard(train_loader, train=True), world.shard(val_loader, train=False)
    sched, per_batch = build_scheduler(scheduler, opt, epochs=epochs, steps_per_epoch=len(train_part))
    batch_sched, epoch_sched = (sched, None) if per_batch else (None, sched)  # stepped after each batch/epoch
    net = world.wrap(model)  # what the training pass calls: under torchrun, DistributedDataParallel(model)

    # What a resumed run must share with the run it continues, and the loaders whose generators it restores.
    schedule = scheduler if scheduler is None or isinstance(scheduler, str) else "custom"
    config = dict(epochs=epochs, optimizer=type(opt).__name__, scheduler=schedule, world_size=world.size)
    loaders = {"train": train_loader, "val": val_loader}
    run = Run()  # what is carried from epoch to epoch: history, early stopping, best weights
    if resume and checkpoint is not None:
        run = resume_training(checkpoint, model, opt, sched, loaders, config, world) or run

    show = progress and world.main
    epoch_bar = tqdm(total=epochs, initial=run.epoch, desc="fit", unit="epoch", disable=not show)
    with preserved(model), epoch_bar, resume_hint(checkpoint):
        for epoch in range(run.epoch + 1, epochs + 1):
            if run.stopped:
                break
            start, lr_now = time.perf_counter(), float(opt.param_groups[0]["lr"])
            world.start_epoch(epoch)
            if hasattr(train_part, "set_epoch"):  # a TensorLoader's alternating flips follow the epoch
                train_part.set_epoch(epoch)
            bar = {"desc": f"epoch {epoch}/{epochs}", "disable": not show}
            sums = train_sums(net, train_part, opt, criterion, device, batch_sched, bar, **fast)
            train_loss, train_acc = means(world.all_sum(sums), "train loader")  # over every process
            world.sync_buffers(model)
            if not math.isfinite(train_loss):
                raise LabError(
                    f"training diverged in epoch {epoch}: the train loss is {train_loss}. Lower the learning "
                    f"rate (lr={lr_now:g} now), or check the inputs are normalised."
                )
            val_loss = val_acc = math.nan
            if val_loader is not None:
                sums = eval_sums(model, val_part, criterion, device, **fast)
                val_loss, val_acc = means(world.all_sum(sums), "validation loader")
                # Early stopping on the smoothed loss, computed as labkit.train.history.smooth does.
                last = run.smooth
                run.smooth = val_loss if last is None else SMOOTHING * last + (1 - SMOOTHING) * val_loss
                if run.smooth < run.best:
                    run.best, run.best_epoch, run.bad = run.smooth, epoch, 0
                    run.best_weights = cpu_state_dict(model) if restore_best else None
                else:
                    run.bad += 1
            if epoch_sched is not None:
                epoch_sched.step()
            smoothed, seconds = math.nan if run.smooth is None else run.smooth, time.perf_counter() - start
            row = (epoch, train_loss, train_acc, val_loss, val_acc, smoothed, lr_now, seconds)
            run.rows.append(dict(zip(COLUMNS, row)))
            run.epoch = epoch
            run.stopped = patience is not None and run.bad >= patience and epoch < epochs
            if checkpoint is not None and world.main:
                save_training(checkpoint, run, model, opt, sched, loaders, config)
            epoch_bar.update(1)
            epoch_bar.set_postfix(
                train_loss=f"{train_loss:.3f}", val_loss=f"{val_loss:.3f}", val_acc=f"{val_acc:.3f}"
            )
    world.barrier()  # no process goes on before the main one has written the last checkpoint
    if run.best_weights is not None:
        load_state(model, run.best_weights, source="the best epoch's weights")
    return History.from_rows(run.rows, best_epoch=run.best_epoch, stopped_early=run.stopped)


def _check_args(epochs, patience, label_smoothing, val_loader, checkpoint, resume, world) -> None:
    """Raise a LabError for arguments `fit` cannot train with, before anything is trained."""
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise LabError(f"epochs={epochs!r}: expected a positive int, e.g. 10.")
    if patience is not None and (not isinstance(patience, int) or patience < 1):
        raise LabError(f"patience={patience!r}: expected None (no early stopping) or a positive int, e.g. 3.")
    if patience is not None and val_loader is None:
        raise LabError("patience needs a val_loader: early stopping watches the validation loss.")
    if not 0.0 <= float(label_smoothing) < 1.0:
        raise LabError(f"label_smoothing={label_smoothing!r}: expected a number in [0, 1), e.g. 0.1.")
    if resume and checkpoint is None:
        raise LabError("resume=True needs checkpoint=path: the file the interrupted run wrote.")
    if world is None and os.environ.get("WORLD_SIZE", "1") not in ("", "0", "1"):
        raise LabError(
            f"fit runs in one of WORLD_SIZE={os.environ['WORLD_SIZE']} processes (torchrun) but was given no "
            f"world, so each would train alone; pass world=course.distributed.join(device)[0]."
        )
