"""Checkpoints: written atomically, read with `weights_only=True`, rebuilt from the saved architecture.

Introduced in notebooks/02_naive_cnn.ipynb. A checkpoint file is a dict of tensors and plain
containers only (so `torch.load(..., weights_only=True)` reads it and no pickled code runs):

    {"labkit_checkpoint": 1, "arch": model.arch or None, "state_dict": {...}, "extra": {...}}

`fit` adds a "fit" entry with everything an exact resume needs (see `labkit.train.loop`).
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from labkit.core import LabError, atomic_write

FORMAT_VERSION = 1


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
    payload = {
        "labkit_checkpoint": FORMAT_VERSION,
        "arch": to_plain(getattr(model, "arch", None), "model.arch"),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": to_plain(extra),
    }
    return atomic_save(payload, path)


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
        raise LabError(f"{path} cannot be read as a torch checkpoint (truncated or not a .pt file?): {err}") from err
    if isinstance(obj, Mapping) and "state_dict" in obj:
        return {"arch": obj.get("arch"), "state_dict": obj["state_dict"], "extra": dict(obj.get("extra") or {}),
                "fit": obj.get("fit")}  # fmt: skip
    if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return {"arch": None, "state_dict": obj, "extra": {}, "fit": None}
    raise LabError(f"{path} is not a model checkpoint (found a {type(obj).__name__} without a 'state_dict').")


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
    saved_kw, current_kw = dict(saved.get("kwargs") or {}), dict(to_plain(current).get("kwargs") or {})
    differ = [k for k in sorted(set(saved_kw) | set(current_kw)) if saved_kw.get(k) != current_kw.get(k)]
    detail = "; ".join(f"{k}: saved {saved_kw.get(k)!r}, model {current_kw.get(k)!r}" for k in differ)
    if saved.get("name") != current.get("name"):
        detail = f"saved {saved.get('name')!r}, model {current.get('name')!r}"
    raise LabError(
        f"checkpoint {path} holds {describe_arch(saved)}, but the model given is {describe_arch(current)} "
        f"({detail}). Fix: call load_checkpoint(path) without a model to rebuild the saved architecture, "
        f"or build the model with the same arguments."
    )


def _listing(names: list[str], limit: int = 5) -> str:
    more = f" (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def load_state(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "the checkpoint") -> None:
    """`model.load_state_dict(state_dict)`, with a short readable LabError when they do not fit.

    Raises:
        LabError: listing missing keys, unexpected keys and shape mismatches (a few of each).
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [
        f"{k} saved {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state_dict and tuple(own[k].shape) != tuple(state_dict[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing in {source}: {_listing(missing)}")
    if unexpected:
        problems.append(f"not in the model: {_listing(unexpected)}")
    if shapes:
        problems.append(f"shape mismatch: {_listing(shapes, 3)}")
    if problems:
        raise LabError(
            f"the weights in {source} do not fit this model ({'; '.join(problems)}). Fix: build the model "
            f"the checkpoint was saved from (load_checkpoint(path) rebuilds it when the file records its arch)."
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
    if model is None:
        if not saved["arch"]:
            raise LabError(
                f"{path} records no architecture, so the network cannot be rebuilt; pass the model: "
                f"load_checkpoint(path, model=MyNet(...))."
            )
        from labkit.models import build

        model = build(saved["arch"])
        load_state(model, saved["state_dict"], source=str(path))
        if isinstance(map_location, (str, torch.device)):
            model.to(map_location)
        model.eval()
    else:
        check_arch(saved["arch"], model, path)
        load_state(model, saved["state_dict"], source=str(path))
    return model, saved["extra"]
