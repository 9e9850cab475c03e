"""Where a lab runs: its parameters resolved and checked, the device, seeding, output folders, `record`.

Introduced in notebooks/01_data_prep.ipynb. After its `parameters` cell every notebook calls
`lab = labkit.setup("02_naive_cnn", globals())`; the rest of the lab reads `lab.epochs`, `lab.device`,
`lab.figures_dir`, ... and records its headline figures with `labkit.record(...)`.
"""

from __future__ import annotations

import html
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from labkit import recipes
from labkit.core import (
    LabError,
    __version__,
    dataset_key,
    pick_device,
    project_root,
    seed_everything,
    to_jsonable,
    write_json_atomic,
)
from labkit.data.registry import local_copy, resolve_root
from labkit.params import validate
from labkit.widgets import headless
from labkit.zoo import checkpoint_path

# Parameters that may legitimately hold values of different types (a path or None, a dict, ...).
_FREE_TYPED = {"out_dir", "data_root"}


@dataclass
class Lab:
    """The resolved settings of one notebook run. Parameters read as attributes: `lab.epochs`."""

    notebook: str
    profile: str
    device: torch.device
    out_dir: Path
    params: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    recipe: str = "default/full"  # which defaults applied: "<dataset>/<profile>" for a dataset's own recipe

    def __getattr__(self, name: str) -> Any:
        params = self.__dict__.get("params", {})
        if name in params:
            return params[name]
        raise AttributeError(f"lab has no parameter {name!r}; it has {sorted(params)}")

    @property
    def seed(self) -> int:
        return self.params["seed"]

    @property
    def figures_dir(self) -> Path:
        return self.out_dir / "figures" / self.notebook

    @property
    def metrics_path(self) -> Path:
        return self.out_dir / "metrics" / f"{self.notebook}.json"

    @property
    def checkpoints_dir(self) -> Path:
        return self.out_dir / "checkpoints"

    def savefig(self, fig, name: str, dpi: int = 110) -> None:
        """Save a matplotlib figure as `{figures_dir}/{name}.png` (returning nothing: a cell that ends with
        it shows the figure, not a path)."""
        path = self.figures_dir / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi, bbox_inches="tight")

    def record(self, **figures: Any) -> dict[str, Any]:
        """Add headline figures to `{out_dir}/metrics/{notebook}.json` (written atomically)."""
        self.figures.update({k: to_jsonable(v) for k, v in figures.items()})
        write_json_atomic(self.metrics_path, self.figures)
        return dict(self.figures)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        where = f"profile={self.profile}, recipe={self.recipe}, device={self.device}"
        return f"Lab({self.notebook}, {where}, {shown})"

    def _repr_html_(self) -> str:
        """What a notebook shows for `lab`: the environment, then the parameters."""
        rows = "".join(
            f"<tr><th style='text-align:left;padding-right:12px'>{html.escape(what)}</th>"
            f"<td style='text-align:left'>{html.escape(value)}"
            + (f"<br><span style='color:#a15c00'>{html.escape(advice)}</span>" if advice else "")
            + "</td></tr>"
            for what, value, advice in environment(self)
        )
        params = ", ".join(f"{k}={v!r}" for k, v in self.params.items() if k not in ("out_dir", "data_root"))
        return (
            f"<b>{html.escape(self.notebook)}</b>, profile <code>{self.profile}</code>, recipe "
            f"<code>{html.escape(self.recipe)}</code><table>{rows}</table>"
            f"<details><summary>parameters</summary><code>{html.escape(params)}</code></details>"
        )


_current: Lab | None = None

# The labs that explain lab 02's network (labkit.zoo.naive_cnn) and train a quick one without it.
_USES_LAB02_NETWORK = ("05", "06", "07", "08")
_GPU_HINT = "no GPU found: fine for shapes; real datasets train much faster on a GPU (Colab: Runtime > GPU)."
_NO_NETWORK = "this lab trains a quick one first; run lab 02 with the same dataset, profile and out_dir."


def environment(lab: Lab) -> list[tuple[str, str, str]]:
    """What `lab` runs with, as (what, value, advice) rows: versions, device, where the data and the
    outputs go, and whether lab 02's network is there (for the labs that explain it); advice "" is fine."""
    versions = f"labkit {__version__}, torch {torch.__version__}, Python {platform.python_version()}"
    rows = [("versions", versions, "")]
    dataset = lab.params.get("dataset") or "shapes"
    if lab.device.type == "cuda":
        rows.append(("device", f"cuda: {torch.cuda.get_device_name(lab.device)}", ""))
    elif lab.device.type == "cpu":
        hint = _GPU_HINT if dataset_key(dataset) != "shapes" and lab.params.get("device") == "auto" else ""
        rows.append(("device", f"cpu ({torch.get_num_threads()} threads)", hint))
    else:
        rows.append(("device", str(lab.device), ""))

    root, origin = resolve_root(lab.params.get("data_root"))
    if dataset_key(dataset) == "shapes":
        rows.append(("data", "shapes: generated by labkit, nothing to download", ""))
    elif dataset_key(dataset) == "folder":
        rows.append(("data", dataset, ""))
    else:
        found = local_copy(dataset, lab.params.get("data_root"))
        missing = f"not there yet: downloaded on first use if online; offline, put it under {root}."
        rows.append(("data", f"{dataset} in {found or root} (root from {origin})", "" if found else missing))
    rows.append(("outputs", f"{lab.out_dir} (figures/, metrics/, checkpoints/)", ""))

    if lab.notebook[:2] in (*_USES_LAB02_NETWORK, "02"):
        path = checkpoint_path(lab)
        if lab.notebook.startswith("02"):
            rows.append(("lab-02 network", f"this lab saves it to {path}", ""))
        else:
            there = path.is_file()
            where = f"found: {path}" if there else f"not found at {path}"
            rows.append(("lab-02 network", where, "" if there else _NO_NETWORK))
    if "interactive" in lab.params:
        live = lab.params["interactive"] if lab.params["interactive"] is not None else not headless()
        rows.append(("explorers", "live widgets" if live else "static figures (no front end to click)", ""))
    return rows


def _check_type(name: str, value: Any, default: Any) -> Any:
    """Accept `value` where it has the type of the profile's default; say what is wrong otherwise."""
    if value is None or default is None or name in _FREE_TYPED:
        return value
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, (list, tuple)):
        ok = isinstance(value, (list, tuple))
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise LabError(
            f"parameter {name}={value!r} is a {type(value).__name__}, but {name} takes a "
            f"{type(default).__name__} (for example {default!r}). With the runner write "
            f"-p {name}={default!r} (values are read as YAML: 3 is an int, '3' a string)."
        )
    return value


def parameter_names(table: Mapping[str, Any]) -> set[str]:
    """Every parameter a lab's recipe table (`labkit.recipes.LABS[...]`) gives a value, and `profile`."""
    return {"profile", *recipes.COMMON, *(name for p in recipes.PROFILES for name in table.get(p, {}))}


def setup(
    notebook: str,
    namespace: Mapping[str, Any] | None = None,
    *,
    defaults: Mapping[str, Any] | None = None,
    **params: Any,
) -> Lab:
    """Resolve a notebook's parameters, seed everything, pick the device, make output folders.

    The parameters are read from `namespace` (the notebook's `globals()` after its `parameters` cell;
    other names are ignored) and from `params` (scripts and tests), which win; `None` takes the value
    of `defaults` (the lab's recipe table, by default `labkit.recipes.LABS[notebook]`). Returns the
    `Lab`, made current for `labkit.record`. Raises a LabError naming any unknown, mistyped or
    out-of-range parameter, before any work.
    """
    global _current
    table = recipes.LABS.get(notebook) if defaults is None else defaults
    if table is None:
        raise LabError(f"no recipe for a notebook {notebook!r}; the labs are {sorted(recipes.LABS)}.")
    names = parameter_names(table)
    unknown = sorted(set(params) - names)
    if unknown:
        raise LabError(f"{notebook}: unknown parameter(s) {unknown}; this notebook takes {sorted(names)}.")
    given = {**{k: v for k, v in (namespace or {}).items() if k in names}, **params}
    profile = given.pop("profile", None) or "full"
    own = recipes.resolve(table, profile, given.get("dataset"))
    recipe = recipes.recipe_name(table, profile, given.get("dataset"))
    resolved = {}
    for name, default in own.items():
        value = given.get(name)
        resolved[name] = default if value is None else _check_type(name, value, default)
    validate(resolved)  # ranges, choices and names, before any work

    out_dir = resolved["out_dir"]
    out_dir = Path(out_dir) if out_dir else project_root() / "runs" / profile
    out_dir = out_dir.expanduser().resolve()
    resolved["out_dir"] = str(out_dir)
    device = pick_device(resolved["device"])
    seed_everything(int(resolved["seed"]))

    lab = Lab(
        notebook=notebook, profile=profile, device=device, out_dir=out_dir, params=resolved, recipe=recipe
    )
    for folder in (lab.figures_dir, lab.metrics_path.parent, lab.checkpoints_dir):
        folder.mkdir(parents=True, exist_ok=True)
    # A rerun starts its metrics afresh, so no figure of an earlier run survives unnoticed.
    write_json_atomic(lab.metrics_path, {})
    _current = lab
    return lab


def current() -> Lab:
    """The Lab made by the last `setup` call."""
    if _current is None:
        raise LabError("no lab is set up: call labkit.setup(notebook, globals()) first.")
    return _current


def record(**figures: Any) -> dict[str, Any]:
    """Record headline figures of the current lab (see `Lab.record`)."""
    return current().record(**figures)
