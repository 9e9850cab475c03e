"""A disk cache of decoded images as uint8 tensors, reused across labs and runs.

Introduced in notebooks/01_data_prep.ipynb. Decoding 50,000 CIFAR-10 JPEGs takes half a minute on
two cores; every lab that loads them would pay it again. Instead the decoded images (and anything
else worth keeping, such as the shapes' masks or the list of unreadable files) are saved once, as a
torch file named after a hash of what they were made from:

- a folder dataset: the image size and, for every file, its path, size and modification time, so
  adding, removing or editing one image gives a new key and the cache is rebuilt;
- the shapes generator: its arguments and a hash of its source code.

A cache file also stores a checksum of its tensors. A file cut short (a full disk, a killed run) or
altered is detected when read: `read_cache` raises a `LabError` naming the file, and `cached`
prints that message and rebuilds it. Files are written to a temporary name and renamed, so a
reader never sees half a file. Where: `$LABKIT_CACHE`, else `<user cache>/labkit/tensors`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from labkit.core import LabError

FORMAT = 1


def cache_dir() -> Path:
    """Where tensor caches live: `$LABKIT_CACHE`, else `$XDG_CACHE_HOME/labkit/tensors` (or ~/.cache/...)."""
    env = os.environ.get("LABKIT_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "labkit" / "tensors"


def files_fingerprint(paths: Iterable[str]) -> str:
    """A hash of every file's path, size and modification time (a changed file changes it)."""
    h = hashlib.blake2b(digest_size=16)
    for p in paths:
        st = os.stat(p)
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def source_fingerprint(*objects: Any) -> str:
    """A hash of the source code of modules or functions: a cache made by older code is not reused."""
    import inspect

    h = hashlib.blake2b(digest_size=8)
    for obj in objects:
        h.update(inspect.getsource(obj).encode())
    return h.hexdigest()


def cache_path(label: str, key: dict) -> Path:
    """The file for `key` (a JSON-able dict): `<cache dir>/<label>-<hash of key>.pt`."""
    digest = hashlib.blake2b(json.dumps(key, sort_keys=True).encode(), digest_size=10).hexdigest()
    return cache_dir() / f"{label}-{digest}.pt"


def _checksum(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())  # the raw bytes, without a copy
    return h.hexdigest()


def write_cache(path: Path, key: dict, tensors: dict[str, torch.Tensor], meta: dict | None = None) -> None:
    """Save `tensors` (CPU) and `meta` (plain data) under `path`, atomically, with their checksum."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    payload = {"format": FORMAT, "key": json.dumps(key, sort_keys=True), "meta": json.dumps(meta or {}),
               "tensors": tensors, "checksum": _checksum(tensors)}  # fmt: skip
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_cache(path: Path, key: dict) -> tuple[dict[str, torch.Tensor], dict] | None:
    """The tensors and meta saved under `path` for `key`; None when there is no such file.

    Raises:
        LabError: the file is damaged (truncated, not a torch file, checksum mismatch) or was made
            for another key; the message names the file and says it can be deleted.
    """
    path = Path(path)
    if not path.is_file():
        return None
    fix = f"delete {path} (labkit rebuilds it from the data)"
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, wrong magic number, unpickling error: all mean "damaged"
        raise LabError(f"the tensor cache {path} is damaged or truncated ({type(err).__name__}: {err}); {fix}.") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT or "tensors" not in payload:
        raise LabError(f"the tensor cache {path} is not a labkit cache of format {FORMAT}; {fix}.")
    if payload.get("key") != json.dumps(key, sort_keys=True):
        raise LabError(f"the tensor cache {path} was made from other data (its key differs); {fix}.")
    tensors = payload["tensors"]
    if _checksum(tensors) != payload.get("checksum"):
        raise LabError(f"the tensor cache {path} does not match its checksum (altered or damaged); {fix}.")
    return tensors, json.loads(payload["meta"])


def cached(
    label: str, key: dict, build: Callable[[], tuple[dict[str, torch.Tensor], dict]], *, use_cache: bool = True
) -> tuple[dict[str, torch.Tensor], dict]:
    """Read (tensors, meta) for `key` from the cache, or `build()` them and save them there.

    A damaged or mismatching file is reported (printed, with the reason) and rebuilt, never used.
    With `use_cache=False` nothing is read or written.
    """
    if not use_cache:
        return build()
    path = cache_path(label, key)
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
