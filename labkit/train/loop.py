"""`fit`: the training loop of the series, with early stopping, checkpoints and exact resume.

Introduced in notebooks/02_naive_cnn.ipynb. One epoch = one pass over `train_loader` (train mode,
one optimiser step per batch) followed by one pass over `val_loader` (eval mode, no gradients).

Early stopping and "best" weights use the smoothed validation loss
    s_1 = v_1,    s_t = smoothing * s_{t-1} + (1 - smoothing) * v_t
(column `val_loss_smooth`): the validation loss of a small set is noisy, and smoothing keeps one
lucky or unlucky epoch from deciding. The best epoch is the one with the lowest s_t; training stops
after `patience` epochs without a new lowest s_t, and the weights of the best epoch are restored
(`restore_best`), so `History.best_epoch` and `History.best_val_acc` describe the returned model.
Because s_t lags, the best epoch can come a little after the epoch of the lowest raw loss.

Checkpoint and exact resume: with `checkpoint=path`, the state at the end of every epoch is written
to `path` atomically (temporary file beside it, then `os.replace`), so an interruption, even one
during the write, leaves the previous complete checkpoint. It holds the model, the optimiser, the
schedule, the early-stopping state, the history, the best weights and the state of every random
generator the next epoch will draw from (Python, numpy, torch CPU and CUDA, and the torch.Generators
of the loaders and their samplers; see `labkit.train.rng`). `fit(..., resume=True)` with the same
arguments, a freshly built model and freshly made loaders continues after the last finished epoch,
and on CPU ends with the same weights, bit for bit, as a run that was never interrupted (with
`num_workers=0` or non-persistent workers). Named schedules whose shape depends on `epochs`
("cosine", "step", "onecycle") require the same `epochs` on resume; with None (or your own
schedule) a finished run may be extended to more epochs.

Several processes: the same `fit`, started by `torchrun --nproc-per-node N script.py` (on several
machines too), trains with DistributedDataParallel (see `labkit.train.distributed`). Each process
takes its share of every epoch's batches (a loader's `batch_size` is per process), the gradients
are averaged, the epoch figures are summed over all processes, and only rank 0 writes the
checkpoint, TensorBoard and progress bars; every process returns the same History and ends with
the same weights in `model`. A checkpoint written by N processes resumes exactly under N processes;
under another number it resumes (saying so) without being exact.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim import lr_scheduler

from labkit.core import LabError, pick_device
from labkit.models.freezing import train_mode
from labkit.progress import tqdm  # a live bar in Jupyter and terminals, the final state in headless runs
from labkit.train import distributed, rng
from labkit.train.checkpoint import (
    FORMAT_VERSION,
    atomic_save,
    check_arch,
    load_state,
    read_checkpoint,
    to_plain,
)
from labkit.train.history import COLUMNS, History
from labkit.train.optim import EPOCH_DEPENDENT, build_criterion, build_optimizer, build_scheduler
from labkit.train.predict import eval_sums, means, split_batch
from labkit.util import model_device, preserved


def _check_args(epochs, patience, smoothing, val_loader, checkpoint, resume) -> None:
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise LabError(f"epochs={epochs!r}: expected a positive int, e.g. 10.")
    if patience is not None and (not isinstance(patience, int) or patience < 1):
        raise LabError(f"patience={patience!r}: expected None (no early stopping) or a positive int, e.g. 3.")
    if patience is not None and val_loader is None:
        raise LabError("patience needs a val_loader: early stopping watches the validation loss.")
    if not 0.0 <= float(smoothing) < 1.0:
        raise LabError(f"smoothing={smoothing!r}: expected a number in [0, 1) (0 = no smoothing, 0.6 default).")
    if resume and checkpoint is None:
        raise LabError("resume=True needs checkpoint=path: the file the interrupted run wrote.")


def _scheduler_kind(scheduler) -> str | None:
    if scheduler is None or isinstance(scheduler, str):
        return scheduler
    return "custom"


def _to_device(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def _train_epoch(model, loader, optimizer, criterion, device, batch_scheduler, bar_args, channels_last=False,
                 amp=False) -> tuple[float, int, int]:  # fmt: skip
    """One pass over `loader` with an optimiser step per batch; (summed loss, number correct, number seen).

    Loss and accuracy are summed on the device and read once at the end: reading them per batch
    (`.item()`) would make the CPU wait for a GPU after every step.
    """
    train_mode(model)
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    seen = 0
    for batch in tqdm(loader, **bar_args):
        x, y = split_batch(batch)
        x, y = _to_device(x, device, channels_last), y.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(x)  # (B, K)
            loss = criterion(logits.float(), y)
        loss.backward()
        optimizer.step()
        if batch_scheduler is not None:
            batch_scheduler.step()
        total_loss += loss.detach() * len(y)
        correct += (logits.argmax(1) == y).sum()
        seen += len(y)
    return float(total_loss), int(correct), seen


def _train_means(sums: list[float]) -> tuple[float, float]:
    total_loss, correct, seen = sums
    if seen == 0:
        raise LabError("the train loader is empty: nothing to train on. Check the split it was made from.")
    return total_loss / int(seen), int(correct) / int(seen)


def _cpu_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


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
    momentum: float = 0.9,
    scheduler: Any = None,
    label_smoothing: float = 0.0,
    class_weights: Any = None,
    patience: int | None = None,
    smoothing: float = 0.6,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    tensorboard: str | os.PathLike | None = None,
    param_groups: list[dict] | None = None,
    restore_best: bool = True,
    channels_last: bool = False,
    amp: bool = False,
) -> History:
    """Train `model` for `epochs` epochs and return its per-epoch history (see the module docstring).

    Args:
        model: the network, trained in place (moved to `device`). Every module's train/eval mode is
            restored at the end; during training, batch-norm layers whose parameters are all frozen
            stay in eval mode (see `labkit.models.train_mode`).
        train_loader: yields (images, targets); shuffled loaders should own a torch.Generator
            (`make_loaders` does), which the checkpoint saves for exact resume.
        val_loader: yields (images, targets), or None (no validation, no early stopping, no best weights).
        epochs: number of epochs in all (a resumed run counts the epochs before the interruption).
        device: "cpu", "cuda", "mps" or "auto"; None trains where the model is.
        optimizer: "adam", "adamw", "sgd" (momentum `momentum`), "nesterov", or a torch Optimizer
            built on `model`'s parameters (then `lr`, `weight_decay`, `momentum`, `param_groups`
            are not used).
        lr, weight_decay, momentum: optimiser settings.
        scheduler: None, "cosine", "step", "onecycle", an LRScheduler or a callable optimizer ->
            LRScheduler (see `labkit.train.optim.build_scheduler`).
        label_smoothing: cross-entropy label smoothing in [0, 1).
        class_weights: one weight per class for the loss (e.g. `labkit.data.class_weights`). The
            validation loss uses the same loss (weights and smoothing), so both curves compare.
        patience: stop after this many epochs without a new lowest smoothed validation loss; None
            trains all `epochs`.
        smoothing: exponential smoothing of the validation loss, in [0, 1); 0 uses the raw loss.
        checkpoint: a file to write the training state to at the end of every epoch (atomically).
        resume: continue from `checkpoint` when that file exists (from epoch 1 when it does not, so
            the same call serves a first run and a rerun after an interruption). A checkpoint of a
            finished run (all epochs done, or stopped early) trains nothing more.
        progress: tqdm progress bars (one for the epochs, one for the batches of the running epoch).
        tensorboard: a folder for TensorBoard logs (loss/acc of train and val, lr per epoch), or None.
        param_groups: torch-style parameter groups for the optimiser (e.g. a smaller lr for a
            pretrained backbone); default: every parameter with requires_grad.
        restore_best: load the weights of the best epoch at the end (else keep the last epoch's).
        channels_last: store the model's weights and each batch in channels-last memory order
            (N, H, W, C): faster convolutions on CPUs (measured 1.6x for lab 02's CIFAR network on
            two cores) and on GPUs with tensor cores. Results are equal up to float rounding.
        amp: mixed precision: run the forward pass in bfloat16 where it is safe (torch.autocast);
            for GPUs with bfloat16 (Ampere and newer). The loss is computed in float32.

    Returns:
        History: `.df` per epoch, `.best_epoch`, `.best_val_acc`, `.epochs_run`, `.seconds`,
        `.stopped_early`, `.to_csv(path)`.

    Raises:
        LabError: bad arguments (before any training), a checkpoint that does not fit the model or the
            run, an empty loader, or a diverging loss (NaN/inf), with the fix in the message.
    """
    _check_args(epochs, patience, smoothing, val_loader, checkpoint, resume)
    device = model_device(model) if device is None else pick_device(device)
    world, device = distributed.join(device)  # one process: (SINGLE, device); under torchrun: its rank's
    progress = progress and world.main
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    criterion = build_criterion(label_smoothing, class_weights, device)
    opt = build_optimizer(optimizer, model, lr=lr, weight_decay=weight_decay, momentum=momentum,
                          param_groups=param_groups)  # fmt: skip
    # This process's share of the data (under one process: the loaders themselves).
    train_part = distributed.shard(train_loader, world, train=True)
    val_part = distributed.shard(val_loader, world, train=False)
    try:
        steps_per_epoch = len(train_part)
    except TypeError:
        steps_per_epoch = 0
    if scheduler == "onecycle" and steps_per_epoch < 1:
        raise LabError("scheduler='onecycle' needs a train loader with a length (batches per epoch); use 'cosine'.")
    sched, per_batch = build_scheduler(scheduler, opt, epochs=epochs, steps_per_epoch=steps_per_epoch)
    loaders = {"train": train_loader, "val": val_loader}
    config = {"epochs": epochs, "optimizer": type(opt).__name__, "scheduler": _scheduler_kind(scheduler),
              "smoothing": float(smoothing), "patience": patience, "world_size": world.size,
              "steps_per_epoch": steps_per_epoch}  # fmt: skip

    rows: list[dict] = []
    es = {"smooth": None, "best": math.inf, "best_epoch": None, "bad": 0}  # early-stopping state
    best_state: dict | None = None
    stopped = False
    start = 0
    seed = None  # several processes: the seed of their per-epoch draws (distributed.seed_epoch)
    if resume and _checkpoint_found(checkpoint, world):
        start, rows, es, best_state, stopped, seed = _resume(checkpoint, model, opt, sched, loaders, config, world)
    elif resume and progress:
        print(f"No checkpoint at {checkpoint} yet: training from epoch 1.")
    if world.active and seed is None:
        seed = distributed.shared_seed(world)

    writer = None
    if tensorboard is not None and world.main:
        from torch.utils.tensorboard import SummaryWriter  # imported here: it is slow to import

        writer = SummaryWriter(log_dir=str(tensorboard), purge_step=start + 1 if start else None)
    epoch_bar = tqdm(total=epochs, initial=start, desc="fit", unit="epoch", disable=not progress)
    epoch = start
    try:
        with preserved(model):
            net = distributed.wrap(model, world, device)  # DistributedDataParallel(model) under torchrun
            for epoch in range(start + 1, epochs + 1):
                if stopped:
                    break
                t0 = time.perf_counter()
                lr_now = float(opt.param_groups[0]["lr"])
                bar_args = {"desc": f"epoch {epoch}/{epochs}", "leave": False, "disable": not progress}
                distributed.seed_epoch(world, seed, epoch)
                distributed.set_epoch(train_part, epoch)
                sums = _train_epoch(net, train_part, opt, criterion, device, sched if per_batch else None, bar_args,
                                    channels_last, amp)  # fmt: skip
                # Summed over the processes, so every one of them takes the same decisions below.
                train_loss, train_acc = _train_means(distributed.all_sum(sums, world))
                distributed.sync_buffers(model, world)
                if not math.isfinite(train_loss):
                    raise LabError(
                        f"training diverged in epoch {epoch}: the train loss is {train_loss}. Lower the learning "
                        f"rate (lr={lr_now:g} now), or check the inputs are normalised."
                    )
                val_loss = val_acc = float("nan")
                if val_loader is not None:
                    sums = eval_sums(model, val_part, criterion, device, channels_last=channels_last, amp=amp)
                    val_loss, val_acc = means(distributed.all_sum(sums, world))
                if sched is not None and not per_batch:
                    if isinstance(sched, lr_scheduler.ReduceLROnPlateau):
                        sched.step(val_loss)
                    else:
                        sched.step()
                if val_loader is not None:
                    # Same formula as labkit.train.history.smooth, so the column and the decision agree.
                    s = val_loss if es["smooth"] is None else smoothing * es["smooth"] + (1.0 - smoothing) * val_loss
                    es["smooth"] = s
                    if s < es["best"]:
                        es.update(best=s, best_epoch=epoch, bad=0)
                        best_state = _cpu_copy(model) if restore_best else None
                    else:
                        es["bad"] += 1
                rows.append(dict(zip(COLUMNS, (epoch, train_loss, train_acc, val_loss, val_acc,
                                               es["smooth"] if es["smooth"] is not None else float("nan"),
                                               lr_now, time.perf_counter() - t0))))  # fmt: skip
                stopped = patience is not None and es["bad"] >= patience and epoch < epochs
                if checkpoint is not None and world.main:
                    _save_state(checkpoint, model, opt, sched, loaders, config, epoch, rows, es, best_state, stopped,
                                seed)  # fmt: skip
                if writer is not None:
                    tags = {"loss/train": train_loss, "loss/val": val_loss, "accuracy/train": train_acc,
                            "accuracy/val": val_acc, "lr": lr_now}  # fmt: skip
                    for tag, value in tags.items():
                        writer.add_scalar(tag, value, epoch)
                epoch_bar.update(1)
                epoch_bar.set_postfix(train_loss=f"{train_loss:.3f}", val_loss=f"{val_loss:.3f}",
                                      val_acc=f"{val_acc:.3f}")  # fmt: skip
    except KeyboardInterrupt:
        if checkpoint is not None and Path(checkpoint).is_file():
            print(f"Interrupted in epoch {epoch}. fit(..., checkpoint={str(checkpoint)!r}, resume=True) "
                  f"continues after the last finished epoch.")  # fmt: skip
        raise
    finally:
        epoch_bar.close()
        if writer is not None:
            writer.close()
    distributed.barrier(world)  # no process leaves before rank 0 has written the last checkpoint

    if restore_best and best_state is not None:
        load_state(model, best_state, source="the best epoch's weights")
    return History.from_rows(rows, best_epoch=es["best_epoch"], stopped_early=bool(stopped))


def _checkpoint_found(path, world) -> bool:
    """Whether `path` exists; every process must see the same answer (else LabError on every one)."""
    found = Path(path).is_file()
    missing = distributed.agree(found, world)
    if missing and len(missing) < world.size:
        raise LabError(
            f"the checkpoint {path} is missing for the process(es) of rank {missing} but there for the others: "
            f"put it on a file system every machine shares (or copy it to the same path on each), or start "
            f"afresh with resume=False."
        )
    return found


def _save_state(path, model, opt, sched, loaders, config, epoch, rows, es, best_state, stopped, seed=None) -> None:
    """Write everything `_resume` needs, as tensors and plain containers only (weights_only=True)."""
    payload = {
        "labkit_checkpoint": FORMAT_VERSION,
        "arch": to_plain(getattr(model, "arch", None), "model.arch"),
        "state_dict": _cpu_copy(model),
        "extra": {},
        "fit": {
            "epoch": epoch,
            "config": config,
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict() if sched is not None else None,
            "history": {c: [r[c] for r in rows] for c in COLUMNS},
            "early_stopping": dict(es),
            "best_state_dict": best_state,
            "stopped_early": bool(stopped),
            "rng": rng.capture(loaders),
            "process_seed": seed,
        },
    }
    atomic_save(payload, path)


def _resume(path, model, opt, sched, loaders, config, world=distributed.SINGLE) -> tuple:
    """Load the state `_save_state` wrote into fresh model/optimiser/scheduler/loaders.

    Returns (epochs done, history rows, early-stopping state, best weights, stopped early, the
    processes' seed or None).
    """
    saved = read_checkpoint(path)
    state = saved["fit"]
    if state is None:
        raise LabError(
            f"{path} was written by save_checkpoint, not by fit, so it holds no training state; "
            f"resume needs the file fit(..., checkpoint=path) wrote, or start afresh with resume=False."
        )
    check_arch(saved["arch"], model, path)
    old = state["config"]
    for key in ("optimizer", "scheduler"):
        if old[key] != config[key]:
            raise LabError(
                f"{path} was written by a run with {key}={old[key]!r}, this run has {key}={config[key]!r}; "
                f"resume with the same {key}, or start afresh with resume=False."
            )
    if config["scheduler"] in EPOCH_DEPENDENT and old["epochs"] != config["epochs"]:
        raise LabError(
            f"{path} was written by a run of epochs={old['epochs']} with scheduler={config['scheduler']!r}, "
            f"whose schedule depends on the number of epochs; resume with epochs={old['epochs']}, or start "
            f"afresh with resume=False."
        )
    if state["epoch"] > config["epochs"]:
        raise LabError(
            f"{path} is already at epoch {state['epoch']}, beyond epochs={config['epochs']}; pass "
            f"epochs >= {state['epoch']}, or start afresh with resume=False."
        )
    load_state(model, saved["state_dict"], source=str(path))
    opt.load_state_dict(state["optimizer"])
    old_size = old.get("world_size", 1)
    if old_size != world.size and world.main:
        print(f"Resuming a run of {old_size} process(es) with {world.size}: the weights, optimiser, schedule and "
              f"history continue from epoch {state['epoch']}, but the next epochs cannot be exactly those of the "
              f"{old_size}-process run (each process now takes another share of every epoch, and the gradients "
              f"are averaged over another number of processes). Resume with {old_size} process(es) for an exact "
              f"continuation.")  # fmt: skip
    if sched is not None:
        if (old_size != world.size and isinstance(sched, lr_scheduler.OneCycleLR)
                and old.get("steps_per_epoch") != config["steps_per_epoch"]):  # fmt: skip
            # One-cycle counts steps, and an epoch has another number of steps per process now: keep the
            # schedule built for this run, at the point the finished epochs reached.
            sched.last_epoch = state["epoch"] * config["steps_per_epoch"]
        else:
            sched.load_state_dict(state["scheduler"])
    history = state["history"]
    rows = [dict(zip(COLUMNS, values)) for values in zip(*(history[c] for c in COLUMNS))]
    # The generators go last: nothing above may draw from them.
    rng.restore(state["rng"], loaders)
    return (state["epoch"], rows, dict(state["early_stopping"]), state["best_state_dict"], state["stopped_early"],
            state.get("process_seed"))  # fmt: skip
