"""Checkpoints: written atomically, read with `weights_only=True`, rebuilt from the saved architecture.

Introduced in notebooks/02_naive_cnn.ipynb. A checkpoint file is a dict of tensors and plain
containers only (so `torch.load(..., weights_only=True)` reads it and no pickled code runs):

    {"labkit_checkpoint": 1, "arch": model.arch or None, "state_dict": {...}, "extra": {...}}

`fit(..., checkpoint=path)` adds a "fit" entry after every epoch (`save_training`) with all that
an exact resume needs (`resume_training`): the optimiser, the schedule, fit's `Run` (history,
early stopping, best weights) and the state of every random generator (`labkit.train.rng`).
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim import lr_scheduler

from labkit.core import LabError, atomic_write
from labkit.models import build
from labkit.train import rng
from labkit.train.history import Run
from labkit.train.optim import EPOCH_DEPENDENT
from labkit.train.world import OneProcess

FORMAT_VERSION = 1
AFRESH = "or start afresh with resume=False"


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """`torch.save` into a temporary file beside `path`, then rename it over `path`.

    The rename is atomic on one file system, so `path` always holds either the old complete file or
    the new complete one; the temporary file is removed when saving fails, also on KeyboardInterrupt.
    """
    with atomic_write(path, "wb") as fh:
        torch.save(obj, fh)
    return Path(path)


def to_plain(value: Any, where: str = "extra") -> Any:
    """Turn `value` into tensors, numbers, strings and containers that `weights_only=True` can load.

    numpy arrays become tensors, numpy scalars Python numbers, paths strings, tuples stay tuples.

    Raises:
        LabError: for anything else (an object would need pickled code to load).
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return str(value)
    if isinstance(value, Mapping):
        return {k: to_plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [to_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if isinstance(value, tuple) else items
    raise LabError(
        f"{where} is a {type(value).__name__}, which a weights_only checkpoint cannot hold; "
        f"store numbers, strings, lists, dicts, numpy arrays or tensors instead."
    )


def cpu_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of `model.state_dict()` on the CPU (a copy also when the model is on the CPU)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _payload(model: nn.Module, extra: dict, fit: dict | None = None) -> dict:
    arch = to_plain(getattr(model, "arch", None), "model.arch")
    saved = {"labkit_checkpoint": FORMAT_VERSION, "arch": arch, "state_dict": cpu_state_dict(model)}
    return {**saved, "extra": extra, "fit": fit}


def save_checkpoint(path: str | os.PathLike, model: nn.Module, **extra: Any) -> Path:
    """Save `model`'s weights, its architecture record and `extra`, atomically.

    Args:
        path: where to write (folders are made).
        model: the network; its `.arch` ({"name", "kwargs"}) is stored when it has one, so that
            `load_checkpoint(path)` can rebuild it without the code that made it.
        **extra: plain data to keep beside the weights: classes, image_size, mean, std, dataset,
            seed, test_accuracy ... (numbers, strings, lists, dicts, arrays, tensors).

    Returns:
        the path written.

    Raises:
        LabError: an `extra` value that is not plain data (checked before anything is written).
    """
    return atomic_save(_payload(model, to_plain(extra)), path)


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """Load a checkpoint file with `weights_only=True` into the labkit layout (see module docstring).

    A plain state_dict file (tensors by name, as `torch.save(model.state_dict(), path)` writes) is
    accepted too, with no architecture and no extra.

    Raises:
        LabError: missing file, unreadable file, or a file that needs pickled code.
    """
    path = Path(path)
    if not path.is_file():
        raise LabError(
            f"no checkpoint at {path}: check the path, or train and save one first "
            f"(labkit.train.save_checkpoint(path, model) or fit(..., checkpoint=path))."
        )
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise LabError(
            f"{path} holds Python objects that weights_only=True refuses to load (for safety); "
            f"save checkpoints with labkit.train.save_checkpoint, which stores plain data only. ({err})"
        ) from err
    except (RuntimeError, EOFError, OSError) as err:
        raise LabError(
            f"{path} cannot be read as a torch checkpoint (truncated, or not a .pt file?): {err}"
        ) from err
    if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        obj = {"state_dict": obj}  # a plain state_dict
    if isinstance(obj, Mapping) and "state_dict" in obj:
        return {"arch": obj.get("arch"), "state_dict": obj["state_dict"], **_extra_and_fit(obj)}
    raise LabError(f"{path} is not a model checkpoint (found a {type(obj).__name__} without a 'state_dict').")


def _extra_and_fit(saved: Mapping) -> dict:
    return {"extra": dict(saved.get("extra") or {}), "fit": saved.get("fit")}


def describe_arch(arch: Mapping | None) -> str:
    """`naive_cnn(num_classes=4, channels=[8, 16], ...)` for messages."""
    if not arch:
        return "an unrecorded architecture"
    kwargs = ", ".join(f"{k}={v!r}" for k, v in dict(arch.get("kwargs") or {}).items())
    return f"{arch.get('name')}({kwargs})"


def check_arch(saved: Mapping | None, model: nn.Module, path: str | os.PathLike) -> None:
    """Raise a LabError naming both architectures when `model.arch` differs from the saved one."""
    current = getattr(model, "arch", None)
    if saved is None or current is None or to_plain(current) == saved:
        return
    raise LabError(
        f"checkpoint {path} holds {describe_arch(saved)}, but the model given is {describe_arch(current)}. "
        f"Fix: call load_checkpoint(path) without a model to rebuild the saved architecture, or build the "
        f"model with the same arguments."
    )


def load_state(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "the checkpoint"
) -> None:
    """`model.load_state_dict(state_dict)`, with a short readable LabError when they do not fit.

    Raises:
        LabError: listing missing keys, unexpected keys and shape mismatches (a few of each).
    """
    own = model.state_dict()
    shapes = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in state_dict.items() if k in own]
    problems = {
        f"missing in {source}": [k for k in own if k not in state_dict],
        "not in the model": [k for k in state_dict if k not in own],
        "shape mismatch": [f"{k} saved {a} vs model {b}" for k, a, b in shapes if a != b],
    }
    listed = [f"{k}: {', '.join(v[:4])}" + " ..." * (len(v) > 4) for k, v in problems.items() if v]
    if listed:
        raise LabError(
            f"the weights in {source} do not fit this model ({'; '.join(listed)}). Fix: build the model the "
            f"checkpoint was saved from (load_checkpoint(path) rebuilds it when the file records its arch)."
        )
    model.load_state_dict(state_dict)


def load_checkpoint(
    path: str | os.PathLike, model: nn.Module | None = None, map_location: Any = "cpu"
) -> tuple[nn.Module, dict]:
    """Load a checkpoint written by `save_checkpoint` (or by `fit`), with `weights_only=True`.

    Args:
        path: the checkpoint file.
        model: a network to load the weights into; None rebuilds it with
            `labkit.models.build(saved arch)` and returns it in eval mode on `map_location`.
        map_location: where tensors are loaded ("cpu" by default, so a GPU checkpoint loads anywhere).

    Returns:
        (model, extra): the network with the saved weights, and the `extra` dict it was saved with.
        For a checkpoint written by `fit`, the weights are those of its last finished epoch.

    Raises:
        LabError: missing or unreadable file; `model.arch` differs from the saved architecture (both
            are named); weights that do not fit (missing/unexpected keys, shapes); no architecture
            recorded and no model given.
    """
    saved = read_checkpoint(path, map_location=map_location)
    if model is not None:
        check_arch(saved["arch"], model, path)
        load_state(model, saved["state_dict"], source=str(path))
        return model, saved["extra"]
    if not saved["arch"]:
        raise LabError(
            f"{path} records no architecture, so the network cannot be rebuilt; pass the model: "
            f"load_checkpoint(path, model=MyNet(...))."
        )
    model = build(saved["arch"])
    load_state(model, saved["state_dict"], source=str(path))
    if isinstance(map_location, (str, torch.device)):
        model.to(map_location)
    return model.eval(), saved["extra"]


# ----------------------------------------------------------------------------- fit's training state
def save_training(
    path: str | os.PathLike, run: Run, model: nn.Module, optimizer, scheduler, loaders, config
) -> None:
    """Write the state of a `fit` run after its epoch `run.epoch`, atomically.

    Args:
        path: the checkpoint file.
        run: what fit carries from epoch to epoch.
        model, optimizer, scheduler: their states are saved (`scheduler` may be None).
        loaders: {"train": loader, "val": loader}: the states of their generators are saved.
        config: the settings a resumed run must share: epochs, optimizer, scheduler, world_size.
    """
    schedule = scheduler.state_dict() if scheduler is not None else None
    fit = {**vars(run), "config": config, "optimizer": optimizer.state_dict(), "scheduler": schedule}
    fit["rng"] = rng.capture(loaders)
    atomic_save(_payload(model, {}, fit), path)


def resume_training(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer,
    scheduler,
    loaders,
    config,
    world: OneProcess | None = None,
) -> Run | None:
    """Put the state `save_training` wrote back into a fresh model, optimiser, schedule and loaders.

    Args: as `save_training`, and fit's `world` (`labkit.train.world`).

    Returns:
        the saved Run, or None (and nothing changed) when there is no file at `path` yet.

    Raises:
        LabError: the file is only on some of the processes, was not written by fit, holds another
            architecture, or was written with another optimizer, schedule or number of epochs.
    """
    world = world or OneProcess()
    found = Path(path).is_file()
    missing = world.agree(found)  # every process must see the file, or none
    if missing and len(missing) < world.size:
        raise LabError(
            f"the checkpoint {path} is missing for the process(es) of rank {missing} but there for the "
            f"others: put it on a file system every machine shares, {AFRESH}."
        )
    if not found:
        if world.main:
            print(f"No checkpoint at {path} yet: training from epoch 1.")
        return None
    saved = read_checkpoint(path)
    state = saved["fit"]
    if state is None:
        raise LabError(
            f"{path} was written by save_checkpoint, not by fit, so it holds no training state; resume "
            f"needs the file fit(..., checkpoint=path) wrote, {AFRESH}."
        )
    check_arch(saved["arch"], model, path)
    _check_config(path, state["config"], config, state["epoch"])
    load_state(model, saved["state_dict"], source=str(path))
    optimizer.load_state_dict(state["optimizer"])
    one_cycle = isinstance(scheduler, lr_scheduler.OneCycleLR)
    if one_cycle and scheduler.total_steps != state["scheduler"]["total_steps"]:
        # Another number of processes, so another number of steps per epoch: keep this run's
        # schedule, at the point the finished epochs reached.
        scheduler.last_epoch = state["epoch"] * scheduler.total_steps // config["epochs"]
    elif scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    old = state["config"]["world_size"]
    if old != world.size and world.main:
        # Each process now takes another share of every epoch.
        print(f"Resuming a run of {old} process(es) with {world.size}: not exactly as it would have gone on.")
    rng.restore(state["rng"], loaders)  # last: nothing above may draw from the generators
    return Run(**{name: state[name] for name in vars(Run())})


@contextmanager
def resume_hint(path: str | os.PathLike | None) -> Iterator[None]:
    """On KeyboardInterrupt inside the block, say how to resume from the checkpoint at `path` (if any)."""
    try:
        yield
    except KeyboardInterrupt:
        if path is not None and Path(path).is_file():
            print(f"Interrupted: fit(..., checkpoint={str(path)!r}, resume=True) goes on from there.")
        raise


def _check_config(path, old: dict, new: dict, done: int) -> None:
    """Raise a LabError when a run of settings `new` cannot continue one of `old` after `done` epochs."""
    keys = ["optimizer", "scheduler"]
    if new["scheduler"] in EPOCH_DEPENDENT:
        keys.append("epochs")  # the schedule is laid out over the epochs
    differ = [k for k in keys if old[k] != new[k]]
    was, now = (", ".join(f"{k}={d[k]!r}" for k in differ) for d in (old, new))
    if differ:
        raise LabError(f"{path} comes from a run with {was}, not {now}: resume with {was}, {AFRESH}.")
    if done > new["epochs"]:
        raise LabError(f"{path} is at epoch {done}, past epochs={new['epochs']}: pass more, {AFRESH}.")
