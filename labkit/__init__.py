"""labkit: the helper library of the CNN Lab notebook series. `labkit.setup`, `labkit.record` and the
submodules are imported on first use, so `import labkit` is cheap and has no side effects."""

from __future__ import annotations

import importlib
from typing import Any

from labkit.core import LabError, __version__, pick_device

_SUBMODULES = {"check", "core", "data", "interpret", "lab", "metrics", "models", "params", "plots", "recipes",
               "train", "util", "widgets", "zoo"}  # fmt: skip
_FROM_LAB = {"current", "record", "setup"}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"labkit.{name}")
    if name in _FROM_LAB:
        return getattr(importlib.import_module("labkit.lab"), name)
    raise AttributeError(f"module 'labkit' has no attribute {name!r}")


__all__ = ["LabError", "__version__", "current", "pick_device", "record", "setup"]
