"""Every exercise of every lab against its wrong answers, in one kernel per lab running the master under
smoke. At each answer cell that `tests/wrong_answers/labNN.py` gives wrong answers for, the kernel runs
each wrong answer and then the exercise's test cell (visible checks and hidden tests): the test cell must
fail, with a message that says what is wrong. Then the master's answer and its test cell run, and the lab
goes on. So every exercise is shown to reject a plausible mistake, not only to accept the master.

`LABKIT_TEST_NOTEBOOKS="02 05" pytest tests/test_exercises.py -k 05` probes one lab while working on it
(the smoke run of lab 02 gives labs 05-08 their network)."""

from __future__ import annotations

import copy
import runpy
import shutil
from pathlib import Path

import nbformat
import pytest

from course import run as runner

pytestmark = pytest.mark.notebook
WRONG = Path(__file__).resolve().parent / "wrong_answers"
LABS = [p.stem for p in runner.available()]


def wrong_answers(lab: str) -> list[dict]:
    path = WRONG / f"lab{lab[:2]}.py"
    return runpy.run_path(str(path))["WRONG"] if path.is_file() else []


def grade_id(cell) -> str:
    return cell.metadata.get("nbgrader", {}).get("grade_id", "")


def graded_ids(nb) -> list[str]:
    return [
        grade_id(c) for c in nb.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")
    ]


def apply(source: str, replace: dict[str, str], what: str) -> str:
    for old, new in replace.items():
        count = source.count(old)
        assert count == 1, f"{what}: {old!r} occurs {count} times in the master's answer, not once"
        source = source.replace(old, new)
    return source


@pytest.mark.parametrize("lab", LABS)
def test_every_exercise_has_wrong_answers_for_its_own_cells(lab):
    nb = nbformat.read(runner.notebooks_dir() / f"{lab}.ipynb", as_version=4)
    exercises = graded_ids(nb)
    answers = {grade_id(c): c.source for c in nb.cells if grade_id(c).endswith("-answer")}
    wrong = wrong_answers(lab)
    assert set(exercises) <= {w["exercise"] for w in wrong}, (
        f"exercises of {lab} without a wrong answer in tests/wrong_answers/lab{lab[:2]}.py: "
        f"{sorted(set(exercises) - {w['exercise'] for w in wrong})}"
    )
    for w in wrong:
        assert w["exercise"] in exercises, f"{w['exercise']} is not an exercise of {lab}"
        assert w["why"] and w["says"] and w["replace"], w
        source = answers.get(f"{w['exercise']}-answer")
        assert source is not None, f"{w['exercise']} has no answer cell {w['exercise']}-answer"
        assert apply(source, w["replace"], w["why"]) != source


def _error(cell) -> str:
    return "\n".join(
        f"{o.get('ename')}: {o.get('evalue')}" for o in cell.get("outputs", []) if o.output_type == "error"
    )


@pytest.mark.parametrize("lab", LABS)
def test_each_wrong_answer_fails_its_exercise_and_the_master_passes(lab, smoke_run, tmp_path, monkeypatch):
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    from papermill.translators import translate_parameters

    outcomes, smoke_out = smoke_run
    if lab not in outcomes:
        pytest.skip(f"{lab} not selected by LABKIT_TEST_NOTEBOOKS")
    wrong = {}
    for w in wrong_answers(lab):
        wrong.setdefault(w["exercise"], []).append(w)
    nb = nbformat.read(runner.notebooks_dir() / f"{lab}.ipynb", as_version=4)
    if (smoke_out / "checkpoints").is_dir():  # lab 02's network, as the smoke series left it
        shutil.copytree(smoke_out / "checkpoints", tmp_path / "checkpoints")
    where = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    params = {"profile": "smoke", "out_dir": str(tmp_path)}
    nb.cells.insert(
        where + 1, nbformat.v4.new_code_cell(translate_parameters("python", "python", params, ""))
    )
    tests = {grade_id(c): c for c in nb.cells if c.cell_type == "code" and grade_id(c) in wrong}
    client = NotebookClient(
        nb,
        timeout=900,
        startup_timeout=300,
        kernel_name="python3",
        kernel_manager_class=runner.kernel_manager_class(),
        resources={"metadata": {"path": str(runner.notebooks_dir())}},
    )
    probed = []
    # as papermill does: the kernel's IPC sockets are named relative to the working folder of both sides
    monkeypatch.chdir(runner.notebooks_dir())
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            exercise = grade_id(cell).removesuffix("-answer")
            if grade_id(cell).endswith("-answer") and exercise in wrong:
                for w in wrong[exercise]:
                    bad = copy.deepcopy(cell)
                    bad.source = apply(cell.source, w["replace"], w["why"])
                    client.execute_cell(bad, index)  # a wrong answer still runs; its check must fail
                    test = copy.deepcopy(tests[exercise])
                    with pytest.raises(CellExecutionError):
                        client.execute_cell(test, index + 1)
                    message = _error(test)
                    assert w["says"] in message, f"{exercise}, {w['why']}: the check said {message!r}"
                    assert "not answered" not in message, f"{exercise}, {w['why']}: {message}"
                    probed.append(exercise)
            client.execute_cell(cell, index)
    assert sorted(set(probed)) == sorted(wrong), "wrong answers whose exercise was never reached"
