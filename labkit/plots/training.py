"""Figures of training and evaluation: learning curves, confusion matrices, misclassified images,
comparison tables. Every function returns its Figure (or DataFrame) and never calls `plt.show()`.

Introduced in notebooks/02_naive_cnn.ipynb.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import ConfusionMatrixDisplay

from labkit.core import LabError
from labkit.metrics import confusion
from labkit.plots.images import tile_grid, to_display
from labkit.train.history import History, smooth

TRAIN_COLOR, VAL_COLOR = "tab:blue", "tab:orange"
# (panel title, y label, candidate columns as (column, legend label, colour))
_PANELS = (
    (
        "Loss",
        "cross-entropy",
        (
            ("train_loss", "train", TRAIN_COLOR),
            ("val_loss", "val", VAL_COLOR),
            ("loss", "batch", TRAIN_COLOR),
        ),
    ),
    (
        "Accuracy",
        "accuracy",
        (
            ("train_acc", "train", TRAIN_COLOR),
            ("val_acc", "val", VAL_COLOR),
            ("accuracy", "batch", TRAIN_COLOR),
        ),
    ),
)
MAX_ANNOTATED_CLASSES = 20  # beyond this, numbers in the cells are unreadable


def _frame(history: Any) -> pd.DataFrame:
    if isinstance(history, History):
        return history.df
    if isinstance(history, pd.DataFrame):
        return history
    if isinstance(history, Mapping):
        return pd.DataFrame(dict(history))
    raise LabError(f"expected a History, a DataFrame or a dict of columns, got a {type(history).__name__}.")


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


def _line(ax, x, y, smoothing: float, label: str, color: str) -> None:
    """Raw values faint, smoothed values bold (only the raw ones when smoothing is 0)."""
    y = np.asarray(y, dtype=float)
    marker = "o" if len(y) == 1 else None
    if smoothing > 0:
        ax.plot(x, y, color=color, alpha=0.3, linewidth=1, marker=marker)
        ax.plot(x, smooth(y, smoothing), color=color, linewidth=2.2, label=label, marker=marker)
    else:
        ax.plot(x, y, color=color, linewidth=2, label=label, marker=marker)


def curves(history_or_df: Any, smoothing: float = 0.6, title: str | None = None) -> Figure:
    """Loss and accuracy side by side, train vs val: raw values faint, smoothed bold, best epoch marked.

    Args:
        history_or_df: a History from `fit`, its `.df`, or the DataFrame of `overfit_one_batch`
            (columns step, loss, accuracy).
        smoothing: exponential smoothing of the bold lines (see `labkit.train.smooth`); 0 draws raw only.
        title: a title above both panels.

    Returns:
        Figure with two axes titled "Loss" and "Accuracy".
    """
    df = _frame(history_or_df)
    x, xlabel = _x(df)
    best = _best_epoch(history_or_df, df, smoothing)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, (panel, ylabel, candidates) in zip(axes, _PANELS):
        present = [c for c in candidates if c[0] in df.columns and not df[c[0]].isna().all()]
        if not present:
            raise LabError(f"no {panel.lower()} column in {list(df.columns)}; pass fit's History or its .df.")
        for column, label, color in present:
            _line(ax, x, df[column], smoothing, label, color)
        if best is not None:
            ax.axvline(best, color="0.4", linestyle="--", linewidth=1, label=f"best epoch {best}")
            val = "val_loss" if panel == "Loss" else "val_acc"
            if val in df.columns:
                y_best = df.loc[x == best, val]
                ax.plot(
                    [best], y_best.to_numpy()[:1], marker="*", markersize=12, color=VAL_COLOR, linestyle=""
                )
        ax.set_title(panel)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def compare_curves(runs: Mapping[str, Any], metric: str = "val_acc", smoothing: float = 0.6) -> Figure:
    """One metric of several runs on one axis (raw faint, smoothed bold, one colour per run).

    Args:
        runs: {name: History or DataFrame}.
        metric: a column of the histories: "val_acc", "val_loss", "train_loss", "train_acc", "lr" ...

    Returns:
        Figure with one axis, one legend entry per run.
    """
    if not runs:
        raise LabError("compare_curves needs at least one run: {name: History}.")
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, (name, history) in enumerate(runs.items()):
        df = _frame(history)
        if metric not in df.columns:
            raise LabError(f"run {name!r} has no column {metric!r}; its columns are {list(df.columns)}.")
        x, xlabel = _x(df)
        _line(ax, x, df[metric], smoothing, str(name), f"C{i}")  # matplotlib's colour cycle
    ax.set_title(metric)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def confusion_heatmap(
    cm, classes: Sequence[str], ax=None, normalize: bool = False, title: str | None = None, cbar: bool = True
) -> Figure:
    """A confusion matrix drawn by scikit-learn's `ConfusionMatrixDisplay`: rows true class, columns
    predicted class.

    Args:
        cm: (K, K) counts (e.g. `labkit.metrics.confusion`); a float matrix is drawn as it is.
        classes: the K class names, on both axes.
        ax: an Axes to draw into (default: a new figure).
        normalize: divide each row by its sum first (cells then read "fraction of class i predicted j").
        title: default "confusion matrix (counts)" or "(row-normalised)".
        cbar: draw a colour bar.

    Returns:
        the Figure. Cells are annotated (counts as ints, fractions with 2 decimals) for up to
        MAX_ANNOTATED_CLASSES classes.
    """
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


def _pair(value: Any) -> tuple[np.ndarray, np.ndarray]:
    if hasattr(value, "y_true") and hasattr(value, "y_pred"):
        return np.asarray(value.y_true), np.asarray(value.y_pred)
    y_true, y_pred = value
    return np.asarray(y_true), np.asarray(y_pred)


def confusion_grid(splits: Mapping[str, Any], classes: Sequence[str]) -> Figure:
    """Confusion matrices of several splits: top row counts, bottom row row-normalised.

    Args:
        splits: {"train": (y_true, y_pred), "val": Predictions, ...} (pairs or objects with y_true/y_pred).
        classes: the class names.

    Returns:
        Figure with 2 x len(splits) axes, titled "<split>: counts (accuracy 0.950)" and
        "<split>: row-normalised".
    """
    if not splits:
        raise LabError("confusion_grid needs at least one split: {'test': (y_true, y_pred)}.")
    n, k = len(splits), len(classes)
    side = max(3.2, 0.4 * k + 1.8)
    fig, axes = plt.subplots(2, n, figsize=(side * n, side * 2), squeeze=False)
    for col, (name, value) in enumerate(splits.items()):
        y_true, y_pred = _pair(value)
        cm = confusion(y_true, y_pred, k)
        acc = float(np.mean(y_true == y_pred))
        confusion_heatmap(
            cm, classes, ax=axes[0, col], title=f"{name}: counts (accuracy {acc:.3f})", cbar=False
        )
        confusion_heatmap(
            cm, classes, ax=axes[1, col], normalize=True, title=f"{name}: row-normalised", cbar=False
        )
    fig.tight_layout()
    return fig


def misclassified_grid(
    images: Any, y_true, y_pred, confidence, classes: Sequence[str], k: int = 16, ncols: int = 8
) -> Figure:
    """The k most confident mistakes, labelled "true → pred (confidence)" (see `tile_grid`).

    Args:
        images: all N images in prediction order: uint8 (N, 3, H, W) or float in [0, 1], as a tensor
            or array, or a callable index -> image (e.g. `lambda i: splits.raw("test", i)`).
        y_true, y_pred, confidence: (N,) as in `labkit.train.Predictions`.
        classes: class names by index.
        k: how many mistakes to show (the most confident first: they are the instructive ones).
        ncols: images per row.

    Returns:
        the Figure (one Axes saying so when nothing is misclassified).
    """
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
    """One row per model or run, for comparing variants (columns in first-seen order).

    Args:
        rows: dicts such as {"name": "resnet", "params": 1.2e5, "val_acc": 0.93, "seconds": 41}.
            A "name" key in every row becomes the index.
        sort_by: a column to sort by, descending (e.g. "val_acc").

    Returns:
        DataFrame (missing values are NaN).
    """
    rows = [dict(r) for r in rows]
    if not rows:
        raise LabError("comparison_table needs at least one row (a dict per model).")
    columns: list[str] = []
    for r in rows:
        columns += [c for c in r if c not in columns]
    df = pd.DataFrame(rows, columns=columns)
    if all("name" in r for r in rows):
        df = df.set_index("name")
    if sort_by is not None:
        if sort_by not in df.columns:
            raise LabError(f"sort_by={sort_by!r} is not a column; columns are {list(df.columns)}.")
        df = df.sort_values(sort_by, ascending=False)
    return df
