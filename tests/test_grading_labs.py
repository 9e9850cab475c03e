"""The real labs through the grader, in one parallel run under smoke (marked `labs`: about two smoke
series of work, so `make test-labs` runs it, and CI after `make test`): every lab's master (full marks,
its written answers waiting to be marked), lab 02's untouched student version (bob) and the master
with two exercises answered wrongly (carol: one of them changes its input in place), and the
untouched student version of every other lab (every exercise unanswered: zero points, a message
each, and every other cell still runs on the reference versions). Each exercise's own wrong answers
are tested in tests/test_exercises.py."""

from __future__ import annotations

import nbformat
import pytest

from course import run as runner
from course.grading import assignments, questions
from course.grading.grade import grade

pytestmark = pytest.mark.labs
LAB02 = "02_naive_cnn"


@pytest.fixture(scope="module")
def graded(tmp_path_factory, smoke_run):
    base = tmp_path_factory.mktemp("labs")
    student_dir = base / "student"
    copies = {p.stem: p for p in assignments.make_student_copies(runner.notebooks_dir(), student_dir)}
    subs = base / "submissions"
    subs.mkdir()
    master02 = nbformat.read(runner.notebooks_dir() / f"{LAB02}.ipynb", as_version=4)
    nbformat.write(master02, subs / "alice.ipynb")
    nbformat.write(nbformat.read(copies[LAB02], as_version=4), subs / "bob.ipynb")
    answer = next(
        c for c in master02.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "02-epoch-answer"
    )
    assert "    model.train()\n" in answer.source
    answer.source = answer.source.replace("    model.train()\n", "")  # the classic bug: left in eval mode
    # an in-place change of an input: graded in another process, the grader must still see it
    confused = next(
        c for c in master02.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "02-confused-answer"
    )
    assert "off_diagonal = np.array(cm, copy=True)" in confused.source
    confused.source = confused.source.replace("off_diagonal = np.array(cm, copy=True)", "off_diagonal = cm")
    nbformat.write(master02, subs / "carol.ipynb")
    for name, path in copies.items():
        if name != LAB02:
            nbformat.write(nbformat.read(path, as_version=4), subs / f"untouched_{name}.ipynb")
            master = nbformat.read(runner.notebooks_dir() / f"{name}.ipynb", as_version=4)
            nbformat.write(master, subs / f"master_{name}.ipynb")
    # lab 02's networks from the smoke series (if it ran lab 02): labs 05-08 load them instead of training
    checkpoints = smoke_run[1] / "checkpoints"
    results = grade(
        subs,
        base / "out",
        params={"profile": "smoke"},
        nice=19,
        log=lambda *a: None,
        checkpoints=checkpoints if checkpoints.is_dir() else None,
    )
    return {
        "results": {r["student"]: r for r in results},
        "out": base / "out",
        "copies": copies,
        "student_dir": student_dir,
    }


def points(result) -> dict[str, float]:
    return {e["id"]: e["points"] for e in result["exercises"]}


def test_student_versions_carry_no_solutions_no_hidden_tests_and_nothing_beside_them(graded):
    assert sorted(p.name for p in graded["student_dir"].iterdir()) == sorted(
        p.name for p in runner.available()
    )
    for name, path in graded["copies"].items():
        text = path.read_text()
        assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text and "hidden=True" not in text, name
        nb = nbformat.read(path, as_version=4)
        answers = [
            c for c in nb.cells if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")
        ]
        assert answers and all("raise NotImplementedError()" in c.source for c in answers), name
        assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), name


def test_lab02_master_full_marks_student_version_zero_and_wrong_answers_lose_only_their_exercises(graded):
    r = graded["results"]
    full = {"02-cnn": 4, "02-size": 2, "02-params": 3, "02-table": 3, "02-epoch": 3, "02-confused": 1}
    assert r["alice"]["status"] == "ok" and points(r["alice"]) == full
    assert r["bob"]["status"] == "ok" and points(r["bob"]) == dict.fromkeys(full, 0)
    assert r["carol"]["status"] == "ok", r["carol"].get("error")
    assert points(r["carol"]) == {**full, "02-epoch": 0, "02-confused": 0}, r["carol"]["exercises"]
    messages = {e["id"]: e["message"] for e in r["carol"]["exercises"]}
    assert "not in training mode" in messages["02-epoch"]
    assert "changed the matrix it was given" in messages["02-confused"]
    rows = (graded["out"] / "grades.csv").read_text().splitlines()
    assert rows[0].startswith(
        "student,01-verify,01-split,01-stats,01-shift,01-weights,01-sampler,"
        "01-q-leakage,01-q-augment,01-q-imbalance,01-q-sampler,"
        "02-cnn,02-size,02-params,02-table,02-epoch,02-confused,"
    )
    assert any(row.startswith("alice," + "," * 10 + "4,2,3,3,3,1,") for row in rows)


@pytest.mark.parametrize("lab", [p.stem for p in runner.available()])
def test_an_untouched_student_version_earns_zero_says_why_and_still_runs_to_the_end(graded, lab):
    student = "bob" if lab == LAB02 else f"untouched_{lab}"
    result = graded["results"][student]
    assert result["status"] == "ok", result.get("error")
    assert result["exercises"] and all(e["points"] == 0 for e in result["exercises"])
    assert all("not answered yet" in e["message"] for e in result["exercises"]), result["exercises"]
    broken = [e for e in result["cell_errors"] if not e["test"]]
    assert not broken, f"{lab}: cells outside the tests failed without the answers: {broken}"


@pytest.mark.parametrize("lab", [p.stem for p in runner.available()])
def test_every_master_gets_full_marks_and_its_written_answers_wait_for_marking(graded, lab):
    master = nbformat.read(runner.notebooks_dir() / f"{lab}.ipynb", as_version=4)
    result = graded["results"]["alice" if lab == LAB02 else f"master_{lab}"]
    assert result["status"] == "ok", result.get("error")
    assert points(result) == {e.id: e.points for e in assignments.exercises(master)}, result["exercises"]
    asked = [q.id for q in questions.questions(master)]
    assert [q["id"] for q in result["questions"]] == asked and len(asked) >= 3
    assert all(q["points"] is None and q["text"] for q in result["questions"]), "model answers, not marked"
    untouched = graded["results"]["bob" if lab == LAB02 else f"untouched_{lab}"]
    assert [q["text"] for q in untouched["questions"]] == [""] * len(asked), "the placeholder is no answer"
    page = (graded["out"] / "questions" / f"{asked[0]}.html").read_text()
    assert "Rubric" in page and page.count("<tr><td>") >= 2
