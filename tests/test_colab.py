"""labkit.colab: the setup cell, run in a fresh interpreter against a local clone, makes `import
labkit` work in that same interpreter on Colab and does nothing elsewhere; Drive keeps the outputs."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from course import colab as cells
from labkit import colab
from labkit.core import project_root

SCRIPT = r"""
import importlib.util, json, os, subprocess, sys, types
PROJECT, CLONE, SOURCE = sys.argv[1:4]
# A fresh interpreter that cannot import labkit: the test venv's own editable install is taken away.
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != PROJECT]
assert importlib.util.find_spec("labkit") is None, "labkit is importable before the setup cell ran"

pip, real_run = [], subprocess.run
def run(cmd, *args, **kwargs):  # pip is recorded, not run: everything is installed already here
    if list(cmd[:3]) == [sys.executable, "-m", "pip"]:
        wanted = open(cmd[cmd.index("-r") + 1]).read() if "-r" in cmd else None
        pip.append({"args": list(cmd[3:]), "requirements": wanted})
        return subprocess.CompletedProcess(cmd, 0)
    return real_run(cmd, *args, **kwargs)
subprocess.run = run

start = os.getcwd()
exec(SOURCE, {"__name__": "__main__"})  # not on Colab: nothing happens
local = {"imported": "labkit" in sys.modules, "cwd": os.getcwd() == start, "pip": len(pip),
         "cloned": os.path.exists(CLONE)}
sys.modules["google.colab"] = types.ModuleType("google.colab")  # now pretend to be Colab
exec(SOURCE, {"__name__": "__main__"})
import labkit, labkit.core
exec(SOURCE, {"__name__": "__main__"})  # the cell run again (or the next notebook): no second install
print(json.dumps({"local": local, "file": labkit.__file__, "cwd": os.getcwd(), "pip": pip,
                  "root": str(labkit.core.project_root())}))
"""


def test_setup_cell_makes_labkit_importable_in_the_same_interpreter_on_colab_only(tmp_path):
    root = project_root()
    if not (root / ".git").exists() or shutil.which("git") is None:
        pytest.skip("needs the project as a git checkout and git")
    clone = tmp_path / "content" / "cnn-lab"
    source = (
        cells.setup_cell_source()
        .replace(colab.REPOSITORY, root.as_uri())
        .replace(colab.CLONE_DIR, str(clone))
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(root), str(clone), source],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["local"] == {"imported": False, "cwd": True, "pip": 0, "cloned": False}
    assert report["file"] == str(clone / "labkit" / "__init__.py")  # from the clone, in the same interpreter
    assert report["cwd"] == str(clone / "notebooks") and report["root"] == str(
        clone
    )  # runs/ lands in the clone
    assert "CNN Lab installed" in done.stdout
    first, editable = report["pip"]  # two pip calls, once: the third run of the cell installed nothing
    assert first["args"][:2] == ["install", "--quiet"] and "torch>=2.2,<3" in first["requirements"]
    assert "jupyterlab" not in first["requirements"]  # Colab's front end stays Colab's
    assert editable["args"] == ["install", "--quiet", "--no-deps", "-e", str(clone)]


def test_drive_keeps_runs_data_and_caches(tmp_path, monkeypatch):
    for name in ("LABKIT_DATA", "LABKIT_CACHE", "TORCH_HOME"):
        monkeypatch.setenv(name, "unchanged")  # restored after the test
    root, drive = tmp_path / "cnn-lab", tmp_path / "drive" / "MyDrive" / "cnn-lab"
    root.mkdir()
    places = colab.drive_storage(root, drive, mount=False)
    assert (root / "runs").is_symlink() and (root / "runs").resolve() == (drive / "runs").resolve()
    assert os.environ["LABKIT_DATA"] == str(drive / "data") and places["TORCH_HOME"] == str(drive / "torch")
    assert colab.drive_storage(root, drive, mount=False) == places  # again: the same
    (root / "runs").unlink()
    (root / "runs").mkdir()
    with pytest.raises(RuntimeError, match="already holds"):
        colab.drive_storage(root, drive, mount=False)


def test_badge_and_clone_come_from_the_one_repository_setting(monkeypatch):
    monkeypatch.setattr(colab, "REPOSITORY", "https://github.com/someone/fork")
    monkeypatch.setattr(colab, "BRANCH", "term2")
    assert (
        "colab.research.google.com/github/someone/fork/blob/term2/notebooks/07_gradcam.ipynb"
        in cells.badge("07_gradcam")
    )
    assert '"https://github.com/someone/fork"' in cells.setup_cell_source()
