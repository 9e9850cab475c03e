"""What `fit` returns: one row per epoch, and the figures a lab records from it; and `Run`, what
`fit` carries from one epoch to the next.

Introduced in notebooks/02_naive_cnn.ipynb.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from labkit.core import atomic_write

COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_loss_smooth", "lr", "seconds")
# How much of the smoothed validation loss carries over to the next epoch (early stopping, curves).
SMOOTHING = 0.6


def smooth(values: Iterable[float], smoothing: float = SMOOTHING) -> np.ndarray:
    """Exponential smoothing, as TensorBoard's slider (without its start-up de-biasing).

        s_1 = v_1,    s_t = smoothing * s_{t-1} + (1 - smoothing) * v_t

    `smoothing=0` gives the raw values back; closer to 1 is smoother and lags more.
    NaN values are carried through without disturbing the running value.
    """
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
    """Per-epoch record of a `fit` run.

    Attributes:
        df: one row per epoch with the columns epoch (from 1), train_loss, train_acc, val_loss, val_acc,
            val_loss_smooth (see `smooth`), lr (learning rate of the first parameter group at the
            start of the epoch) and seconds (wall time of the epoch).
        best_epoch: the epoch with the lowest smoothed validation loss, whose weights `fit` restores
            (unless restore_best=False). None without a validation loader.
        best_val_acc: validation accuracy of the best epoch's weights (the row of `best_epoch`).
        epochs_run: epochs trained in all (also those before a resume).
        seconds: training seconds in all.
        stopped_early: True when early stopping ended the run before `epochs`.
    """

    df: pd.DataFrame
    best_epoch: int | None = None
    stopped_early: bool = False

    @property
    def epochs_run(self) -> int:
        return len(self.df)

    @property
    def seconds(self) -> float:
        return float(self.df["seconds"].sum()) if len(self.df) else 0.0

    def _best_row(self) -> pd.Series | None:
        if self.best_epoch is None:
            return None
        return self.df.loc[self.df["epoch"] == self.best_epoch].iloc[0]

    @property
    def best_val_acc(self) -> float | None:
        row = self._best_row()
        return None if row is None else float(row["val_acc"])

    def to_csv(self, path: str | Path) -> Path:
        """Write the per-epoch table to `path` as CSV (temporary file, then rename)."""
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
        best = (
            f", best_epoch={self.best_epoch}, best_val_acc={self.best_val_acc:.4f}" if self.best_epoch else ""
        )
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

    def history(self) -> History:
        """The History of the epochs run so far."""
        return History.from_rows(self.rows, best_epoch=self.best_epoch, stopped_early=self.stopped)
