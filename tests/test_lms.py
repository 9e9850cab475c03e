"""The LMS gradebook imports (course/grading/lms.py): Canvas's and Moodle's CSV row by row, from a grades.csv
and a roster made here; students without a submission, submissions without a student, and the errors."""

from __future__ import annotations

import csv

import nbformat
import pytest
import tiny_course as tc

from course.grading.lms import export, read_roster
from labkit.core import LabError

MAXIMUM = sum(tc.POINTS.values()) + tc.QUESTION_POINTS  # 2 + 3 + 2

# as `python -m course grade` writes it, with the late columns of a course config
GRADES = f"""student,00-double,00-tv,{tc.QUESTION},late_by,penalty,total,pending,status
alice,2,3,2,0,0,7,0,ok
bob,2,0,,26,0.4,1.6,2,ok
carol,0,0,,0,0,0,2,error
zed,2,3,1,0,0,6,0,ok
'=eve,0,0,,,,0,2,ok
"""

# a Canvas gradebook export: its points and posting rows, another assignment and the read-only scores
CANVAS_ROSTER = """\ufeffStudent,ID,SIS User ID,SIS Login ID,Section,Lab 00 (77),Current Score
    Points Possible,,,,,7,
,,,,,Manual Posting,
"Liddell, Alice",101,S1,Alice,Sec A,,
"Bobson, Bob",102,S2,bob,Sec A,,
"Carter, Carol",103,S3,carol,Sec B,,
"=HYPERLINK(""x""), Dan",104,S4,dan,Sec B,,
"Student, Test",105,,,,,
"""

MOODLE_ROSTER = """First name,Last name,ID number,Institution,Email address
Alice,Liddell,1001,Uni,alice@uni.example
Bob,Bobson,1002,Uni,bob@uni.example
Dan,Dee,1004,Uni,dan@uni.example
"""


@pytest.fixture
def course(tmp_path):
    tc.write_master(tmp_path / "masters")
    grades = tmp_path / "grades"
    grades.mkdir()
    (grades / "grades.csv").write_text(GRADES)
    (tmp_path / "canvas_roster.csv").write_text(CANVAS_ROSTER, encoding="utf-8")
    (tmp_path / "moodle_roster.csv").write_text(MOODLE_ROSTER)
    return tmp_path


def rows(path):
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_canvas_import_from_a_canvas_export(course):
    lines: list[str] = []
    found = export(
        course / "grades",
        course / "canvas_roster.csv",
        canvas_id="77",
        masters=course / "masters",
        log=lines.append,
    )
    table = rows(course / "grades" / "lms" / "canvas.csv")
    assert table == [
        ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Lab 00 (77)"],
        [
            "    Points Possible",
            "",
            "",
            "",
            "",
            "7",
        ],  # the lab's maximum: 2 + 3 points and a 2-point question
        ["Liddell, Alice", "101", "S1", "Alice", "Sec A", "7"],  # matched case-insensitively
        ["Bobson, Bob", "102", "S2", "bob", "Sec A", "1.6"],  # total after the late penalty
        ["Carter, Carol", "103", "S3", "carol", "Sec B", ""],  # the grader failed: no grade, not a zero
        ['\'=HYPERLINK("x"), Dan', "104", "S4", "dan", "Sec B", ""],  # no submission; a name, not a formula
        ["Student, Test", "105", "", "", "", ""],
    ]
    assert found["canvas"] == course / "grades" / "lms" / "canvas.csv" and found["moodle"] is None
    assert found["points"] == MAXIMUM and found["assignment"] == "Lab 00"
    assert found["unmatched"] == ["zed", "=eve"] and found["failed"] == ["carol"]
    assert found["missing"] == ["dan", "(no SIS Login ID)"] and found["pending"] == ["bob"]
    assert rows(course / "grades" / "lms" / "unmatched.csv") == [
        ["student", "total", "status"],
        ["zed", "6", "ok"],
        ["'=eve", "0", "ok"],
    ]
    said = "\n".join(lines)
    assert "not in the roster" in said and "zed, =eve" in said
    assert "3 of 5 submissions matched the roster's SIS Login ID" in said
    assert "the grader failed on carol" in said and "no moodle.csv" in said
    assert "written answers not marked yet for 1 student(s)" in said


def test_missing_zero_and_given_points_and_name(course):
    export(
        course / "grades",
        course / "canvas_roster.csv",
        missing="zero",
        points=20,
        assignment="CNN lab 0",
        formats=("canvas",),
        log=lambda _: None,
    )
    table = rows(course / "grades" / "lms" / "canvas.csv")
    assert table[0][-1] == "CNN lab 0" and table[1] == ["    Points Possible", "", "", "", "", "20"]
    assert [row[-1] for row in table[2:]] == ["7", "1.6", "", "0", "0"]  # the grader's failure stays empty


def test_moodle_import_matched_on_email(course):
    lines: list[str] = []
    found = export(
        course / "grades",
        course / "moodle_roster.csv",
        match="email",
        assignment="Lab 00",
        points=7,
        log=lines.append,
    )
    assert found["canvas"] is None and "no canvas.csv" in "\n".join(lines)
    assert found["unmatched"] == [
        "alice",
        "bob",
        "carol",
        "zed",
        "=eve",
    ]  # submissions named by login, not email
    (course / "grades" / "grades.csv").write_text(GRADES.replace("alice,", "alice@uni.example,"))
    export(
        course / "grades", course / "moodle_roster.csv", match="Email address", points=7, log=lambda _: None
    )
    assert rows(course / "grades" / "lms" / "moodle.csv") == [
        ["Email address", "ID number", "First name", "Last name", "Lab 00"],
        ["alice@uni.example", "1001", "Alice", "Liddell", "7"],
        ["bob@uni.example", "1002", "Bob", "Bobson", ""],
        ["dan@uni.example", "1004", "Dan", "Dee", ""],
    ]


def test_a_roster_with_both_kinds_of_ids_gives_both_files_and_stale_ones_go(course):
    (course / "both.csv").write_text("Student,SIS Login ID,Email address\nAlice,alice,a@x.example\n")
    found = export(course / "grades", course / "both.csv", points=7, log=lambda _: None)
    assert rows(found["canvas"])[2] == ["Alice", "", "", "alice", "", "7"]
    assert rows(found["moodle"]) == [["Email address", "Lab 00"], ["a@x.example", "7"]]
    export(course / "grades", course / "canvas_roster.csv", points=7, log=lambda _: None)
    assert not (course / "grades" / "lms" / "moodle.csv").exists(), "an old roster's grades are not left"


def test_the_roster_reader_skips_canvas_rows_that_are_not_students(course):
    roster = read_roster(course / "canvas_roster.csv")
    assert [row["SIS Login ID"] for row in roster.rows] == ["Alice", "bob", "carol", "dan", ""]
    assert roster.columns == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]


@pytest.mark.parametrize(
    "roster, kwargs, says",
    [
        ("", {}, "is empty"),
        ("Student,ID,SIS Login ID,Section\n", {}, "has a header but no students"),
        (
            "Student,ID,Section\nAlice,1,A\n",
            {},
            "has no column 'SIS Login ID' (its columns: Student, ID, Section)",
        ),
        (
            "Student,ID,SIS Login ID\nA,1,alice\nB,2,ALICE\n",
            {},
            "SIS Login ID 'ALICE' is given to two students (lines 2 and 3)",
        ),
        ("Student,ID,SIS Login ID\nA,1,alice\nB,1,bob\n", {}, "ID '1' is given to two students"),
        ("Name,Group\nalice,1\n", {"match": "Name"}, "has neither Canvas's id columns"),
        ("Student,SIS Login ID\nA,alice\n", {"formats": ("moodle",)}, "has no moodle id column"),
        (
            "Student,SIS Login ID\nA,alice\n",
            {"formats": ("blackboard",)},
            "unknown LMS format ['blackboard']",
        ),
        ("Student,SIS Login ID\nA,alice\n", {"canvas_id": "Lab-1"}, "Canvas's assignment id is the number"),
        ("Student,SIS Login ID\nA,alice\n", {"missing": "nan"}, "--missing 'nan'"),
        ("Student,SIS Login ID\nA,alice\n", {"points": 0}, "--points 0"),
    ],
)
def test_roster_and_option_errors(course, roster, kwargs, says):
    (course / "roster.csv").write_text(roster)
    with pytest.raises(LabError) as err:
        export(
            course / "grades", course / "roster.csv", masters=course / "masters", log=lambda _: None, **kwargs
        )
    assert says in str(err.value)
    assert not (course / "grades" / "lms").exists(), "nothing is written when the input is refused"


def test_the_maximum_comes_from_the_lab_master_and_only_when_it_matches(course):
    roster = course / "canvas_roster.csv"
    with pytest.raises(LabError, match="no lab master in .* has the exercises of grades.csv.*--points"):
        export(course / "grades", roster, masters=course / "nowhere", log=lambda _: None)
    (course / "grades" / "grades.csv").write_text(
        f"student,00-double,00-tv,{tc.QUESTION},00-extra,total,pending,status\nalice,2,3,2,1,8,0,ok\n"
    )
    with pytest.raises(LabError, match="the master of 00_tiny has changed since grading"):
        export(course / "grades", roster, masters=course / "masters", log=lambda _: None)
    (course / "grades" / "grades.csv").write_text("student,total,pending,status\nalice,0,0,refused\n")
    with pytest.raises(LabError, match="no exercise columns"):
        export(course / "grades", roster, masters=course / "masters", log=lambda _: None)
    with pytest.raises(LabError, match="grade the submissions first"):
        export(course / "nothing", roster, masters=course / "masters", log=lambda _: None)


def test_two_labs_in_one_gradebook_are_refused(course):
    other = tc.master()
    for cell in other.cells:
        meta = cell.metadata.get("nbgrader")
        if meta:
            meta["grade_id"] = meta["grade_id"].replace("00-", "09-")
    nbformat.write(other, course / "masters" / "09_other.ipynb")
    (course / "grades" / "grades.csv").write_text(
        "student,00-double,09-double,total,pending,status\nalice,2,,2,0,ok\nbob,,2,2,0,ok\n"
    )
    with pytest.raises(LabError, match="holds the labs 00_tiny, 09_other; an LMS assignment is one lab"):
        export(
            course / "grades", course / "canvas_roster.csv", masters=course / "masters", log=lambda _: None
        )
    with pytest.raises(LabError, match="holds the items of labs 00, 09; an LMS assignment is one lab"):
        export(course / "grades", course / "canvas_roster.csv", points=7, assignment="x", log=lambda _: None)


def test_the_command_line_writes_the_files_and_reports_errors(course, capsys):
    from course.grading.cli import main

    args = ["lms", str(course / "grades"), "--roster", str(course / "canvas_roster.csv")]
    assert main([*args, "--masters", str(course / "masters"), "--canvas-id", "77", "--missing", "zero"]) == 0
    assert rows(course / "grades" / "lms" / "canvas.csv")[0][-1] == "Lab 00 (77)"
    assert "not in the roster" in capsys.readouterr().out
    assert main([*args, "--lms", "moodle", "--points", "7"]) == 2
    assert "has no moodle id column" in capsys.readouterr().err
