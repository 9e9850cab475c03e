"""The ground floor of labkit: its error type, the device, seeding, dataset names and atomic writes.
It imports nothing of labkit, so every other module may import it."""

from __future__ import annotations

import json
import math
import os
import random
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

__version__ = "0.1.0"
PROFILES = ("smoke", "full")

# Other spellings of dataset names (the data registry accepts them too).
DATASET_ALIASES = {"cifar-10": "cifar10", "cats_and_dogs": "cats_vs_dogs", "cats-vs-dogs": "cats_vs_dogs",
                   "caltech-101": "caltech101"}  # fmt: skip


class LabError(ValueError):
    """A lab was called with something it cannot use; the message says what to change."""


def pick_device(device: str | torch.device = "auto") -> torch.device:
    """The device to compute on: "auto" takes cuda, then mps, then cpu; one that is absent raises LabError."""
    if isinstance(device, torch.device):
        return device
    name = str(device).lower()
    has_mps = torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu")
    missing = {"cuda": "no CUDA GPU is visible", "mps": "Apple's MPS backend is not available"}
    kind = "cuda" if name.startswith("cuda") else name
    if kind in missing and not (torch.cuda.is_available() if kind == "cuda" else has_mps):
        raise LabError(f"device={device!r} was asked for but {missing[kind]}; use device='auto' or 'cpu'.")
    try:
        return torch.device(name)
    except RuntimeError as err:
        raise LabError(
            f"device={device!r} is not a device name; use 'auto', 'cpu', 'cuda' or 'mps'."
        ) from err


def native_bfloat16(device: str | torch.device) -> bool:
    """Whether `device` computes in bfloat16 natively, so autocast to it makes training faster: a CUDA
    GPU that supports it, or an x86 CPU with AMX or AVX512-BF16 (where it is about three times faster
    than float32 for convolutions; elsewhere a CPU emulates it, slower than float32)."""
    device = pick_device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    try:
        with open("/proc/cpuinfo") as info:
            flags = next((line.split(":", 1)[1].split() for line in info if line.startswith("flags")), [])
    except OSError:  # not Linux: assume no native bfloat16
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed python, numpy and torch (all devices); with `deterministic`, ask torch for deterministic
    kernels so the same seed, device and data give the same figures."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read by cuBLAS at its first call
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(True, warn_only=True)


def seed_worker(worker_id: int) -> None:
    """`worker_init_fn` for DataLoader: derive python and numpy seeds from torch's per-worker seed."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def generator(seed: int) -> torch.Generator:
    """A CPU torch.Generator seeded with `seed`, for samplers and `random_split`."""
    return torch.Generator().manual_seed(seed)


def dataset_key(name: Any) -> str | None:
    """The recipe name of a dataset: "folder" for any "folder:PATH", else the lower-case name with
    the registry's aliases ("cifar-10" -> "cifar10"); None when `name` is not a string."""
    if not isinstance(name, str):
        return None
    return "folder" if name.startswith("folder:") else DATASET_ALIASES.get(name.lower(), name.lower())


def project_root(start: Path | None = None) -> Path:
    """The folder holding pyproject.toml and labkit/ at or above `start` (default: the cwd), else `start`."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "labkit").is_dir():
            return folder
    return here


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **open_kwargs: Any) -> Iterator[IO]:
    """Open a temporary file beside `path`; rename it over `path` when the block ends ("wb" for torch.save),
    so `path` holds the old complete file or the new one, never half; on any error the temporary goes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **open_kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())  # the bytes are on disk before the name points at them
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def to_jsonable(value: Any) -> Any:
    """Turn numpy/torch scalars and arrays, paths and tuples into plain JSON values (NaN: None)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return to_jsonable(value.detach().cpu().tolist())
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """Write JSON to a temporary file beside `path`, then rename it over `path`."""
    with atomic_write(path) as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
