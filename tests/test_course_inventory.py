"""What the course asks of a student, counted from the masters: autograded exercises, their points and
solution code, written questions, and each lab's header (time, prerequisites, objectives, place in a
lecture course). The figures are the ones issue 21 set as the course's floor."""

from __future__ import annotations

import ast
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


def _is_exercise_block(node) -> bool:
    return isinstance(node, ast.With) and "check.exercise(" in ast.unparse(node.items[0].context_expr)


def _hidden_lines(source: str) -> set[int]:
    """Line numbers (1-based) inside the cell's `### BEGIN HIDDEN TESTS` ... `### END HIDDEN TESTS`."""
    inside, lines = False, set()
    for number, line in enumerate(source.splitlines(), start=1):
        inside = (inside or "BEGIN HIDDEN TESTS" in line) and "END HIDDEN TESTS" not in line
        if inside:
            lines.add(number)
    return lines


def _names(node) -> set[str]:
    return {
        n.id if isinstance(n, ast.Name) else n.name
        for n in ast.walk(node)
        if (isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store))
        or isinstance(n, (ast.FunctionDef, ast.ClassDef))
    }


def _needed(cells, names: set[str]) -> set[str]:
    """Those of `names` that a cell in `cells` reads before any of them assigns it again."""
    needed, assigned = set(), set()
    for cell in cells:
        if cell.cell_type != "code":
            continue
        tree = ast.parse(cell.source)
        loads = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        stores = _names(tree) | {a.arg for a in ast.walk(tree) if isinstance(a, ast.arg)}
        needed |= (loads - stores - assigned) & names
        assigned |= stores
    return needed


@pytest.mark.parametrize("path", LABS, ids=[p.stem for p in LABS])
def test_a_test_cell_defines_nothing_later_cells_need_after_its_first_check(path):
    """A failing check (a wrong answer; under grading, an unanswered one's hidden tests) ends its cell:
    whatever the cell defines after it would be missing from every later cell. Helpers and references
    go before the first `with labkit.check.exercise(...)` or into the next cell; the hidden tests may
    set up their own inputs, which no later cell uses."""
    cells = nbformat.read(path, as_version=4).cells
    for index, cell in enumerate(cells):
        if cell.cell_type != "code" or not cell.metadata.get("nbgrader", {}).get("grade"):
            continue
        grade_id, hidden = cell.metadata["nbgrader"]["grade_id"], _hidden_lines(cell.source)
        body = ast.parse(cell.source).body
        first = next((i for i, node in enumerate(body) if _is_exercise_block(node)), None)
        assert first is not None, f"{grade_id} runs no check.exercise"
        late = [
            node for node in body[first:] if not _is_exercise_block(node) and not isinstance(node, ast.Expr)
        ]
        outside = [ast.unparse(n).splitlines()[0] for n in late if n.lineno not in hidden]
        assert not outside, f"{grade_id} defines {outside} after its first check"
        used = sorted(_needed(cells[index + 1 :], {name for n in late for name in _names(n)}))
        assert not used, f"later cells use {used}, which {grade_id}'s hidden tests define"
