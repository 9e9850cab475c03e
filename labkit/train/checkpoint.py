"""Checkpoints: written atomically, read with `weights_only=True`, rebuilt from the saved architecture.

Introduced in notebooks/02_naive_cnn.ipynb. A file holds plain data only (so loading runs no code):
{"labkit_checkpoint": 1, "arch", "state_dict", "extra", "fit": None or what `fit` needs to resume}."""

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

AFRESH = "or start afresh with resume=False"


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """`torch.save` into a temporary file beside `path`, renamed over `path`: never a half-written file."""
    with atomic_write(path, "wb") as fh:
        torch.save(obj, fh)
    return Path(path)


def to_plain(value: Any, where: str = "extra") -> Any:
    """`value` as tensors, numbers, strings and containers that `weights_only=True` loads, or a LabError."""
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
    saved = {"labkit_checkpoint": 1, "arch": arch, "state_dict": cpu_state_dict(model)}
    return {**saved, "extra": extra, "fit": fit}


def save_checkpoint(path: str | os.PathLike, model: nn.Module, **extra: Any) -> Path:
    """Save `model`'s weights, its `.arch` (so that `load_checkpoint` can rebuild it) and `extra`, atomically.

    `extra` holds plain data only (classes, mean, std, ...: numbers, strings, lists, dicts, arrays,
    tensors); anything else raises a LabError before anything is written. Returns the path written."""
    return atomic_save(_payload(model, to_plain(extra)), path)


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """{"arch", "state_dict", "extra", "fit"} of the file at `path`, loaded with `weights_only=True`; a
    plain state_dict file (`torch.save(model.state_dict(), path)`) has no arch and no extra."""
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
        fit, extra = obj.get("fit"), dict(obj.get("extra") or {})
        return {"arch": obj.get("arch"), "state_dict": obj["state_dict"], "extra": extra, "fit": fit}
    raise LabError(f"{path} is not a model checkpoint (found a {type(obj).__name__} without a 'state_dict').")


def describe_arch(arch: Mapping) -> str:
    """`naive_cnn(num_classes=4, channels=[8, 16], ...)` for messages."""
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


def load_state(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str = "the checkpoint") -> None:
    """`model.load_state_dict(state_dict)`, or a short LabError listing a few mismatched keys and shapes."""
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
    """(model, extra) from a file `save_checkpoint` or `fit` wrote (for fit's, its last epoch's weights).

    `model` must have the saved architecture; None rebuilds that (`labkit.models.build`), in eval mode
    on `map_location`. Loads with `weights_only=True`, onto the CPU unless `map_location` says otherwise."""
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


def save_training(
    path: str | os.PathLike, run: Run, model: nn.Module, optimizer, scheduler, loaders, config
) -> None:
    """Write, atomically, what `resume_training` needs to go on after epoch `run.epoch`; `config` holds the
    settings a resumed run must share, `loaders` ({"train", "val"}) the generators whose states are saved."""
    schedule = scheduler.state_dict() if scheduler is not None else None
    fit = {**vars(run), "config": config, "optimizer": optimizer.state_dict(), "scheduler": schedule}
    fit["rng"] = rng.capture(loaders)
    atomic_save(_payload(model, {}, fit), path)


def resume_training(
    path: str | os.PathLike, model: nn.Module, optimizer, scheduler, loaders, config, world: OneProcess
) -> Run | None:
    """Put what `save_training` wrote back into a fresh model, optimiser, schedule and loaders, and
    return the saved Run; None, with nothing changed, when there is no file at `path` yet."""
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
        # Another number of processes, so of steps per epoch: keep this run's schedule, where it was.
        scheduler.last_epoch = state["epoch"] * scheduler.total_steps // config["epochs"]
    elif scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    old = state["config"]["world_size"]
    if old != world.size and world.main:
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
