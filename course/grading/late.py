"""Due dates and the late policy: `python -m course grade DIR --config course.toml --timestamps times.csv`.

The course config file is TOML:

    [late]
    policy = "per-day"          # "none", "per-hour" or "per-day"
    penalty = 0.10              # the fraction of the points earned taken per started hour or day late
    cap = 0.50                  # the most that is taken, as a fraction (default 1: everything)
    grace_minutes = 5           # a submission this little late counts as on time (default 0)
    timezone = "Europe/Berlin"  # optional: the zone of due dates and timestamps written without an offset

    [due]
    "01" = "2027-01-20T23:59:00+01:00"   # lab number or name -> ISO 8601 date and time with its offset
    "02_naive_cnn" = 2027-01-27T23:59:00Z # a TOML date-time works too

A due date or a timestamp without an offset is refused unless `timezone` says where it was written:
a naive time is ambiguous by up to a day, which is the whole penalty. A lab without a due date has no
late penalty (its rows leave grades.csv's `late_by` and `penalty` empty).

The penalty is a fraction of the points the submission earned, as nbgrader's late-submission plugins
compute it (`LateSubmissionPlugin.late_submission_penalty(student_id, score, total_seconds_late)` is given
the score and returns the points to subtract): `min(cap, penalty * started units late) * earned`. It never
takes more than was earned, so a total never goes negative. Lateness is counted from the due date itself;
the grace period only decides whether a submission is late at all.

When each notebook was submitted comes from a timestamps CSV with the columns `student,timestamp` (the
student is the notebook's file stem), in ISO 8601 (`2027-01-20T23:59:00+01:00`, `...Z`) or in the format
of nbgrader's exchange, whose `timestamp.txt` holds `%Y-%m-%d %H:%M:%S.%f %Z` in its `Exchange.timezone`
(default UTC), e.g. `2027-01-20 22:58:23.948203 UTC` or `... America/Los_Angeles`. A student without a row
falls back to the file's modification time (`submitted_from: "file time"`), which a download from an LMS
may have reset to the time of the download: give timestamps when that matters.

The penalty is applied after grading, to fresh and cached results alike: changing the config regrades
nothing.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from labkit.core import LabError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser as a package
    import tomli as tomllib  # type: ignore[no-redef]

POLICIES = {"none": None, "per-hour": 3600.0, "per-day": 86400.0}  # policy -> seconds in one unit
LATE_KEYS = {"policy", "penalty", "cap", "grace_minutes", "timezone"}
UTC_NAMES = {"UTC", "GMT", "Z", "UT"}
_OFFSET = re.compile(r"^([+-])(\d{2}):?(\d{2})$")


@dataclass(frozen=True)
class Policy:
    """How much a late submission loses: see the module docstring."""

    policy: str = "none"
    penalty: float = 0.0
    cap: float = 1.0
    grace_minutes: float = 0.0

    def fraction(self, late_seconds: float) -> float:
        """The fraction of the points earned that a submission `late_seconds` after the due date loses."""
        unit = POLICIES[self.policy]
        if unit is None or late_seconds <= self.grace_minutes * 60:
            return 0.0
        return min(self.cap, self.penalty * math.ceil(late_seconds / unit))

    def describe(self) -> str:
        if self.policy == "none":
            return "no late penalty"
        unit = "hour" if self.policy == "per-hour" else "day"
        text = f"{self.penalty:.0%} of the points earned per started {unit} late, at most {self.cap:.0%}"
        if self.grace_minutes:
            text += f", after a {self.grace_minutes:g}-minute grace period"
        return text


@dataclass
class CourseConfig:
    """The late policy and each lab's due date (timezone-aware)."""

    policy: Policy = field(default_factory=Policy)
    due: dict[str, datetime] = field(default_factory=dict)  # lab name (e.g. "01_data_prep") -> due date
    zone: ZoneInfo | None = None  # where times written without an offset were written


def _number(value, key: str, path: Path, low: float, high: float | None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise LabError(f"{path}: [late] {key} = {value!r} is not a number: write e.g. {key} = 0.1.")
    if value < low or (high is not None and value > high):
        span = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
        hint = " (a fraction: 0.1 is 10 %)" if high == 1 else ""
        raise LabError(f"{path}: [late] {key} = {value!r} must be {span}{hint}.")
    return float(value)


def _zone(name: str, where: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise LabError(
            f"{where}: unknown time zone {name!r}: use an IANA name such as 'Europe/Berlin' or "
            "'America/Los_Angeles' (abbreviations like 'PST' are ambiguous), or write the offset (+01:00)."
        ) from None


def _aware(moment: datetime, zone: ZoneInfo | None, where: str) -> datetime:
    """`moment` with its time zone: its own offset, else `zone`, else refused as ambiguous."""
    if moment.tzinfo is not None:
        return moment
    if zone is None:
        raise LabError(
            f"{where}: {moment.isoformat(sep=' ')} has no UTC offset, so the hour it means is ambiguous: "
            'write it with one (2027-01-20T23:59:00+01:00 or ...Z), or set timezone = "Europe/Berlin" '
            "(your zone) under [late] in the course config."
        )
    return moment.replace(tzinfo=zone)


def parse_time(text: str, zone: ZoneInfo | None = None, where: str = "time") -> datetime:
    """An aware datetime from ISO 8601 (`2027-01-20T23:59:00+01:00`, `...Z`, `2027-01-20 23:59`) or from
    nbgrader's exchange format (`2027-01-20 22:58:23.948203 UTC`, a zone name or a numeric offset last)."""
    text = text.strip()
    iso = text[:-1] + "+00:00" if text.endswith(("Z", "z")) and " " not in text[-2:] else text
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        pass
    else:  # (LabError is a ValueError: _aware stays outside the try)
        return _aware(moment, zone, where)
    head, _, last = text.rpartition(" ")
    try:
        moment = datetime.fromisoformat(head)
    except ValueError:
        raise LabError(
            f"{where}: {text!r} is not a date and time: write ISO 8601 (2027-01-20T23:59:00+01:00) or "
            "nbgrader's format (2027-01-20 22:58:23.948203 UTC)."
        ) from None
    if moment.tzinfo is not None:
        raise LabError(f"{where}: {text!r} gives its time zone twice: keep one.")
    if last.upper() in UTC_NAMES:
        return moment.replace(tzinfo=timezone.utc)
    offset = _OFFSET.match(last)
    if offset:
        sign = 1 if offset[1] == "+" else -1
        delta = timedelta(hours=int(offset[2]), minutes=int(offset[3]))
        return moment.replace(tzinfo=timezone(sign * delta))
    return moment.replace(tzinfo=_zone(last, where))


def _lab_for(key: str, labs: list[str], path: Path) -> str:
    found = [name for name in labs if key in (name, name.split("_", 1)[0])]
    if len(found) != 1:
        raise LabError(
            f"{path}: [due] {key!r} is not a lab: use a lab's number or name ({', '.join(labs) or 'none'})."
        )
    return found[0]


def _due(value, zone: ZoneInfo | None, where: str) -> datetime:
    if isinstance(value, datetime):  # a TOML date-time, with an offset or local
        return _aware(value, zone, where)
    if isinstance(value, (date, time)):
        raise LabError(f"{where}: {value} is a date or a time alone: give both (2027-01-20T23:59:00+01:00).")
    if not isinstance(value, str):
        raise LabError(f'{where}: {value!r} is not a date: write e.g. "2027-01-20T23:59:00+01:00".')
    return parse_time(value, zone, where)


def read_config(path: str | Path, labs: list[str]) -> CourseConfig:
    """The course config at `path`, checked against the lab names `labs` (e.g. ["01_data_prep", ...])."""
    path = Path(path)
    if not path.is_file():
        raise LabError(f"course config {path}: no such file (write one: see course/grading/late.py).")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise LabError(f"{path} is not valid TOML: {err}.") from None
    late, due = data.get("late", {}), data.get("due", {})
    if not isinstance(late, dict) or not isinstance(due, dict):
        raise LabError(f"{path}: [late] and [due] must be tables (a [late] or [due] line, then key = value).")
    unknown = sorted(set(late) - LATE_KEYS)
    if unknown:
        raise LabError(f"{path}: [late] has unknown keys {unknown}: use {sorted(LATE_KEYS)}.")
    name = late.get("policy", "none")
    if not isinstance(name, str) or name not in POLICIES:
        raise LabError(f"{path}: [late] policy = {name!r}: use one of {list(POLICIES)}.")
    penalty = _number(late.get("penalty", 0.0), "penalty", path, 0.0, 1.0)
    if name != "none" and "penalty" not in late:
        raise LabError(f"{path}: [late] policy = {name!r} needs a penalty (e.g. penalty = 0.1 for 10 %).")
    policy = Policy(
        policy=name,
        penalty=penalty,
        cap=_number(late.get("cap", 1.0), "cap", path, 0.0, 1.0),
        grace_minutes=_number(late.get("grace_minutes", 0.0), "grace_minutes", path, 0.0, None),
    )
    zone = None
    if "timezone" in late:
        if not isinstance(late["timezone"], str):
            raise LabError(f'{path}: [late] timezone must be a name in quotes, e.g. "Europe/Berlin".')
        zone = _zone(late["timezone"], f"{path}: [late] timezone")
    dates: dict[str, datetime] = {}
    for key, value in due.items():
        lab = _lab_for(str(key), labs, path)
        if lab in dates:
            raise LabError(f"{path}: [due] gives lab {lab} two due dates: keep one.")
        dates[lab] = _due(value, zone, f"{path}: [due] {key}")
    return CourseConfig(policy=policy, due=dates, zone=zone)


def read_timestamps(path: str | Path, zone: ZoneInfo | None = None) -> dict[str, datetime]:
    """{student: when submitted} from a CSV with the columns student,timestamp (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise LabError(f"timestamps {path}: no such file (a CSV with the columns student,timestamp).")
    with path.open(newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise LabError(f"timestamps {path} is empty: write the header student,timestamp and a row a student.")
    header = [h.strip().lower() for h in rows[0]]
    if "student" not in header or "timestamp" not in header:
        raise LabError(f"timestamps {path}: the header {rows[0]} lacks student or timestamp: add them.")
    who, when = header.index("student"), header.index("timestamp")
    found: dict[str, datetime] = {}
    lines: dict[str, int] = {}
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(who, when):
            raise LabError(f"timestamps {path}, line {number}: fewer cells than the header: {row}.")
        student = row[who].strip()
        if student in found:
            raise LabError(
                f"timestamps {path}: {student} appears on lines {lines[student]} and {number}: keep the row "
                "of the submission that was graded."
            )
        found[student] = parse_time(row[when], zone, f"timestamps {path}, line {number}")
        lines[student] = number
    return found


def file_time(path: str | Path) -> datetime:
    """The modification time of the file at `path`, in UTC."""
    return datetime.fromtimestamp(Path(path).stat().st_mtime, tz=timezone.utc)


def assess(policy: Policy, due: datetime, submitted: datetime, earned: float) -> dict:
    """What a submission at `submitted` for a lab due at `due` loses when it earned `earned` points:
    {"due", "submitted_at" (ISO 8601), "late_by" (hours, 0 when on time), "penalty" (points)}."""
    seconds = max(0.0, (submitted - due).total_seconds())
    fraction = policy.fraction(seconds)
    return {
        "due": due.isoformat(),
        "submitted_at": submitted.isoformat(),
        "late_by": round(seconds / 3600, 2),
        "penalty": round(fraction * max(earned, 0.0), 3),
        "penalty_fraction": fraction,
    }


def _show(iso: str) -> str:
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M %Z").strip()


def feedback_lines(result: dict) -> list[str]:
    """The sentences of a student's feedback about lateness (none when on time or without a due date)."""
    if not result.get("late_by"):
        return []
    hours = result["late_by"]
    late = f"{hours * 60:.0f} minutes" if hours < 1 else f"{hours:.2f} hours"
    text = f"Submitted {_show(result['submitted_at'])}, {late} after the due date ({_show(result['due'])})"
    if not result["penalty_fraction"]:
        return [text + ": within the grace period, no late penalty.", ""]
    return [
        text + f": a late penalty of {result['penalty']:g} points ({result['penalty_fraction']:.0%} of the "
        f"points earned; the course's policy: {result.get('late_policy', 'see the syllabus')}).",
        "",
    ]
