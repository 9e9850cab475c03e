"""What the course asks of a student, counted from the masters: autograded exercises, their points and
solution code, written questions, and each lab's header (time, prerequisites, objectives, place in a
lecture course). The figures are the ones issue 21 set as the course's floor."""

from __future__ import annotations

import re

import nbformat
import pytest

from course import run as runner
from course.grading import assignments, questions

LABS = runner.available()
HEADER = ("**Time:**", "**Before you start:**", "**You will learn to:**", "**In a CNN course:**")


def solution_lines(nb) -> int:
    """Lines of code between the solution markers, blank lines and comments excluded."""
    spans = (
        span
        for cell in nb.cells
        if cell.cell_type == "code"
        for span in re.findall(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", cell.source, re.S)
    )
    return sum(
        1 for span in spans for line in span.splitlines() if line.strip() and not line.strip().startswith("#")
    )


def inventory() -> dict[str, dict]:
    table = {}
    for path in LABS:
        nb = nbformat.read(path, as_version=4)
        exercises = assignments.exercises(nb)
        table[path.stem] = {
            "exercises": len(exercises),
            "points": sum(e.points for e in exercises),
            "lines": solution_lines(nb),
            "questions": len(questions.questions(nb)),
        }
    return table


def test_the_course_asks_enough_of_a_student():
    table = inventory()
    total = {
        key: sum(row[key] for row in table.values()) for key in ("exercises", "points", "lines", "questions")
    }
    assert total["exercises"] >= 40 and total["points"] >= 110, total
    assert total["lines"] >= 350 and total["questions"] >= 24, total
    thin = {lab: row for lab, row in table.items() if row["exercises"] < 3 or row["questions"] < 3}
    assert not thin, f"every lab has at least 3 exercises and 3 written questions: {thin}"


@pytest.mark.parametrize("path", LABS, ids=[p.stem for p in LABS])
def test_each_lab_starts_with_time_prerequisites_objectives_and_its_place_in_a_course(path):
    first = nbformat.read(path, as_version=4).cells[0].source
    where = [first.find(label) for label in HEADER]
    assert all(i >= 0 for i in where), f"{path.stem} lacks {[h for h, i in zip(HEADER, where) if i < 0]}"
    assert where == sorted(where), f"{path.stem}: the header's parts are out of order"
    assert re.search(r"\*\*Time:\*\*[^\n]*\d", first), f"{path.stem}: the time needs a number"
