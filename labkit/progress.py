"""Progress bars that suit where a lab runs: tqdm's widget in a Jupyter kernel, its text bar in a
terminal, and, headless (LABKIT_HEADLESS=1, as the labkit runner sets it), only the final state, so an
executed notebook keeps how training ended. Introduced in notebooks/02_naive_cnn.ipynb (`train.fit`).
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
    return ipython is not None and hasattr(ipython.get_ipython(), "kernel")


def headless() -> bool:
    """True when LABKIT_HEADLESS says so ("1"; "0" or unset: not headless)."""
    flag = os.environ.get("LABKIT_HEADLESS", "").strip()
    return bool(flag) and flag != "0"


class FinalLine(std.tqdm):
    """A tqdm bar that stays silent while it runs and prints its final state once, on close (unless
    made with `leave=False`)."""

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
