"""Gradebook imports for Canvas and Moodle: `python -m course lms GRADES --roster roster.csv` (`make lms`).

From `GRADES/grades.csv` (written by `python -m course grade`, one lab per folder) and a roster of the
class, this writes

* `GRADES/lms/canvas.csv`: a Canvas gradebook import (Grades > Import). Canvas's importer
  (`GradebookImporter` in canvas-lms, app/models/gradebook_importer.rb) wants a header row whose first
  columns are `Student`, `ID`, then optionally `SIS User ID`, `SIS Login ID`, and last `Section`; every
  later column is an assignment, written `Name (assignment id)` to update that assignment (without the id,
  an assignment of that exact name, else a new one); a row whose first cell says `Points Possible` sets a
  new assignment's points; trailing Current/Final Score and Grade columns are read-only and ignored. It
  finds each student by `ID` (Canvas's user id), then `SIS User ID`, then `SIS Login ID`, then the name.
  Docs: https://community.canvaslms.com/t5/Instructor-Guide/How-do-I-import-grades-in-the-Gradebook/ta-p/807
* `GRADES/lms/moodle.csv`: a Moodle grade import (Grades > Import > CSV file). Moodle maps one column to
  the user (its import form's "Map from" -> "Map to": user id, username, ID number or email address) and
  each other column to a grade item, or to a new one named after the column; a cell that is empty or
  `-` is no grade (grade/import/csv/classes/load_data.php). Docs: https://docs.moodle.org/en/Grade_import
  and https://docs.moodle.org/en/Import_grades
* `GRADES/lms/unmatched.csv`: the submissions no roster row matched (also printed): never dropped silently.

The roster is a CSV with a header row; a Canvas gradebook export (Grades > Export) works as it is (its
`Points Possible` and `Muted` rows are skipped, its assignment columns ignored), as does a Moodle export
or any list of students. Columns it may have, matched case-insensitively:
`Student` (the name), `ID`, `SIS User ID`, `SIS Login ID`, `Section` (Canvas), `Email address` or `Email`,
`Username`, `ID number` (Moodle), `First name`, `Last name`. One column, `--match` (default
`SIS Login ID`), holds each student's submission name: the file stem of their notebook, which is the
`student` of grades.csv (compared case-insensitively). canvas.csv needs one of Canvas's id columns in the
roster, moodle.csv one of Moodle's; a format whose ids the roster lacks is skipped, saying so.

The grade is grades.csv's `total` (after any late penalty). The points possible are the lab's maximum,
the exercises and written questions of the lab's master in `notebooks/` (`--masters`) whose items are
grades.csv's columns; a master whose items differ from grades.csv's (changed since grading) is refused,
and `--points` overrides it. A roster student without a submission gets an empty cell (`--missing empty`,
the LMS keeps what it has) or 0 (`--missing zero`); a submission the grader failed on (status "error")
always gets an empty cell and a warning: regrade it first. Text cells that a spreadsheet would run as a
formula (starting with = + - @) are written with a leading apostrophe.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

from labkit.core import LabError, atomic_write

CANVAS_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
CANVAS_IDS = ("ID", "SIS User ID", "SIS Login ID")
MOODLE_IDS = ("Email address", "Username", "ID number")
MOODLE_NAMES = ("First name", "Last name")
ALIASES = {  # a roster column's name as written -> the name used here
    "student": "Student",
    "student name": "Student",
    "name": "Student",
    "id": "ID",
    "sis user id": "SIS User ID",
    "sis login id": "SIS Login ID",
    "section": "Section",
    "email address": "Email address",
    "email": "Email address",
    "username": "Username",
    "id number": "ID number",
    "idnumber": "ID number",
    "first name": "First name",
    "last name": "Last name",
}
GRADES_FIXED = {"student", "late_by", "penalty", "total", "pending", "status"}
FORMATS = ("canvas", "moodle")
NOT_STUDENTS = {"", "muted", "manual posting"}  # the cells of a Canvas export's non-student rows


def _key(name: str) -> str:
    return " ".join(name.split()).lower()


def safe_cell(text: str) -> str:
    """A spreadsheet cell that stays text: a leading =, +, - or @ would make it a formula (grades.csv's
    student cells too)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def _unsafe(text: str) -> str:
    """grades.csv's student cell as the grader wrote it (`safe_cell`), back to the name."""
    return text[1:] if text[:1] == "'" and text[1:2] in ("=", "+", "-", "@") else text


@dataclass
class Roster:
    """The class list: one dict per student, keyed by the names in ALIASES' values (or as written)."""

    path: Path
    columns: list[str]  # the known columns present, by their names here
    rows: list[dict[str, str]] = field(default_factory=list)


def read_roster(path: str | Path, match: str = "SIS Login ID") -> Roster:
    """The roster at `path`, checked: the `match` column present, no id given to two students."""
    path = Path(path)
    if not path.is_file():
        raise LabError(f"roster {path}: no such file (export the class list from the LMS as CSV).")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:  # Excel and Canvas write a byte-order mark
            table = [(n, row) for n, row in enumerate(csv.reader(f), start=1) if any(c.strip() for c in row)]
    except UnicodeDecodeError:
        raise LabError(f'roster {path} is not UTF-8 text: save it as "CSV UTF-8" and try again.') from None
    if not table:
        raise LabError(f"roster {path} is empty: export the class list (a header row, a row a student).")
    header = [ALIASES.get(_key(h), h.strip()) for h in table[0][1]]
    wanted = ALIASES.get(_key(match), match.strip())
    if wanted not in header:
        raise LabError(
            f"roster {path} has no column {match!r} (its columns: {', '.join(table[0][1])}): give the column "
            "that holds each student's submission name with --match COLUMN."
        )
    rows, lines = [], []
    for number, cells in table[1:]:
        row = {name: cells[i].strip() if i < len(cells) else "" for i, name in enumerate(header)}
        if "Points Possible" in row.get("Student", "") or all(_key(c) in NOT_STUDENTS for c in cells):
            continue  # a Canvas export's points and posting rows
        rows.append(row)
        lines.append(number)
    if not rows:
        raise LabError(f"roster {path} has a header but no students: export the class list again.")
    for column in dict.fromkeys([wanted, *CANVAS_IDS, *MOODLE_IDS]):
        if column not in header:
            continue
        seen: dict[str, int] = {}
        for number, row in zip(lines, rows):
            value = row[column].casefold()
            if value and value in seen:
                raise LabError(
                    f"roster {path}: {column} {row[column]!r} is given to two students (lines {seen[value]} "
                    f"and {number}): fix the roster, or match on another column (--match)."
                )
            seen[value] = number
    known = [c for c in dict.fromkeys(header) if c in ALIASES.values()]
    return Roster(path=path, columns=known if wanted in known else [*known, wanted], rows=rows)


@dataclass
class Grade:
    """One row of grades.csv."""

    student: str
    total: float
    pending: float
    status: str


def read_grades(folder: str | Path) -> tuple[list[str], list[Grade]]:
    """(the item columns of GRADES/grades.csv, its rows)."""
    path = Path(folder) / "grades.csv"
    if not path.is_file():
        raise LabError(f"{path}: no such file: grade the submissions first (make grade GRADES={folder}).")
    with path.open(newline="", encoding="utf-8") as f:
        table = list(csv.reader(f))
    if not table or not {"student", "total", "status"} <= set(table[0]):
        raise LabError(f"{path} is not a gradebook of `python -m course grade` (no student, total, status).")
    header = table[0]
    rows = []
    for number, cells in enumerate(table[1:], start=2):
        row = dict(zip(header, cells))
        try:
            total, pending = float(row["total"]), float(row.get("pending") or 0)
        except ValueError:
            raise LabError(f"{path}, line {number}: total {row.get('total')!r} is not a number.") from None
        rows.append(Grade(_unsafe(row["student"]), total, pending, row["status"]))
    return [c for c in header if c not in GRADES_FIXED], rows


def lab_maximum(items: list[str], masters: str | Path) -> tuple[str, float]:
    """(the lab, its maximum points): the master in `masters` whose exercises and questions are `items`."""
    import nbformat

    from course.grading.assignments import exercises
    from course.grading.questions import questions

    if not items:
        raise LabError("grades.csv has no exercise columns (no submission was gradable): pass --points.")
    found = {}
    for master in sorted(Path(masters).glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(master, as_version=4)
        points = {e.id: e.points for e in exercises(nb)} | {q.id: q.points for q in questions(nb)}
        if set(points) & set(items):
            found[master.stem] = points
    if not found:
        raise LabError(
            f"no lab master in {masters} has the exercises of grades.csv ({', '.join(items[:3])} ...): "
            "give the masters' folder with --masters, or the lab's points with --points."
        )
    if len(found) > 1:
        raise LabError(
            f"grades.csv holds the labs {', '.join(found)}; an LMS assignment is one lab: grade each lab "
            "into its own folder (make grade SUBMISSIONS=... GRADES=...) and export each."
        )
    ((lab, points),) = found.items()
    if set(points) != set(items):
        raise LabError(
            f"the master of {lab} has changed since grading (its items {sorted(points)}, grades.csv's "
            f"{sorted(items)}): regrade, or give the points possible with --points."
        )
    return lab, round(sum(points.values()), 3)


def _number(x: float) -> str:
    return f"{round(x, 3):g}"


def _write(path: Path, rows: list[list[str]]) -> None:
    with atomic_write(path, newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\n").writerows(rows)


def canvas_table(roster: Roster, title: str, points: float, grades: list[str]) -> list[list[str]]:
    """Canvas's import: the student columns, one assignment column, the Points Possible row (written as
    Canvas's own export writes it), then a row per roster student with `grades[i]`."""
    table = [[*CANVAS_COLUMNS, safe_cell(title)], ["    Points Possible", "", "", "", "", _number(points)]]
    for row, grade in zip(roster.rows, grades):
        table.append([*(safe_cell(row.get(c, "")) for c in CANVAS_COLUMNS), grade])
    return table


def moodle_table(roster: Roster, title: str, grades: list[str]) -> list[list[str]]:
    """Moodle's import: the roster's user-id columns (and names, which Moodle leaves unmapped), one grade
    column."""
    columns = [c for c in (*MOODLE_IDS, *MOODLE_NAMES) if c in roster.columns]
    table = [[*columns, safe_cell(title)]]
    for row, grade in zip(roster.rows, grades):
        table.append([*(safe_cell(row.get(c, "")) for c in columns), grade])
    return table


def _formats(roster: Roster, formats: tuple[str, ...] | None, log) -> list[str]:
    """The formats to write: those asked for (refused when the roster lacks their ids), else those the
    roster has ids for."""
    unknown = sorted(set(formats or ()) - set(FORMATS))
    if unknown:
        raise LabError(f"unknown LMS format {unknown}: use {' or '.join(FORMATS)}.")
    ids = {"canvas": CANVAS_IDS, "moodle": MOODLE_IDS}
    able = [name for name in FORMATS if set(ids[name]) & set(roster.columns)]
    for name in formats or FORMATS:
        if name not in able:
            if formats:
                raise LabError(f"roster {roster.path} has no {name} id column ({', '.join(ids[name])}).")
            log(f"[lms] no {name}.csv: the roster has none of its id columns ({', '.join(ids[name])})")
    if not able:
        raise LabError(
            f"roster {roster.path} has neither Canvas's id columns ({', '.join(CANVAS_IDS)}) nor "
            f"Moodle's ({', '.join(MOODLE_IDS)}): export the class list from the LMS."
        )
    return [name for name in formats or FORMATS if name in able]


def export(
    grades: str | Path,
    roster: str | Path,
    *,
    match: str = "SIS Login ID",
    assignment: str | None = None,
    canvas_id: str | None = None,
    points: float | None = None,
    missing: str = "empty",
    formats: tuple[str, ...] | None = None,
    masters: str | Path | None = None,
    log=print,
) -> dict:
    """Write GRADES/lms/{canvas,moodle,unmatched}.csv (see the module docstring); `formats` None writes
    those the roster has ids for. Returns {"canvas", "moodle" (the paths written, or None), "assignment",
    "points", "unmatched" (submissions), "missing" (roster students without one), "failed", "pending"}."""
    from labkit.core import project_root

    if missing not in ("empty", "zero"):
        raise LabError(f"--missing {missing!r}: use empty (the LMS keeps what it has) or zero.")
    if canvas_id is not None and not re.fullmatch(r"\d+", str(canvas_id)):
        raise LabError(f"--canvas-id {canvas_id!r}: Canvas's assignment id is the number in its URL.")
    if points is not None and not points > 0:
        raise LabError(f"--points {points!r}: give the assignment's points possible, a positive number.")
    grades = Path(grades)
    items, rows = read_grades(grades)
    people = read_roster(roster, match)
    writing = _formats(people, formats, log)
    key = ALIASES.get(_key(match), match.strip())
    lab = None
    prefixes = {item.split("-", 1)[0] for item in items}  # the course's ids start with the lab's number
    if points is None:
        lab, points = lab_maximum(items, masters or project_root() / "notebooks")
    elif len(prefixes) > 1:
        raise LabError(
            f"grades.csv holds the items of labs {', '.join(sorted(prefixes))}; an LMS assignment is one "
            "lab: grade each lab into its own folder and export each."
        )
    if assignment is None:
        if lab is None and len(prefixes) != 1:
            raise LabError('name the LMS assignment: --assignment "Lab 01".')
        assignment = f"Lab {(lab or prefixes.pop())[:2]}"

    by_student = {g.student.casefold(): g for g in rows}
    names = {row[key].casefold() for row in people.rows if row[key]}
    unmatched = [g for g in rows if g.student.casefold() not in names]
    failed = [g.student for g in rows if g.status == "error" and g.student.casefold() in names]
    pending = [g.student for g in rows if g.pending and g.status != "error" and g.student.casefold() in names]
    without = [row[key] or f"(no {key})" for row in people.rows if row[key].casefold() not in by_student]
    cells = []
    for row in people.rows:
        found = by_student.get(row[key].casefold()) if row[key] else None
        if found is None:
            cells.append("0" if missing == "zero" else "")
        else:  # the grader's failure is not the student's zero
            cells.append("" if found.status == "error" else _number(found.total))

    out = grades / "lms"
    written: dict[str, Path | None] = {}
    for name in FORMATS:
        path = out / f"{name}.csv"
        if name not in writing:
            path.unlink(missing_ok=True)  # one left from an earlier export would import old grades
            written[name] = None
            continue
        title = f"{assignment} ({canvas_id})" if name == "canvas" and canvas_id else assignment
        table = (
            canvas_table(people, title, points, cells)
            if name == "canvas"
            else moodle_table(people, title, cells)
        )
        _write(path, table)
        written[name] = path
        log(f"[lms] wrote {path}: {len(people.rows)} students, {title}, {_number(points)} points possible")
    listed = [[safe_cell(g.student), _number(g.total), g.status] for g in unmatched]
    _write(out / "unmatched.csv", [["student", "total", "status"], *listed])
    log(
        f"[lms] {len(rows) - len(unmatched)} of {len(rows)} submissions matched the roster's {key}; "
        f"{len(without)} roster students without one get {'0' if missing == 'zero' else 'an empty cell'}"
    )
    if unmatched:
        log(f"[lms] not in the roster ({out / 'unmatched.csv'}): {', '.join(g.student for g in unmatched)}")
    if failed:
        log(f"[lms] the grader failed on {', '.join(failed)}: their cells are empty; regrade, export again")
    if pending:
        log(f"[lms] written answers not marked yet for {len(pending)} student(s): not in their totals")
    return {
        **written,
        "assignment": assignment,
        "points": points,
        "unmatched": [g.student for g in unmatched],
        "missing": without,
        "failed": failed,
        "pending": pending,
    }
