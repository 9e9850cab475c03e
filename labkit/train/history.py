"""`History`, what `fit` returns (a row per epoch), and `Run`, what `fit` carries from epoch to epoch.

Introduced in notebooks/02_naive_cnn.ipynb."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from labkit.core import atomic_write

COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_loss_smooth", "lr", "seconds")
SMOOTHING = 0.6  # share of the smoothed validation loss carried over to the next epoch


def smooth(values: Iterable[float], smoothing: float = SMOOTHING) -> np.ndarray:
    """Exponential smoothing, as TensorBoard's slider (without its start-up de-biasing):
    s_1 = v_1, s_t = smoothing * s_{t-1} + (1 - smoothing) * v_t; NaN values are skipped over."""
    values = np.asarray(list(values), dtype=float)
    out = np.empty_like(values)
    running = np.nan
    for i, v in enumerate(values):
        if not np.isnan(v):
            running = v if np.isnan(running) else smoothing * running + (1.0 - smoothing) * v
        out[i] = running if not np.isnan(v) else np.nan
    return out


@dataclass
class History:
    """Per-epoch record of a `fit` run: `df`, a row per epoch with the columns COLUMNS (lr: the first
    group's at the epoch's start; val_loss_smooth: see `smooth`), `best_epoch` (the one with the lowest
    smoothed validation loss; None without validation) and `stopped_early`."""

    df: pd.DataFrame
    best_epoch: int | None = None
    stopped_early: bool = False

    @property
    def epochs_run(self) -> int:
        """Epochs trained in all, those before a resume included."""
        return len(self.df)

    @property
    def seconds(self) -> float:
        """Training seconds in all."""
        return float(self.df["seconds"].sum()) if len(self.df) else 0.0

    @property
    def best_val_acc(self) -> float | None:
        """The validation accuracy of `best_epoch`, whose weights `fit` restores."""
        if self.best_epoch is None:
            return None
        return float(self.df.loc[self.df["epoch"] == self.best_epoch].iloc[0]["val_acc"])

    def to_csv(self, path: str | Path) -> Path:
        """Write the per-epoch table to `path` as CSV, atomically."""
        with atomic_write(path, newline="") as fh:
            self.df.to_csv(fh, index=False)
        return Path(path)

    @classmethod
    def from_rows(cls, rows: list, best_epoch: int | None = None, stopped_early: bool = False) -> History:
        """A History of `rows`, dicts with the keys COLUMNS (one per epoch)."""
        df = pd.DataFrame(rows, columns=list(COLUMNS))
        df["epoch"] = df["epoch"].astype(int)
        return cls(df=df, best_epoch=best_epoch, stopped_early=stopped_early)

    def __repr__(self) -> str:
        acc = self.best_val_acc
        best = f", best_epoch={self.best_epoch}, best_val_acc={acc:.4f}" if self.best_epoch else ""
        stop = ", stopped early" if self.stopped_early else ""
        return f"History(epochs_run={self.epochs_run}{best}{stop}, seconds={self.seconds:.1f})"

    def _repr_html_(self) -> str:
        return f"<p>{self!r}</p>" + self.df.to_html(index=False, float_format=lambda v: f"{v:.4g}")


@dataclass
class Run:
    """What `fit` carries from one epoch to the next; its checkpoint saves it for an exact resume."""

    epoch: int = 0  # epochs finished
    rows: list[dict] = field(default_factory=list)  # one per finished epoch, with History's COLUMNS
    smooth: float | None = None  # smoothed validation loss of the last epoch
    best: float = math.inf  # the lowest smoothed validation loss so far
    best_epoch: int | None = None
    bad: int = 0  # epochs since best_epoch
    best_weights: dict | None = None  # a CPU copy of the model's state_dict at best_epoch
    stopped: bool = False  # early stopping ended the run
