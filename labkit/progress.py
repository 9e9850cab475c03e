"""Progress bars that suit where a lab runs: a live bar for people, the final state for reports.

Introduced in notebooks/02_naive_cnn.ipynb (the bars of `labkit.train.fit`). `progress.tqdm(...)`
takes tqdm's arguments and returns
- in JupyterLab or on Colab (a Jupyter kernel with a front end): tqdm's widget bar, live;
- in a terminal: tqdm's text bar;
- headless (LABKIT_HEADLESS=1, which the labkit runner and the tests set): a bar that draws nothing
  while it runs and prints its last state once, when it closes, such as
  `fit: 100%|██████████| 14/14 [00:31<00:00, train_loss=0.123, val_loss=0.200, val_acc=0.950]`.
  An executed notebook then keeps how training ended (epochs done, last losses) instead of a widget
  frozen at 0 %, and the runner's index shows that line (`course.report`). Bars made with
  `leave=False` (one per epoch, say) print nothing.
"""

from __future__ import annotations

import io
import os
import sys
from typing import Any

from tqdm import std


def jupyter_kernel() -> bool:
    """True inside a Jupyter kernel (JupyterLab, Colab, papermill), False in a plain interpreter."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def headless() -> bool:
    """True when LABKIT_HEADLESS says so ("1"; "0" or unset: not headless)."""
    flag = os.environ.get("LABKIT_HEADLESS", "").strip()
    return bool(flag) and flag != "0"


class FinalLine(std.tqdm):
    """A tqdm bar that stays silent while it runs and prints its final state once, on close."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._sink = kwargs.pop("file", None) or sys.stdout
        kwargs["file"] = io.StringIO()  # tqdm's own writes (a refresh, a newline) go nowhere
        kwargs.setdefault("ascii", False)  # the bar drawn in blocks, as a notebook shows text (not '#')
        super().__init__(*args, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> None:
        return None

    def close(self) -> None:
        if self.disable:
            return
        line = str(self) if (self.leave or self.leave is None) else None
        super().close()
        if line:
            print(line, file=self._sink, flush=True)


def tqdm(*args: Any, **kwargs: Any) -> std.tqdm:
    """A progress bar for where the code runs (see the module docstring); tqdm's arguments."""
    if headless():
        return FinalLine(*args, **kwargs)
    if jupyter_kernel():
        from tqdm.notebook import tqdm as notebook_tqdm

        return notebook_tqdm(*args, **kwargs)
    return std.tqdm(*args, **kwargs)


__all__ = ["FinalLine", "headless", "jupyter_kernel", "tqdm"]
