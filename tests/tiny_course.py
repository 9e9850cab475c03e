"""A tiny lab master in the course's format (two exercises and a written question, seconds to run), and
submissions made from it, for the grading tests: the grader is tested on this, and on the real labs
once."""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NAME = "00_tiny"
POINTS = {"00-double": 2.0, "00-tv": 3.0}
QUESTION, QUESTION_POINTS = "00-q-linear", 2.0
MODEL_ANSWER = "Doubling is linear: my_double(a + b) = my_double(a) + my_double(b)."
RUBRIC = f"""# Lab 00 rubrics

## {QUESTION} (2 points)

> Is doubling a linear map? Say why.

- 1: says yes
- 1: shows additivity and homogeneity,
  or gives the matrix 2I
"""

SETUP = """import torch
import labkit
import labkit.check
from labkit.interpret import total_variation"""

DOUBLE = """def my_double(x):
    ### BEGIN SOLUTION
    return 2 * x
    ### END SOLUTION"""

DOUBLE_TESTS = """with labkit.check.exercise("00-double", answer=my_double):
    labkit.check.close(my_double(torch.tensor([1.0, 2.0])), [2.0, 4.0], "my_double([1, 2])")
### BEGIN HIDDEN TESTS
with labkit.check.exercise("00-double", answer=my_double, hidden=True):
    labkit.check.close(my_double(torch.tensor([-3.0, 0.5])), [-6.0, 1.0], "my_double of other numbers")
### END HIDDEN TESTS"""

TV = """def my_tv(z):
    ### BEGIN SOLUTION
    dy = (z[:, :, 1:, :] - z[:, :, :-1, :]).pow(2).mean(dim=(1, 2, 3))
    dx = (z[:, :, :, 1:] - z[:, :, :, :-1]).pow(2).mean(dim=(1, 2, 3))
    return dx + dy
    ### END SOLUTION"""

TV_TESTS = """z = torch.arange(16.0).reshape(1, 1, 4, 4)
with labkit.check.exercise("00-tv", forbid=[total_variation], answer=my_tv):
    labkit.check.close(my_tv(z), total_variation(z), "your total variation")
### BEGIN HIDDEN TESTS
with labkit.check.exercise("00-tv", forbid=[total_variation], answer=my_tv, hidden=True):
    z_hidden_case = torch.randn(3, 2, 5, 7, generator=torch.Generator().manual_seed(1))
    labkit.check.close(my_tv(z_hidden_case), total_variation(z_hidden_case), "total variation, other images")
### END HIDDEN TESTS"""

USE = """tv = labkit.check.use("00-tv", my_tv, total_variation, "total variation")
print("total variation of a ramp:", float(tv(torch.arange(4.0).reshape(1, 1, 2, 2))))"""


def _meta(cell, grade_id, *, solution=False, grade=False, locked=False, points=None):
    cell.metadata["nbgrader"] = {
        "schema_version": 3,
        "grade_id": grade_id,
        "solution": solution,
        "grade": grade,
        "locked": locked,
        **({"points": points} if grade else {}),
    }
    return cell


def master() -> nbformat.NotebookNode:
    params = new_code_cell('profile = "full"  # or "smoke"\nseed = 0\nout_dir = None')
    params.metadata["tags"] = ["parameters"]
    nb = new_notebook(
        cells=[
            new_markdown_cell("# Lab 00 — tiny\n\nTwo exercises."),
            _meta(params, "00-parameters", locked=True),
            _meta(new_code_cell(SETUP), "00-setup", locked=True),
            new_markdown_cell("### Exercise 1 — double a tensor"),
            _meta(new_code_cell(DOUBLE), "00-double-answer", solution=True),
            _meta(
                new_code_cell(DOUBLE_TESTS), "00-double", grade=True, locked=True, points=POINTS["00-double"]
            ),
            new_markdown_cell("### Exercise 2 — total variation"),
            _meta(new_code_cell(TV), "00-tv-answer", solution=True),
            _meta(new_code_cell(TV_TESTS), "00-tv", grade=True, locked=True, points=POINTS["00-tv"]),
            new_code_cell(USE),
            new_markdown_cell("**Question (2 points).** Is doubling a linear map? Say why."),
            _meta(
                new_markdown_cell(MODEL_ANSWER), QUESTION, solution=True, grade=True, points=QUESTION_POINTS
            ),
            new_markdown_cell("## What to try next\n\nNothing."),
        ]
    )
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def write_master(folder: Path) -> Path:
    """The master in `folder`, and its rubric where the grader looks: `folder/../instructors/rubrics`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{NAME}.ipynb"
    nbformat.write(master(), path)
    rubrics = folder.parent / "instructors" / "rubrics"
    rubrics.mkdir(parents=True, exist_ok=True)
    (rubrics / f"{NAME}.md").write_text(RUBRIC)
    return path


def answer_cell(nb, grade_id: str):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def with_answer(student_nb, grade_id: str, source: str):
    """A copy of a notebook with the answer cell `grade_id` replaced by `source`."""
    nb = copy.deepcopy(student_nb)
    answer_cell(nb, grade_id).source = source
    return nb


def with_cell_before(student_nb, grade_id: str, source: str):
    """A copy with a plain code cell of the student's inserted before the cell `grade_id`."""
    nb = copy.deepcopy(student_nb)
    index = nb.cells.index(answer_cell(nb, grade_id))
    nb.cells.insert(index, new_code_cell(source))
    return nb
