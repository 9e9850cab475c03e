"""Every exercise of every lab against its wrong answers. The smoke series probes them as it runs each
master (tests/wrong_answer_probes.py): at each answer cell that `tests/wrong_answers/labNN.py` gives wrong
answers for, a fork of the lab's kernel runs each wrong answer and then the exercise's test cell (visible
checks and hidden tests). Here: the test cell failed, with a message that says what is wrong, and the
master's own run went on and passed (the smoke series would have failed otherwise). So every exercise is
shown to reject a plausible mistake, not only to accept the master.

`LABKIT_TEST_NOTEBOOKS="02 05" pytest tests/test_exercises.py -k 05` probes one lab while working on it
(the smoke run of lab 02 gives labs 05-08 their network)."""

from __future__ import annotations

import nbformat
import pytest
from wrong_answer_probes import apply, grade_id, results, wrong_answers

from course import run as runner

LABS = [p.stem for p in runner.available()]


def graded_ids(nb) -> list[str]:
    return [
        grade_id(c) for c in nb.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")
    ]


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


@pytest.mark.notebook
@pytest.mark.parametrize("lab", LABS)
def test_each_wrong_answer_fails_its_exercise_and_the_master_passes(lab, smoke_run):
    outcomes, out = smoke_run
    if lab not in outcomes:
        pytest.skip(f"{lab} not selected by LABKIT_TEST_NOTEBOOKS")
    assert outcomes[lab].status == "ok", f"the master failed under smoke: {outcomes[lab].error}"
    notes = {(n["exercise"], n["why"]): n for n in results(out / "probes", lab)}
    for w in wrong_answers(lab):
        what = f"{w['exercise']}, {w['why']}"
        note = notes.get((w["exercise"], w["why"]))
        assert note is not None, f"{what}: never probed (the lab did not reach its answer cell)"
        assert "died" not in note, f"{what}: the probe's kernel copy died (exit status {note.get('died')})"
        assert "answer_error" not in note, f"{what}: the wrong answer itself raised {note['answer_error']}"
        assert note["failed"], f"{what}: the exercise's test cell passed it"
        assert w["says"] in note["message"], f"{what}: the check said {note['message']!r}"
        assert "not answered" not in note["message"], f"{what}: {note['message']}"
