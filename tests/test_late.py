"""Due dates and the late policy (course/grading/late.py): the policy's arithmetic, the course config's and
the timestamps' parsing and their errors, and a grading run that applies it to cached results."""

from __future__ import annotations

import csv
import json
import os
import shutil
import textwrap
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import tiny_course as tc

from course.grading import late
from course.grading.late import Policy, assess, parse_time, read_config, read_timestamps
from labkit.core import LabError

LABS = ["01_data_prep", "02_naive_cnn", tc.NAME]
DUE = datetime(2027, 1, 20, 23, 59, tzinfo=timezone(timedelta(hours=1)))
MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0


def config(tmp_path, text: str):
    path = tmp_path / "course.toml"
    path.write_text(textwrap.dedent(text))
    return path


# --- the policy -------------------------------------------------------------------------------------


def test_on_time_and_within_the_grace_period_cost_nothing():
    policy = Policy("per-day", penalty=0.1, cap=0.5, grace_minutes=5)
    assert policy.fraction(0.0) == 0.0
    assert policy.fraction(5 * MINUTE) == 0.0  # the grace period's last second is still on time
    assert policy.fraction(5 * MINUTE + 1) == pytest.approx(0.1)  # then counted from the due date: day 1


def test_one_minute_late_costs_one_started_unit_whichever_the_unit():
    assert Policy("per-hour", penalty=0.02).fraction(MINUTE) == pytest.approx(0.02)
    assert Policy("per-day", penalty=0.1).fraction(MINUTE) == pytest.approx(0.1)
    assert Policy("per-hour", penalty=0.02).fraction(HOUR + MINUTE) == pytest.approx(0.04)  # 2 started hours
    assert Policy("per-day", penalty=0.1).fraction(25 * HOUR) == pytest.approx(0.2)  # 2 started days


def test_the_cap_bounds_the_penalty_and_none_takes_nothing():
    assert Policy("per-day", penalty=0.1, cap=0.5).fraction(30 * DAY) == pytest.approx(0.5)
    assert Policy("per-day", penalty=0.4).fraction(10 * DAY) == pytest.approx(1.0)  # default cap: everything
    assert Policy("none", penalty=0.5).fraction(30 * DAY) == 0.0


def test_assess_takes_a_fraction_of_the_points_earned_and_never_more():
    policy = Policy("per-day", penalty=0.1, cap=0.5)
    found = assess(policy, DUE, DUE + timedelta(hours=26), 12.0)
    assert found["late_by"] == 26.0 and found["penalty"] == pytest.approx(2.4)  # 2 started days: 20 % of 12
    assert found["due"] == "2027-01-20T23:59:00+01:00"
    assert assess(policy, DUE, DUE - timedelta(days=1), 12.0) == {
        "due": DUE.isoformat(),
        "submitted_at": (DUE - timedelta(days=1)).isoformat(),
        "late_by": 0.0,
        "penalty": 0.0,
        "penalty_fraction": 0.0,
    }
    everything = assess(Policy("per-hour", penalty=1.0), DUE, DUE + timedelta(days=3), 7.5)
    assert everything["penalty"] == 7.5  # all of it: the total is 0, not negative
    assert assess(Policy("per-hour", penalty=1.0), DUE, DUE + timedelta(days=3), 0.0)["penalty"] == 0.0


# --- the course config ------------------------------------------------------------------------------


def test_a_config_gives_each_lab_its_aware_due_date(tmp_path):
    found = read_config(
        config(
            tmp_path,
            """
            [late]
            policy = "per-hour"
            penalty = 0.05
            cap = 0.5
            grace_minutes = 10
            timezone = "Europe/Berlin"

            [due]
            "01" = "2027-01-20T23:59:00+01:00"
            02_naive_cnn = 2027-01-27T22:59:00Z
            "00" = 2027-02-03T23:59:00
            """,
        ),
        LABS,
    )
    assert found.policy == Policy("per-hour", 0.05, 0.5, 10.0)
    assert found.due["01_data_prep"] == DUE
    assert found.due["02_naive_cnn"] == datetime(2027, 1, 27, 22, 59, tzinfo=timezone.utc)
    # a local TOML date-time is read in the config's zone
    assert found.due[tc.NAME] == datetime(2027, 2, 3, 23, 59, tzinfo=ZoneInfo("Europe/Berlin"))
    assert found.due[tc.NAME].utcoffset() == timedelta(hours=1)


def test_no_late_table_means_no_penalty(tmp_path):
    found = read_config(config(tmp_path, '[due]\n"01" = "2027-01-20T23:59:00+01:00"\n'), LABS)
    assert found.policy == Policy() and found.policy.fraction(30 * DAY) == 0.0


@pytest.mark.parametrize(
    "text, says",
    [
        (
            '[late]\npolicy = "weekly"\npenalty = 0.1',
            "policy = 'weekly': use one of ['none', 'per-hour', 'per-day']",
        ),
        ('[late]\npolicy = "per-day"\npenalty = 10', "penalty = 10 must be between 0 and 1 (a fraction"),
        ('[late]\npolicy = "per-day"\npenalty = -0.1', "penalty = -0.1 must be between 0 and 1"),
        ('[late]\npolicy = "per-day"\npenalty = 0.1\ncap = 1.5', "cap = 1.5 must be between 0 and 1"),
        ('[late]\npolicy = "per-day"\npenalty = "10%"', "penalty = '10%' is not a number"),
        ('[late]\npolicy = "per-day"\npenalty = nan', "penalty = nan is not a number"),
        ("[late]\npolicy = [1]\npenalty = 0.1", "policy = [1]: use one of"),
        (
            '[late]\npolicy = "per-day"\npenalty = 0.1\ngrace_minutes = -5',
            "grace_minutes = -5 must be at least 0",
        ),
        ('[late]\npolicy = "per-day"', "needs a penalty"),
        ('[late]\npolicy = "per-day"\npenalty = 0.1\npenallty = 0.2', "unknown keys ['penallty']"),
        ('[late]\ntimezone = "PST"', "unknown time zone 'PST'"),
        ('[due]\n"09" = "2027-01-20T23:59:00+01:00"', "[due] '09' is not a lab"),
        ('[due]\n"01" = "20 January 2027"', "'20 January 2027' is not a date and time"),
        ('[due]\n"01" = "2027-01-20T23:59:00"', "has no UTC offset, so the hour it means is ambiguous"),
        ("[due]\n01 = 2027-01-20T23:59:00", "has no UTC offset"),
        ("[due]\n01 = 2027-01-20", "is a date or a time alone"),
        ("[due]\n01 = 20270120", "is not a date"),
        ('[due]\n"01" = "2027-01-20T23:59:00Z"\n01_data_prep = "2027-01-21T23:59:00Z"', "two due dates"),
        ("[due\n", "is not valid TOML"),
    ],
)
def test_config_errors_name_the_problem_and_the_fix(tmp_path, text, says):
    with pytest.raises(LabError) as err:
        read_config(config(tmp_path, text), LABS)
    assert says in str(err.value) and "course.toml" in str(err.value)


def test_a_missing_config_file_is_refused(tmp_path):
    with pytest.raises(LabError, match="no such file"):
        read_config(tmp_path / "nothing.toml", LABS)


# --- submission times -------------------------------------------------------------------------------


def test_times_in_iso_8601_and_in_nbgraders_exchange_format():
    utc = timezone.utc
    assert parse_time("2027-01-20T23:59:00+01:00") == DUE
    assert parse_time("2027-01-20T22:59:00Z") == DUE
    # nbgrader's Exchange.timestamp_format "%Y-%m-%d %H:%M:%S.%f %Z", with its default zone and others
    assert parse_time("2027-01-20 22:58:23.948203 UTC") == datetime(
        2027, 1, 20, 22, 58, 23, 948203, tzinfo=utc
    )
    la = parse_time("2015-02-02 14:58:23.948203 America/Los_Angeles")
    assert la.utcoffset() == timedelta(hours=-8) and la.astimezone(utc).hour == 22
    assert parse_time("2027-01-20 23:59:00 +0100") == DUE
    assert parse_time("2027-01-20 23:59", ZoneInfo("Europe/Berlin")) == DUE  # naive: the config's zone


@pytest.mark.parametrize(
    "text, says",
    [
        ("2027-01-20 23:59", "has no UTC offset"),
        ("2027-01-20 23:59:00 PST", "unknown time zone 'PST'"),
        ("last Tuesday", "is not a date and time"),
    ],
)
def test_ambiguous_or_broken_times_are_refused(text, says):
    with pytest.raises(LabError, match=says):
        parse_time(text, where="times.csv, line 2")


def test_the_timestamps_csv_reads_both_formats(tmp_path):
    path = tmp_path / "times.csv"
    path.write_text(
        "\ufeffStudent,Timestamp,notes\n"
        "alice,2027-01-20T22:00:00Z,early\n"
        "bob,2027-01-21 10:00:00.000000 UTC,\n"
        "\n"
    )
    assert read_timestamps(path) == {
        "alice": datetime(2027, 1, 20, 22, 0, tzinfo=timezone.utc),
        "bob": datetime(2027, 1, 21, 10, 0, tzinfo=timezone.utc),
    }


@pytest.mark.parametrize(
    "text, says",
    [
        ("", "is empty"),
        ("name,when\nalice,2027-01-20T22:00:00Z\n", "lacks student or timestamp"),
        ("student,timestamp\nalice,2027-01-20T22:00:00Z\nalice,2027-01-21T22:00:00Z\n", "lines 2 and 3"),
        ("student,timestamp\nalice,2027-01-20 22:00\n", "line 2: 2027-01-20 22:00:00 has no UTC offset"),
        ("student,timestamp\nalice\n", "line 2: fewer cells than the header"),
    ],
)
def test_timestamps_errors(tmp_path, text, says):
    path = tmp_path / "times.csv"
    path.write_text(text)
    with pytest.raises(LabError, match=says):
        read_timestamps(path)


def test_feedback_says_how_late_and_what_it_cost():
    result = {
        **assess(Policy("per-day", 0.1, 0.5), DUE, DUE + timedelta(hours=26), 12.0),
        "late_policy": Policy("per-day", 0.1, 0.5).describe(),
    }
    (line, _) = late.feedback_lines(result)
    assert "26.00 hours after the due date (2027-01-20 23:59 UTC+01:00)" in line
    assert "a late penalty of 2.4 points (20% of the points earned" in line  # 26 h: 2 started days
    assert "10% of the points earned per started day late, at most 50%" in line
    grace = assess(Policy("per-day", 0.1, grace_minutes=5), DUE, DUE + timedelta(minutes=3), 12.0)
    assert "3 minutes after the due date" in late.feedback_lines(grace)[0]
    assert "within the grace period, no late penalty" in late.feedback_lines(grace)[0]
    assert late.feedback_lines(assess(Policy("per-day", 0.1), DUE, DUE, 12.0)) == []


# --- through the grader -----------------------------------------------------------------------------


def _cached(grader, student: str, submission) -> None:
    """A result for `submission` in OUT/.work as an earlier run would have left it: the run reuses it."""
    from course.grading.grade import _sha

    lab = grader.lab(tc.NAME)
    key = _sha(submission.read_bytes(), lab.sha, json.dumps(grader.settings.key(), sort_keys=True))
    folder = grader.out / ".work" / student
    folder.mkdir(parents=True, exist_ok=True)
    result = {
        "student": student,
        "lab": tc.NAME,
        "key": key,
        "status": "ok",
        "error": None,
        "isolation": "",
        "tampering": [],
        "suspicious": [],
        "exercises": [
            {"id": "00-double", "points": 2.0, "max": 2.0, "message": None},
            {"id": "00-tv", "points": 2.0, "max": 3.0, "message": "total variation differs"},
        ],
        "seconds": 1.0,
        "cell_errors": [],
    }
    (folder / "result.json").write_text(json.dumps(result))


def test_grading_applies_the_late_policy_to_cached_results_without_regrading(tmp_path):
    """Two runs over results an earlier run left: the penalty follows the config of each run, nothing is
    graded again, grades.csv gains late_by and penalty, and total and the feedback are after the penalty."""
    from course.grading.grade import Grader, Settings

    tc.write_master(tmp_path / "masters")
    subs, out = tmp_path / "subs", tmp_path / "out"
    subs.mkdir()
    (tmp_path / "course.toml").write_text(
        '[late]\npolicy = "per-day"\npenalty = 0.25\ncap = 0.5\n[due]\n"00" = "2027-01-20T23:59:00+01:00"\n'
    )
    (tmp_path / "times.csv").write_text("student,timestamp\nalice,2027-01-20 23:59:00.000000 UTC\n")
    lines: list[str] = []
    grader = Grader(
        subs,
        out,
        Settings(jobs=1),
        masters=tmp_path / "masters",
        log=lines.append,
        config=tmp_path / "course.toml",
        timestamps=tmp_path / "times.csv",
    )
    shutil.copyfile(grader.lab(tc.NAME).release, subs / "alice.ipynb")
    shutil.copyfile(grader.lab(tc.NAME).release, subs / "bob.ipynb")
    os.utime(subs / "bob.ipynb", (0, DUE.timestamp() - 3600))  # no timestamp: the file's time, on time
    for student in ("alice", "bob"):
        _cached(grader, student, subs / f"{student}.ipynb")

    results = {r["student"]: r for r in grader.run()}
    assert all(r["cached"] for r in results.values()), "the late policy regrades nothing"
    alice, bob = results["alice"], results["bob"]
    assert alice["late_by"] == 1.0 and alice["penalty"] == 1.0 and alice["submitted_from"] == "timestamps"
    assert bob["late_by"] == 0.0 and bob["penalty"] == 0.0 and bob["submitted_from"] == "file time"
    assert any("no timestamp for 1 submission(s)" in line and "bob" in line for line in lines)
    rows = list(csv.reader((out / "grades.csv").open(newline="")))
    assert rows[0] == [
        "student",
        "00-double",
        "00-tv",
        tc.QUESTION,
        "late_by",
        "penalty",
        "total",
        "pending",
        "status",
    ]
    assert rows[1] == ["alice", "2", "2", "", "1", "1", "3", "2", "ok"]  # 4 earned, a quarter taken
    assert rows[2] == ["bob", "2", "2", "", "0", "0", "4", "2", "ok"]
    feedback = (out / "feedback" / "alice.md").read_text()
    assert "**Total: 3 / 7 points**" in feedback and "after a late penalty of 1" in feedback
    assert "1.00 hours after the due date" in feedback and "(25% of the points earned" in feedback
    assert "late penalty" not in (out / "feedback" / "bob.md").read_text()

    # a stricter policy next run: the same cached results, a new penalty (capped at half)
    (tmp_path / "course.toml").write_text(
        '[late]\npolicy = "per-hour"\npenalty = 0.6\ncap = 0.5\n[due]\n"00" = "2027-01-20T23:59:00+01:00"\n'
    )
    again = Grader(
        subs,
        out,
        Settings(jobs=1),
        masters=tmp_path / "masters",
        log=lines.append,
        config=tmp_path / "course.toml",
        timestamps=tmp_path / "times.csv",
    )
    assert all(r["cached"] for r in again.run())
    rows = list(csv.reader((out / "grades.csv").open(newline="")))
    assert rows[1] == ["alice", "2", "2", "", "1", "2", "2", "2", "ok"]
    assert rows[2] == ["bob", "2", "2", "", "0", "0", "4", "2", "ok"]

    # without a config, grades.csv is as it was before due dates existed
    Grader(subs, out, Settings(jobs=1), masters=tmp_path / "masters", log=lines.append).run()
    header = next(csv.reader((out / "grades.csv").open(newline="")))
    assert header == ["student", "00-double", "00-tv", tc.QUESTION, "total", "pending", "status"]


def test_timestamps_without_a_config_are_refused_before_grading(tmp_path):
    from course.grading.grade import Grader, Settings

    tc.write_master(tmp_path / "masters")
    (tmp_path / "subs").mkdir()
    (tmp_path / "times.csv").write_text("student,timestamp\n")
    with pytest.raises(LabError, match="--timestamps needs --config"):
        Grader(
            tmp_path / "subs",
            tmp_path / "out",
            Settings(jobs=1),
            masters=tmp_path / "masters",
            timestamps=tmp_path / "times.csv",
        )
