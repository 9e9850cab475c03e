"""Shared fixtures. `smoke_metrics(name)` executes the lab notebooks under the smoke profile, once
per test session and in lab order (later labs reuse the checkpoint lab 02 saves, as in `make lab`),
and returns the figures a notebook recorded.

Set LABKIT_TEST_NOTEBOOKS="02 05" to execute only those notebooks while working on them, and
LABKIT_FULL_METRICS=runs/full/metrics to check a full run against the README's full-profile targets.
"""

from __future__ import annotations

import os
import stat

import matplotlib
import pytest

matplotlib.use("Agg")
# No one clicks widgets in a test run: explorers draw static figures (labkit.widgets.headless).
os.environ["LABKIT_HEADLESS"] = "1"


@pytest.fixture(scope="session", autouse=True)
def _tensor_cache(tmp_path_factory):
    """Decoded datasets go to a cache of this test session (shared by the lab kernels it starts),
    not to the user's ~/.cache, unless LABKIT_CACHE already names one."""
    if "LABKIT_CACHE" not in os.environ:
        os.environ["LABKIT_CACHE"] = str(tmp_path_factory.mktemp("tensor_cache"))
    yield


@pytest.fixture(scope="session", autouse=True)
def _enterable_temp_folders(tmp_path_factory):
    """Without bubblewrap a root grader runs each submission as a user of its own, which must pass
    through the folders above its scratch folder; pytest makes its own (/tmp/pytest-of-root) closed to
    other users, and the grader refuses such a folder. Add passing through, not listing."""
    from course.grading import boundary

    if os.geteuid() == 0 and boundary.bwrap() is None:
        base = tmp_path_factory.getbasetemp()
        for folder in (base.parent, base):
            os.chmod(folder, folder.stat().st_mode | stat.S_IXGRP | stat.S_IXOTH)
    yield


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """Run every selected notebook once under smoke; returns {notebook: Outcome} and the output folder.
    Each lab's exercises meet their wrong answers on the way, in forks of its kernel that leave the run's
    own figures alone (tests/wrong_answer_probes.py; read in tests/test_exercises.py)."""
    from wrong_answer_probes import insert

    from course import run as runner

    out = tmp_path_factory.mktemp("runs_smoke")
    only = os.environ.get("LABKIT_TEST_NOTEBOOKS", "").split()
    outcomes = runner.run(
        only or None,
        profile="smoke",
        out=out,
        keep_going=True,
        html_index=True,
        prepare=lambda nb, lab: insert(nb, lab, out / "probes"),
    )
    return {o.notebook: o for o in outcomes}, out


@pytest.fixture(scope="session")
def smoke_metrics(smoke_run):
    outcomes, _ = smoke_run

    def metrics(notebook: str) -> dict:
        if notebook not in outcomes:
            pytest.skip(f"{notebook} not selected by LABKIT_TEST_NOTEBOOKS")
        outcome = outcomes[notebook]
        if outcome.status != "ok":
            pytest.fail(f"{notebook} failed under smoke: {outcome.error}\nexecuted copy: {outcome.executed}")
        return outcome.metrics

    return metrics


@pytest.fixture(scope="session")
def saved_figures(smoke_run):
    """`saved_figures(notebook, names)`: each figure was saved under smoke and is not a blank image."""
    import matplotlib.image as mpimg
    import numpy as np

    outcomes, out = smoke_run

    def check(notebook: str, names) -> None:
        if notebook not in outcomes:
            pytest.skip(f"{notebook} not selected by LABKIT_TEST_NOTEBOOKS")
        for name in names:
            path = out / "figures" / notebook / f"{name}.png"
            assert path.is_file(), f"{name}.png was not saved"
            assert np.std(mpimg.imread(path)[..., :3]) > 0.05, f"{name}.png looks blank"

    return check


@pytest.fixture(scope="session")
def full_metrics():
    """`full_metrics(notebook)`: the figures a full-profile run recorded, read from the folder named by
    LABKIT_FULL_METRICS (e.g. runs/full/metrics after `make lab`), for checking the README's
    full-profile targets; skipped when it is not set or holds no such file."""
    import json
    from pathlib import Path

    folder = os.environ.get("LABKIT_FULL_METRICS", "")

    def metrics(notebook: str) -> dict:
        path = Path(folder) / f"{notebook}.json"
        if not folder or not path.is_file():
            pytest.skip(f"set LABKIT_FULL_METRICS to a full run's metrics folder holding {notebook}.json")
        return json.loads(path.read_text())

    return metrics


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")
