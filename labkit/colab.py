"""Colab: what the setup cell at the top of every notebook (notebooks/01_data_prep.ipynb first) runs.

`REPOSITORY` and `BRANCH` are the one place badges and setup cells come from (`python -m course colab`
rewrites them). On Colab the cell clones the project into `CLONE_DIR`, puts it on `sys.path` and calls
`setup`, so `import labkit` works in the same kernel (a running interpreter never reads the `.pth` file
`pip install -e` writes). Anywhere else the cell does nothing.
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


def _requirements(root: Path) -> list[str]:
    """requirements.txt without comments and without what Colab brings itself (SKIP_ON_COLAB)."""
    lines = [line.split("#", 1)[0].strip() for line in (root / "requirements.txt").read_text().splitlines()]
    names = [re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0].lower() for line in lines]
    return [line for line, name in zip(lines, names) if line and name not in SKIP_ON_COLAB]


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *args], check=True)


def install(root: str | Path) -> bool:
    """Install labkit's requirements (Colab keeps its own torch: the ranges admit it) and labkit itself,
    editable, once per runtime; True if pip ran."""
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
    """Keep runs/, the data, labkit's cache and torch's weights on Google Drive for a recycled runtime:
    `{root}/runs` becomes a link to `{folder}/runs`, and LABKIT_DATA, LABKIT_CACHE and TORCH_HOME point
    into `folder`. Returns where each went."""
    if mount:
        from google.colab import drive  # only on Colab

        drive.mount(str(Path(folder).parents[1]))
    folder, runs = Path(folder), Path(root) / "runs"
    env = {"LABKIT_DATA": folder / "data", "LABKIT_CACHE": folder / "cache", "TORCH_HOME": folder / "torch"}
    places = {"runs": folder / "runs", **env}
    for path in places.values():
        path.mkdir(parents=True, exist_ok=True)
    if runs.is_symlink() and runs.resolve() != places["runs"].resolve():
        runs.unlink()
    if not runs.exists():
        runs.symlink_to(places["runs"], target_is_directory=True)
    elif not runs.is_symlink():
        raise RuntimeError(
            f"{runs} already holds this runtime's results; move them to {places['runs']} "
            f"and run the setup cell again."
        )
    os.environ.update({name: str(path) for name, path in env.items()})
    return {k: str(v) for k, v in places.items()}


def setup(
    root: str | Path = CLONE_DIR, *, keep_on_drive: bool = False, drive_folder: str | Path = DRIVE_FOLDER
) -> None:
    """What the setup cell runs on Colab: install, make `import labkit` work in this kernel, work
    from `{root}/notebooks` (so runs/ lands in the clone), and optionally keep outputs on Drive."""
    root = Path(root).resolve()
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    ran = install(root)
    os.chdir(root / "notebooks")
    kept = "runs/ and the data last as long as this runtime (KEEP_ON_DRIVE = True keeps them)."
    if keep_on_drive:
        drive_storage(root, drive_folder)
        kept = f"runs, data and caches on Google Drive ({drive_folder})"
    import labkit

    here = Path(labkit.__file__).parent
    print(f"CNN Lab {'installed' if ran else 'ready'}: labkit {labkit.__version__} from {here}; {kept}")
