"""A disk cache of decoded images as uint8 tensors, reused across labs and runs.

Introduced in notebooks/01_data_prep.ipynb. Entries are named after a hash of what they were made
from and hold a checksum of their tensors: a damaged file is reported and rebuilt, never used.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from labkit.core import LabError, atomic_write

FORMAT = 1
Entry = tuple[dict[str, torch.Tensor], dict]  # (tensors, meta) as saved


def default_cache() -> Path:
    """The user cache folder for datasets: `$XDG_CACHE_HOME/labkit` or `~/.cache/labkit`."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "labkit"


def cache_dir() -> Path:
    """Where tensor caches live: `$LABKIT_CACHE`, else `<default_cache()>/tensors`."""
    env = os.environ.get("LABKIT_CACHE")
    return Path(env).expanduser() if env else default_cache() / "tensors"


def files_fingerprint(paths: Iterable[str]) -> str:
    """A hash of every file's path, size and modification time (a changed file changes it)."""
    h = hashlib.blake2b(digest_size=16)
    for p in paths:
        st = os.stat(p)
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def source_fingerprint(*objects: Any) -> str:
    """A hash of the source code of modules or functions: a cache made by older code is not reused."""
    return hashlib.blake2b("".join(inspect.getsource(o) for o in objects).encode(), digest_size=8).hexdigest()


def _checksum(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().data)  # the raw bytes, without a copy
    return h.hexdigest()


def write_cache(path: Path, key: dict, tensors: dict[str, torch.Tensor], meta: dict | None = None) -> None:
    """Save `tensors` (CPU) and `meta` (plain data) under `path`, atomically, with their checksum."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    payload = {"format": FORMAT, "key": json.dumps(key, sort_keys=True), "meta": json.dumps(meta or {})}
    payload.update(tensors=tensors, checksum=_checksum(tensors))
    with atomic_write(path, "wb") as fh:
        torch.save(payload, fh)


def read_cache(path: Path, key: dict) -> Entry | None:
    """The tensors and meta saved under `path` for `key`; None when there is no such file, a
    LabError naming the file when it is damaged or was made for another key."""
    path = Path(path)
    if not path.is_file():
        return None
    fix = f"delete {path} (labkit rebuilds it from the data)"
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, wrong magic number, unpickling error: all mean "damaged"
        why = f"{type(err).__name__}: {err}"
        raise LabError(f"the tensor cache {path} is damaged or truncated ({why}); {fix}.") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT or "tensors" not in payload:
        raise LabError(f"the tensor cache {path} is not a labkit cache of format {FORMAT}; {fix}.")
    if payload.get("key") != json.dumps(key, sort_keys=True):
        raise LabError(f"the tensor cache {path} was made from other data (its key differs); {fix}.")
    tensors = payload["tensors"]
    if _checksum(tensors) != payload.get("checksum"):
        raise LabError(f"the tensor cache {path} does not match its checksum (altered or damaged); {fix}.")
    return tensors, json.loads(payload["meta"])


def cached(label: str, key: dict, build: Callable[[], Entry], *, use_cache: bool = True) -> Entry:
    """Read (tensors, meta) for `key` from the cache, or `build()` them and save them there; a
    damaged or mismatching file is reported and rebuilt. `use_cache=False`: nothing read or written."""
    if not use_cache:
        return build()
    digest = hashlib.blake2b(json.dumps(key, sort_keys=True).encode(), digest_size=10).hexdigest()
    path = cache_dir() / f"{label}-{digest}.pt"
    try:
        found = read_cache(path, key)
    except LabError as err:
        print(f"{err} Rebuilding it now.")
        found = None
    if found is not None:
        return found
    tensors, meta = build()
    try:
        write_cache(path, key, tensors, meta)
    except OSError as err:  # a read-only or full cache folder slows the next run down, nothing more
        print(f"could not write the tensor cache {path} ({err}); set LABKIT_CACHE to a writable folder.")
    return tensors, meta
