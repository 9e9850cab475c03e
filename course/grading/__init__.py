"""The graded course, through nbgrader: student versions of the labs, and grading a folder of submissions.

    python -m course student --out student     (make student)
    python -m course grade SUBMISSIONS --out OUT -p profile=smoke     (make grade SUBMISSIONS=DIR)

Files: `assignments.py` (the masters as nbgrader assignments: generate_assignment, student copies),
`grade.py` (the parallel grading run, gradebook CSV, feedback, regrading only what changed),
`worker.py` (one submission: its notebook in one process, the tests in another), `boundary.py` (the
isolation around the submission's process: bubblewrap), `submission_process.py` (what runs inside it),
`remote.py` and `wire.py` (the tests' stand-ins for the notebook's objects, and the messages),
`verdict.py` (the master's test cells run by the grader), `sandbox.py` (the first layer inside the
process: limits, audit hook), `scan.py` (tampering read from the code).
"""

from __future__ import annotations

__all__ = ["grade", "make_student_copies", "main"]


def grade(*args, **kwargs):
    from course.grading.grade import grade as _grade

    return _grade(*args, **kwargs)


def make_student_copies(*args, **kwargs):
    from course.grading.assignments import make_student_copies as _make

    return _make(*args, **kwargs)


def main(argv=None) -> int:
    from course.grading.cli import main as _main

    return _main(argv)
