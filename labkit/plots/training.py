"""Figures of training and evaluation: learning curves, confusion matrices, mistakes, comparison tables.

Introduced in notebooks/02_naive_cnn.ipynb.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure, SubFigure
from sklearn.metrics import ConfusionMatrixDisplay

from labkit.core import LabError
from labkit.metrics import confusion
from labkit.plots.images import tile_grid, to_display
from labkit.train.history import History, smooth

TRAIN_COLOR, VAL_COLOR = "tab:blue", "tab:orange"
_SERIES = (("train", TRAIN_COLOR), ("val", VAL_COLOR), ("batch", TRAIN_COLOR))  # (legend label, colour)
# (panel title, y label, the columns drawn as the _SERIES, where present)
_PANELS = (
    ("Loss", "cross-entropy", ("train_loss", "val_loss", "loss")),
    ("Accuracy", "accuracy", ("train_acc", "val_acc", "accuracy")),
)
MAX_ANNOTATED_CLASSES = 20  # beyond this, numbers in the cells are unreadable


def _frame(history: Any) -> pd.DataFrame:
    if isinstance(history, History):
        return history.df
    if isinstance(history, pd.DataFrame):
        return history
    raise LabError(f"expected a History or a DataFrame, got a {type(history).__name__}.")


def _x(df: pd.DataFrame) -> tuple[np.ndarray, str]:
    for name in ("epoch", "step"):
        if name in df.columns:
            return df[name].to_numpy(), name
    return np.arange(1, len(df) + 1), "epoch"


def _best_epoch(history: Any, df: pd.DataFrame, smoothing: float) -> int | None:
    if isinstance(history, History):
        return history.best_epoch
    if "val_loss" not in df.columns or df["val_loss"].isna().all():
        return None
    s = df["val_loss_smooth"] if "val_loss_smooth" in df.columns else smooth(df["val_loss"], smoothing)
    return int(_x(df)[0][int(np.nanargmin(np.asarray(s)))])


def _line(ax: Axes, x: Any, y: Any, smoothing: float, label: str, color: str) -> None:
    """Raw values faint, smoothed values bold (only the raw ones when smoothing is 0)."""
    y = np.asarray(y, dtype=float)
    marker = "o" if len(y) == 1 else None
    if smoothing > 0:
        ax.plot(x, y, color=color, alpha=0.3, linewidth=1, marker=marker)
        ax.plot(x, smooth(y, smoothing), color=color, linewidth=2.2, label=label, marker=marker)
    else:
        ax.plot(x, y, color=color, linewidth=2, label=label, marker=marker)


def curves(history_or_df: Any, smoothing: float = 0.6, title: str | None = None) -> Figure:
    """Loss and accuracy side by side, train vs val: raw values faint, smoothed bold (`smoothing` 0: raw
    only), best epoch marked; from a History, its `.df`, or `overfit_one_batch`'s (step, loss, accuracy)."""
    df = _frame(history_or_df)
    x, xlabel = _x(df)
    best = _best_epoch(history_or_df, df, smoothing)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, (panel, ylabel, columns) in zip(axes, _PANELS):
        present = [(c, *s) for c, s in zip(columns, _SERIES) if c in df.columns and not df[c].isna().all()]
        if not present:
            raise LabError(f"no {panel.lower()} column in {list(df.columns)}; pass fit's History or its .df.")
        for column, label, color in present:
            _line(ax, x, df[column], smoothing, label, color)
        if best is not None:
            ax.axvline(best, color="0.4", linestyle="--", linewidth=1, label=f"best epoch {best}")
            if columns[1] in df.columns:  # the val column: a star at the best epoch
                y_best = df.loc[x == best, columns[1]].to_numpy()[:1]
                ax.plot([best], y_best, marker="*", markersize=12, color=VAL_COLOR, linestyle="")
        ax.set(title=panel, xlabel=xlabel, ylabel=ylabel)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def compare_curves(runs: Mapping[str, Any], metric: str = "val_acc", smoothing: float = 0.6) -> Figure:
    """One metric (a column such as "val_acc" or "lr") of several runs {name: History or DataFrame} on
    one axis: raw faint, smoothed bold, one colour and legend entry per run."""
    if not runs:
        raise LabError("compare_curves needs at least one run: {name: History}.")
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, (name, history) in enumerate(runs.items()):
        df = _frame(history)
        if metric not in df.columns:
            raise LabError(f"run {name!r} has no column {metric!r}; its columns are {list(df.columns)}.")
        x, xlabel = _x(df)
        _line(ax, x, df[metric], smoothing, str(name), f"C{i}")  # matplotlib's colour cycle
    ax.set(title=metric, xlabel=xlabel, ylabel=metric)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def confusion_heatmap(
    cm: Any,
    classes: Sequence[str],
    ax: Axes | None = None,
    normalize: bool = False,
    title: str | None = None,
    cbar: bool = True,
) -> Figure | SubFigure:
    """A (K, K) confusion matrix of counts or floats (rows true, columns predicted), drawn into `ax` or a
    new figure by scikit-learn's `ConfusionMatrixDisplay`; `normalize` divides each row by its sum."""
    cm = np.asarray(cm)
    k = len(classes)
    if cm.shape != (k, k):
        raise LabError(f"cm has shape {cm.shape} but there are {k} classes; pass a ({k}, {k}) matrix.")
    if normalize:
        sums = cm.sum(axis=1, keepdims=True)
        cm = np.divide(cm, sums, out=np.zeros(cm.shape), where=sums > 0)  # a class without samples: 0
    integral = not normalize and np.all(np.mod(cm, 1) == 0)
    if ax is None:
        side = max(3.5, 0.45 * k + 2)
        _, ax = plt.subplots(figsize=(side + 1, side))
    display = ConfusionMatrixDisplay(cm.astype(np.int64) if integral else cm, display_labels=list(classes))
    display.plot(
        ax=ax,
        cmap="Blues",
        values_format="d" if integral else ".2f",
        colorbar=cbar,
        xticks_rotation=45,
        include_values=k <= MAX_ANNOTATED_CLASSES,
        im_kw={"vmin": 0, "vmax": 1 if normalize else None},
    )
    ax.set(xlabel="predicted", ylabel="true")
    ax.set_title(title or ("confusion matrix (row-normalised)" if normalize else "confusion matrix (counts)"))
    return ax.figure


def confusion_grid(splits: Mapping[str, Any], classes: Sequence[str]) -> Figure:
    """Confusion matrices of several splits {name: (y_true, y_pred) or an object with y_true and y_pred,
    such as Predictions}: top row counts (with the accuracy), bottom row row-normalised."""
    if not splits:
        raise LabError("confusion_grid needs at least one split: {'test': (y_true, y_pred)}.")
    n, k = len(splits), len(classes)
    side = max(3.2, 0.4 * k + 1.8)
    fig, axes = plt.subplots(2, n, figsize=(side * n, side * 2), squeeze=False)
    for j, (name, value) in enumerate(splits.items()):
        both = hasattr(value, "y_true") and hasattr(value, "y_pred")
        y_true, y_pred = map(np.asarray, (value.y_true, value.y_pred) if both else value)
        cm = confusion(y_true, y_pred, k)
        acc = float(np.mean(y_true == y_pred))
        confusion_heatmap(cm, classes, axes[0, j], title=f"{name}: counts (accuracy {acc:.3f})", cbar=False)
        confusion_heatmap(
            cm, classes, axes[1, j], normalize=True, title=f"{name}: row-normalised", cbar=False
        )
    fig.tight_layout()
    return fig


def misclassified_grid(
    images: Any,
    y_true: Any,
    y_pred: Any,
    confidence: Any,
    classes: Sequence[str],
    k: int = 16,
    ncols: int = 8,
) -> Figure:
    """The k most confident mistakes (the instructive ones), labelled "true → pred (confidence)", from
    (N,) arrays as in `labkit.train.Predictions` and the N `images` in prediction order: (N, 3, H, W),
    uint8 or in [0, 1], or a callable index -> image (e.g. `lambda i: splits.raw("test", i)`)."""
    y_true, y_pred = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    confidence = np.asarray(confidence, dtype=float).ravel()
    if not (len(y_true) == len(y_pred) == len(confidence)):
        raise LabError("y_true, y_pred and confidence must have one entry per image.")
    if not callable(images) and len(images) != len(y_true):
        raise LabError(
            f"{len(images)} images for {len(y_true)} predictions; pass the images in prediction order."
        )
    wrong = np.flatnonzero(y_true != y_pred)
    shown = wrong[np.argsort(-confidence[wrong], kind="stable")][:k]
    if len(shown) == 0:
        fig, ax = plt.subplots(figsize=(4, 1.5))
        ax.text(0.5, 0.5, f"no misclassified images (of {len(y_true)})", ha="center", va="center")
        ax.axis("off")
        return fig
    tiles = np.concatenate(
        [to_display(images(int(i)) if callable(images) else images[int(i)]) for i in shown]
    )
    labels = [f"{classes[y_true[i]]} → {classes[y_pred[i]]} ({confidence[i]:.2f})" for i in shown]
    title = f"{len(wrong)} of {len(y_true)} misclassified; the {len(shown)} most confident mistakes"
    return tile_grid(tiles, ncols, labels, title=title, inches=1.9, color="tab:red")


def comparison_table(rows: Sequence[Mapping[str, Any]], sort_by: str | None = None) -> pd.DataFrame:
    """One row per model or run, columns in first-seen order (missing values NaN), indexed by "name"
    when every row has one, sorted by `sort_by` descending when given."""
    rows = [dict(r) for r in rows]
    if not rows:
        raise LabError("comparison_table needs at least one row (a dict per model).")
    df = pd.DataFrame(rows, columns=list(dict.fromkeys(c for r in rows for c in r)))  # first-seen order
    if all("name" in r for r in rows):
        df = df.set_index("name")
    if sort_by is not None:
        if sort_by not in df.columns:
            raise LabError(f"sort_by={sort_by!r} is not a column; columns are {list(df.columns)}.")
        df = df.sort_values(sort_by, ascending=False)
    return df
