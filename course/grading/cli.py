"""Command line of the graded course.

python -m course student [NOTEBOOK ...] --out student
python -m course grade SUBMISSIONS --out OUT [-p profile=smoke] [--jobs N] [--time-limit S] [--memory 4GB]
                       [--marks MARKS.csv] [--config course.toml] [--timestamps times.csv]
python -m course lms GRADES --roster roster.csv [--match "SIS Login ID"] [--assignment "Lab 01"]
                     [--canvas-id 12345] [--points P] [--missing empty|zero] [--lms canvas|moodle]
"""

from __future__ import annotations

import argparse
import sys

from labkit.core import LabError


def grade_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "submissions", help="folder of submitted notebooks (*.ipynb; the file's stem is the student)"
    )
    parser.add_argument(
        "--out", default="runs/grades", help="where grades.csv and feedback/ go (default runs/grades)"
    )
    parser.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="lab parameter for every submission; profile=smoke (default) or full",
    )
    parser.add_argument("--jobs", type=int, default=0, help="submissions graded at once (default: CPU cores)")
    parser.add_argument("--threads", type=int, default=0, help="threads per kernel (default: cores / jobs)")
    parser.add_argument(
        "--time-limit", type=float, default=600.0, help="seconds per submission (default 600)"
    )
    parser.add_argument("--memory", default="4GB", help="memory per submission (default 4GB)")
    parser.add_argument("--nice", type=int, default=0, help="niceness of the grading processes")
    parser.add_argument("--masters", default=None, help="folder of the lab masters (default notebooks/)")
    parser.add_argument(
        "--checkpoints",
        default=None,
        help="folder of trained networks every submission starts with (e.g. runs/smoke/checkpoints: "
        "labs 05-08 then explain lab 02's network instead of training a quick one each)",
    )
    parser.add_argument(
        "--marks",
        default=None,
        help="the instructor's marks for the written answers: a CSV with student,question,points[,comment] "
        "(OUT/marks_template.csv lists what is left to mark)",
    )
    parser.add_argument(
        "--config",
        default=None,
        help="course.toml with each lab's due date and the late policy (see course/grading/late.py); "
        "grades.csv then gains late_by and penalty, and total is after the penalty",
    )
    parser.add_argument(
        "--timestamps",
        default=None,
        help="when each notebook was submitted: a CSV with student,timestamp (ISO 8601 or nbgrader's "
        "timestamp.txt format); a student without a row falls back to the file's modification time",
    )
    parser.add_argument("--force", action="store_true", help="regrade unchanged submissions too")
    parser.add_argument(
        "--same-user",
        action="store_true",
        help="as root, run kernels as root too (by default each gets an unprivileged user)",
    )
    return parser


def lms_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "grades", help="the folder `grade` wrote (it holds grades.csv); output goes to GRADES/lms/"
    )
    parser.add_argument(
        "--roster",
        required=True,
        help="the class list as CSV: a Canvas gradebook export works as it is; a Moodle list needs an "
        "Email address, Username or ID number column",
    )
    parser.add_argument(
        "--match",
        default="SIS Login ID",
        help="the roster column holding each student's submission name, the notebook's file stem "
        "(default: SIS Login ID)",
    )
    parser.add_argument("--assignment", default=None, help='the LMS assignment\'s name (default "Lab NN")')
    parser.add_argument(
        "--canvas-id", default=None, help="the Canvas assignment's id (the number in its URL), to update it"
    )
    parser.add_argument(
        "--points",
        type=float,
        default=None,
        help="points possible (default: the lab's maximum, from its master in notebooks/)",
    )
    parser.add_argument(
        "--missing",
        choices=("empty", "zero"),
        default="empty",
        help="the cell of a roster student without a submission (default empty: the LMS keeps its own)",
    )
    parser.add_argument(
        "--lms",
        choices=("canvas", "moodle"),
        action="append",
        default=None,
        help="write only this format (repeatable; default: each the roster has ids for)",
    )
    parser.add_argument("--masters", default=None, help="folder of the lab masters (default notebooks/)")
    return parser


def main(argv: list[str] | None = None) -> int:
    from course.run import parse_params

    parser = argparse.ArgumentParser(prog="python -m course", description="CNN Lab graded course")
    sub = parser.add_subparsers(dest="command", required=True)
    student = sub.add_parser(
        "student", help="write the student versions of the labs (nbgrader generate_assignment)"
    )
    student.add_argument("notebooks", nargs="*", help="numbers or names (default: all)")
    student.add_argument("--masters", default=None, help="folder of the masters (default notebooks/)")
    student.add_argument("--out", default="student", help="output folder (default student/)")
    grade_parser(sub.add_parser("grade", help="grade a folder of submissions"))
    lms_parser(sub.add_parser("lms", help="Canvas and Moodle gradebook imports from a grading run"))
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.command == "student":
            from course.grading.assignments import make_student_copies
            from labkit.core import project_root

            src = args.masters or project_root() / "notebooks"
            for path in make_student_copies(src, args.out, args.notebooks or None):
                print("wrote", path)
            return 0
        if args.command == "lms":
            from course.grading.lms import export

            export(
                args.grades,
                args.roster,
                match=args.match,
                assignment=args.assignment,
                canvas_id=args.canvas_id,
                points=args.points,
                missing=args.missing,
                formats=tuple(args.lms) if args.lms else None,
                masters=args.masters,
            )
            return 0
        from course.grading.grade import grade

        results = grade(
            args.submissions,
            args.out,
            params=parse_params(args.param),
            masters=args.masters,
            time_limit=args.time_limit,
            memory=args.memory,
            jobs=args.jobs,
            threads=args.threads,
            nice=args.nice,
            unprivileged=not args.same_user,
            checkpoints=args.checkpoints,
            force=args.force,
            marks=args.marks,
            config=args.config,
            timestamps=args.timestamps,
        )
    except LabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    errors = [r["student"] for r in results if r["status"] == "error"]
    if errors:
        print(
            f"[grade] the grader failed on: {', '.join(errors)} (see OUT/.work/<student>/worker.log)",
            file=sys.stderr,
        )
        return 1
    return 0
