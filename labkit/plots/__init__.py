"""Figures of the series, one file per kind: `training` (curves, confusion matrices, comparison
tables, misclassified grids), `images` (image grids, augmentation previews, class balance),
`filters` (filter and feature-map grids, patches, reconstructions), `maps` (heat-map overlays,
method grids, class models). Every function returns a matplotlib Figure and never calls show().

`labkit.plots.curves(...)` works as well as `labkit.plots.training.curves(...)`: names are looked up
in the submodules on first use, so importing labkit.plots stays cheap.
"""

from __future__ import annotations

import importlib

_SUBMODULES = ("training", "images", "filters", "maps")


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"labkit.plots.{name}")
    for sub in _SUBMODULES:
        try:
            module = importlib.import_module(f"labkit.plots.{sub}")
        except ModuleNotFoundError as err:
            if err.name != f"labkit.plots.{sub}":
                raise
            continue
        if name in getattr(module, "__all__", ()) or (not name.startswith("_") and hasattr(module, name)
                                                        and callable(getattr(module, name))
                                                        and getattr(getattr(module, name), "__module__", "") == module.__name__):
            return getattr(module, name)
    raise AttributeError(f"labkit.plots has no {name!r}; see labkit/plots/{{training,images,filters,maps}}.py")
