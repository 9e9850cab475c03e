"""The "Open in Colab" badge and the setup cell of every notebook, written from labkit.colab's settings.

    python -m course colab      # after changing labkit.colab.REPOSITORY or BRANCH (a fork, a course's copy)

tests/test_colab.py fails while a notebook disagrees with these.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

from course.run import available
from labkit import colab as settings  # read at each call: a test or a fork may change them

_SETUP_MARK = "# Colab setup"


def badge(notebook: str) -> str:
    """The Markdown of the "Open in Colab" badge of `notebook` (e.g. "02_naive_cnn")."""
    path = re.sub(r"^https://github.com/", "", settings.REPOSITORY.rstrip("/"))
    url = f"https://colab.research.google.com/github/{path}/blob/{settings.BRANCH}/notebooks/{notebook}.ipynb"
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"


def setup_cell_source() -> str:
    """The source of every notebook's setup cell (its first code cell, before `parameters`)."""
    return f'''{_SETUP_MARK}: on Google Colab this fetches CNN Lab and installs what Colab lacks (a minute, once per
# runtime); anywhere else it does nothing. KEEP_ON_DRIVE = True keeps runs/ and the data on your Google Drive.
KEEP_ON_DRIVE = False
import sys
if "google.colab" in sys.modules:
    import os, subprocess
    if not os.path.isdir("{settings.CLONE_DIR}"):
        subprocess.run(["git", "clone", "--quiet", "--depth", "1", "{settings.REPOSITORY}", "{settings.CLONE_DIR}"], check=True)
    sys.path.insert(0, "{settings.CLONE_DIR}")
    from labkit.colab import setup
    setup("{settings.CLONE_DIR}", keep_on_drive=KEEP_ON_DRIVE)'''


def is_setup_cell(source: str) -> bool:
    return source.startswith(_SETUP_MARK)


def add_cells(nb, notebook: str) -> None:
    """Give a notebook (nbformat) this module's badge, under its title, and setup cell, as its
    first code cell (`notebook`: its name, e.g. "02_naive_cnn"); what is there already is replaced."""
    title = nb.cells[0]
    lines = [ln for ln in title.source.splitlines() if "colab-badge.svg" not in ln]
    rest = "\n".join(lines[1:]).lstrip("\n")
    title.source = f"{lines[0]}\n\n{badge(notebook)}\n\n{rest}".rstrip("\n")
    code = [c for c in nb.cells if c.cell_type == "code"]
    if code and is_setup_cell(code[0].source):
        code[0].source = setup_cell_source()
    else:
        cell = nbformat.v4.new_code_cell(setup_cell_source())
        cell.id = "colab-setup"
        nb.cells.insert(nb.cells.index(code[0]) if code else len(nb.cells), cell)


def write_cells(notebooks: list[Path]) -> list[Path]:
    """`add_cells` for every notebook file; returns those that changed."""
    changed = []
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        before = nbformat.writes(nb)
        add_cells(nb, path.stem)
        if nbformat.writes(nb) != before:
            nbformat.write(nb, path)
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    """Rewrite the badge and setup cell of every lab notebook from labkit.colab's settings."""
    for p in write_cells(available()):
        print("updated", p)
    return 0
