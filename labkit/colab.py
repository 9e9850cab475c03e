"""Colab: the "Open in Colab" badge and the setup cell of every notebook, and what that cell runs.

Introduced in notebooks/01_data_prep.ipynb (its first code cell). The repository the badges and
the setup cells point to is set here, once: `REPOSITORY` and `BRANCH`. After changing them (a fork,
a course's own copy), `python -m labkit.colab` rewrites the badge and the setup cell of every
notebook; tests/test_colab.py fails while a notebook disagrees with this module.

On Colab the setup cell clones the repository into `CLONE_DIR` (once per runtime), puts it on
`sys.path` and calls `setup`, which installs what Colab lacks, so `import labkit` works in the
same kernel, without the restart an editable install alone would need (a running interpreter
never reads the `.pth` file `pip install -e` writes). Anywhere else the cell does nothing.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPOSITORY = "https://github.com/cnn-lab/cnn-lab"  # the one place: badges and setup cells are made from it
BRANCH = "main"  # the repository's default branch (the one a clone checks out)
CLONE_DIR = "/content/cnn-lab"  # where the setup cell clones the project on Colab
DRIVE_FOLDER = "/content/drive/MyDrive/cnn-lab"  # runs/, data and caches with keep_on_drive=True
SKIP_ON_COLAB = {"jupyterlab"}  # requirements Colab replaces with its own (its front end)

_SETUP_MARK = "# Colab setup"


def badge(notebook: str) -> str:
    """The Markdown of the "Open in Colab" badge of `notebook` (e.g. "02_naive_cnn")."""
    path = re.sub(r"^https://github.com/", "", REPOSITORY.rstrip("/"))
    url = f"https://colab.research.google.com/github/{path}/blob/{BRANCH}/notebooks/{notebook}.ipynb"
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"


def setup_cell_source() -> str:
    """The source of every notebook's setup cell (its first code cell, before `parameters`)."""
    return f'''{_SETUP_MARK}: on Google Colab this fetches CNN Lab and installs what Colab lacks (a minute, once per
# runtime); anywhere else it does nothing. KEEP_ON_DRIVE = True keeps runs/ and the data on your Google Drive.
KEEP_ON_DRIVE = False
import sys
if "google.colab" in sys.modules:
    import os, subprocess
    if not os.path.isdir("{CLONE_DIR}"):
        subprocess.run(["git", "clone", "--quiet", "--depth", "1", "{REPOSITORY}", "{CLONE_DIR}"], check=True)
    sys.path.insert(0, "{CLONE_DIR}")
    from labkit.colab import setup
    setup("{CLONE_DIR}", keep_on_drive=KEEP_ON_DRIVE)'''


def is_setup_cell(source: str) -> bool:
    return source.startswith(_SETUP_MARK)


def on_colab() -> bool:
    return "google.colab" in sys.modules


def _requirements(root: Path) -> list[str]:
    """requirements.txt without comments and without what Colab brings itself (SKIP_ON_COLAB)."""
    keep = []
    for line in (root / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        name = re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0].lower()
        if line and name not in SKIP_ON_COLAB:
            keep.append(line)
    return keep


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *args], check=True)


def install(root: str | Path) -> bool:
    """Install labkit's requirements (Colab keeps its own torch: the ranges admit it) and labkit
    itself (editable, for later kernels and subprocesses); once per runtime. True if pip ran."""
    root = Path(root)
    wanted = _requirements(root)
    stamp = root / ".colab-installed"
    digest = hashlib.sha256("\n".join(wanted).encode()).hexdigest()
    if stamp.is_file() and stamp.read_text() == digest:
        return False
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
        fh.write("\n".join(wanted) + "\n")
    try:
        _pip("-r", fh.name)
        _pip("--no-deps", "-e", str(root))
    finally:
        os.unlink(fh.name)
    importlib.invalidate_caches()  # packages new in site-packages import in this very kernel
    stamp.write_text(digest)
    return True


def drive_storage(root: str | Path, folder: str | Path = DRIVE_FOLDER, mount: bool = True) -> dict[str, str]:
    """Keep runs/, the datasets, labkit's tensor cache and torch's weights on Google Drive, so a
    recycled runtime finds them again: `{root}/runs` becomes a link to `{folder}/runs`, and
    LABKIT_DATA, LABKIT_CACHE and TORCH_HOME point into `folder`. Returns where each went."""
    if mount:
        from google.colab import drive  # only on Colab

        drive.mount(str(Path(folder).parents[1]))
    folder, runs = Path(folder), Path(root) / "runs"
    places = {"runs": folder / "runs", "LABKIT_DATA": folder / "data", "LABKIT_CACHE": folder / "cache",
              "TORCH_HOME": folder / "torch"}  # fmt: skip
    for path in places.values():
        path.mkdir(parents=True, exist_ok=True)
    if runs.is_symlink() and runs.resolve() != places["runs"].resolve():
        runs.unlink()
    if not runs.exists():
        runs.symlink_to(places["runs"], target_is_directory=True)
    elif not runs.is_symlink():
        raise RuntimeError(f"{runs} already holds this runtime's results; move them to {places['runs']} "
                           f"and run the setup cell again.")  # fmt: skip
    for name in ("LABKIT_DATA", "LABKIT_CACHE", "TORCH_HOME"):
        os.environ[name] = str(places[name])
    return {k: str(v) for k, v in places.items()}


def setup(root: str | Path = CLONE_DIR, *, keep_on_drive: bool = False, drive_folder: str | Path = DRIVE_FOLDER) -> None:
    """What the setup cell runs on Colab: install, make `import labkit` work in this kernel, work
    from `{root}/notebooks` (so runs/ lands in the clone), and optionally keep outputs on Drive."""
    root = Path(root).resolve()
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    ran = install(root)
    os.chdir(root / "notebooks")
    where = drive_storage(root, drive_folder) if keep_on_drive else None
    import labkit

    print(f"CNN Lab {'installed' if ran else 'ready'}: labkit {labkit.__version__} from {Path(labkit.__file__).parent}"
          + (f"; runs, data and caches on Google Drive ({drive_folder})" if where else
             "; runs/ and the data last as long as this runtime (KEEP_ON_DRIVE = True keeps them)."))  # fmt: skip


def add_cells(nb, notebook: str) -> None:
    """Give a notebook (nbformat) this module's badge, under its title, and setup cell, as its
    first code cell (`notebook`: its name, e.g. "02_naive_cnn"); what is there already is replaced."""
    import nbformat

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
    import nbformat

    changed = []
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        before = nbformat.writes(nb)
        add_cells(nb, path.stem)
        if nbformat.writes(nb) != before:
            nbformat.write(nb, path)
            changed.append(path)
    return changed


if __name__ == "__main__":
    from labkit.run import available

    for p in write_cells(available()):
        print("updated", p)
