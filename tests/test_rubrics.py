"""The written questions: every manually graded answer cell of a master has a rubric in
instructors/rubrics/<lab>.md whose elements add up to the cell's points, and the student version
asks the question without the model answer."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from course import run as runner
from course.grading import questions

RUBRICS = Path(__file__).resolve().parents[1] / "instructors" / "rubrics"
LABS = runner.available()


@pytest.mark.parametrize("path", LABS, ids=[p.stem for p in LABS])
def test_every_written_question_has_a_rubric_that_adds_up(path):
    nb = nbformat.read(path, as_version=4)
    asked = {q.id: q.points for q in questions.questions(nb)}
    rubrics = questions.read_rubrics(RUBRICS / f"{path.stem}.md")
    assert sorted(rubrics) == sorted(asked), (
        f"rubrics of {path.stem}: {sorted(rubrics)}, questions {sorted(asked)}"
    )
    for qid, points in asked.items():
        rubric = rubrics[qid]
        assert points > 0 and rubric.points == points, (
            f"{qid}: {rubric.points:g} points in the rubric, {points:g} in the lab"
        )
        assert sum(p for p, _ in rubric.elements) == points, (
            f"{qid}: the rubric's elements add up to another total"
        )
        assert len(rubric.elements) >= 2 and len(rubric.question) > 30, f"{qid}: the rubric says too little"
    for index, cell in enumerate(nb.cells):
        if questions.is_question(cell):
            prompt = nb.cells[index - 1]
            assert prompt.cell_type == "markdown" and prompt.source.startswith("**Question ("), (
                f"{cell.metadata['nbgrader']['grade_id']}: the cell before the answer asks the question"
            )
            assert cell.source.strip() and cell.source.strip() != questions.UNANSWERED, "a model answer"


def test_rubrics_are_read_with_wrapped_elements_and_half_points(tmp_path):
    path = tmp_path / "09_x.md"
    path.write_text(
        "# Lab 09 rubrics\n\n## 09-q-a (1.5 points)\n\n> Why is the sky\n> blue?\n\n"
        "- 1: Rayleigh scattering,\n  stronger at short wavelengths\n- 0.5: names the 1/λ⁴ law\n\n"
        "## 09-q-b (1 point)\n\n> Why?\n\n- 1: because\n"
    )
    found = questions.read_rubrics(path)
    assert list(found) == ["09-q-a", "09-q-b"]
    a = found["09-q-a"]
    assert (a.points, a.question) == (1.5, "Why is the sky blue?")
    assert a.elements == [
        (1.0, "Rayleigh scattering, stronger at short wavelengths"),
        (0.5, "names the 1/λ⁴ law"),
    ]
    assert questions.read_rubrics(tmp_path / "none.md") == {}
