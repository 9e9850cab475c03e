"""The graded course, through nbgrader: student versions of the labs, and grading a folder of submissions.

    python -m course student --out student     (make student)
    python -m course grade SUBMISSIONS --out OUT -p profile=smoke     (make grade SUBMISSIONS=DIR)

Files: `assignments.py` (the masters as nbgrader assignments: generate_assignment, student copies),
`grade.py` (the parallel grading run, gradebook CSV, feedback, regrading only what changed),
`worker.py` (one submission: nbgrader autograde), `sandbox.py` (the kernel a submission runs in:
scratch folder, limits, unprivileged user, audit hook), `scan.py` (tampering read from the code).
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
