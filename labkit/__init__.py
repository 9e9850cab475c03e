"""labkit: the helper library of the CNN Lab notebook series.

Submodules (`labkit.data`, `labkit.models`, `labkit.train`, `labkit.metrics`, `labkit.plots`,
`labkit.interpret`, `labkit.check`, `labkit.util`, `labkit.widgets`) are imported on first use, so
`import labkit` is cheap and has no side effects.
"""

from __future__ import annotations

import importlib

from labkit.core import LabError, pick_device
from labkit.lab import current, record, savefig, setup

__version__ = "0.1.0"
_SUBMODULES = {"data", "models", "train", "metrics", "plots", "interpret", "check", "env", "zoo", "run", "util", "widgets"}


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"labkit.{name}")
    raise AttributeError(f"module 'labkit' has no attribute {name!r}")


__all__ = ["LabError", "current", "pick_device", "record", "savefig", "setup", "__version__"]
