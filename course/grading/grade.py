"""Grade a folder of submitted notebooks: `python -m course grade DIR --out OUT` (`make grade`).

Every `DIR/*.ipynb` is one student's submission (the student is the file's stem); its lab is found
from the grade ids of its cells. Submissions are graded in parallel, each by a worker process
(`course.grading.worker`: the notebook in a process of its own inside the isolation boundary of
`course.grading.boundary`, the tests in the worker), with a time limit and a memory limit per
submission. The grader writes

* `OUT/grades.csv`: `student`, one column per exercise with its points and one per written question
  (empty until marked, see `course.grading.questions`), `total` (exercises and marked questions),
  `pending` (the points of questions not marked yet), and `status` ("ok", "time limit", "memory limit",
  "kernel died", "tampering", ...);
* `OUT/questions/<question>.html`: one written question's rubric and every student's answer, and
  `OUT/marks_template.csv`, the marks still to give (`--marks FILE` merges the instructor's);
* `OUT/feedback/<student>.md`: for each exercise its points and, when it lost some, why: the check's
  message, never a test's code;
* `OUT/report.html`: the class report (`course.grading.class_report`): score distribution, item analysis,
  failure messages, statuses and run times, marks pending, and pairs of submissions whose answers share
  code beyond the starter and the reference (`course.grading.similarity`; nothing is deducted);
* `OUT/.work/<student>/`: the grader's own files (the submission's private copy, the notebook's output
  in `notebook.log`, the result), which are not for students.

With a course config (`--config course.toml`: due dates and a late policy, see `course.grading.late`)
each result gains `submitted_at`, `submitted_from` ("timestamps" or "file time"), `due`, `late_by`
(hours) and `penalty` (points), grades.csv gains `late_by` and `penalty` columns before `total`, and
`total` is after the penalty; the submission times come from `--timestamps times.csv`, else the files'
modification times. The penalty is applied to cached results too: a changed config regrades nothing.

A submission whose content, lab master and grading settings are unchanged since the last run in the
same OUT is not graded again (`force=True` regrades everything).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import queue
import re
import secrets
import signal
import stat
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import nbformat

from course.grading import assignments, boundary, class_report, late, lms, questions, sandbox, similarity
from labkit.core import PROFILES, LabError, atomic_write, project_root

VERSION = "1"  # bump when a change to grading should regrade unchanged submissions
UID_BASE, UID_SPAN = 200_000, 2**24  # under root, each submission runs as a user drawn from this range
STARTUP_SECONDS = 90  # worker and kernel start, nbgrader's bookkeeping: on top of the time limit


def parse_size(text: str | int) -> int:
    """ "4GB", "512MiB", "1.5G" or a number of bytes -> bytes."""
    if isinstance(text, int):
        return text
    units = {
        "": 1,
        "B": 1,
        "K": 2**10,
        "KB": 2**10,
        "KIB": 2**10,
        "M": 2**20,
        "MB": 2**20,
        "MIB": 2**20,
        "G": 2**30,
        "GB": 2**30,
        "GIB": 2**30,
    }
    value = str(text).strip().upper()
    number = value.rstrip("KMGIB")
    unit = value[len(number) :]
    try:
        return int(float(number) * units[unit])
    except (ValueError, KeyError):
        raise LabError(f"memory limit {text!r}: write it as 4GB, 512MB or a number of bytes.") from None


@dataclass
class Settings:
    """How submissions are graded (the cache key includes all of it)."""

    params: dict[str, Any] = field(default_factory=dict)
    time_limit: float = 600.0
    memory: int = 4 * 2**30
    jobs: int = 0
    threads: int = 0
    nice: int = 0
    unprivileged: bool = True
    file_bytes: int = 2 * 2**30
    checkpoints: str | None = None  # a folder of trained networks (*.pt) every submission starts with

    def __post_init__(self) -> None:
        self.params = {"profile": "smoke", **self.params}
        if self.params["profile"] not in PROFILES:
            raise LabError(f"profile={self.params['profile']!r}: use one of {PROFILES}.")
        if "out_dir" in self.params:
            raise LabError("out_dir is set by the grader (each submission writes into its own folder).")
        if self.time_limit <= 0:
            raise LabError(f"time limit {self.time_limit!r}: give a positive number of seconds.")
        if self.checkpoints is not None and not Path(self.checkpoints).is_dir():
            raise LabError(
                f"--checkpoints {self.checkpoints}: not a folder (give e.g. runs/smoke/checkpoints)."
            )
        cores = os.cpu_count() or 1
        self.jobs = self.jobs or cores
        self.threads = self.threads or max(1, cores // self.jobs)

    def networks(self) -> list[str]:
        """The trained networks to hand every submission (not fit's `*_training.pt` resume states)."""
        found = Path(self.checkpoints).glob("*.pt") if self.checkpoints else []
        # absolute: each worker runs in the output folder, not where the grader was started
        return sorted(str(p.resolve()) for p in found if not p.name.endswith("_training.pt"))

    def key(self) -> dict:
        networks = [
            (Path(p).name, Path(p).stat().st_size, Path(p).stat().st_mtime_ns) for p in self.networks()
        ]
        return {
            "params": self.params,
            "time_limit": self.time_limit,
            "memory": self.memory,
            "version": VERSION,
            "networks": networks,
        }


MAX_NOTEBOOK_BYTES = 20 * 2**20  # a lab with its outputs is about 2 MB; bigger is refused before it is read
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+-]{0,99}")


SAFE_TORCH = (2, 6)  # torch.load(weights_only=True) before 2.6 could run code (CVE-2025-32434)


def _check_torch() -> None:
    """The grader reads every reply of a submission's process with torch's safe unpickler: refuse a
    torch whose safe unpickler is known to be unsafe."""
    import torch

    found = tuple(int(part) for part in re.findall(r"\d+", torch.__version__)[:2])
    if found < SAFE_TORCH:
        raise LabError(
            f"grading needs torch {'.'.join(map(str, SAFE_TORCH))} or newer (this is {torch.__version__}): "
            "its safe loader is what keeps a submission's replies from running code in the grader, and "
            "older ones could be made to (CVE-2025-32434). Run: pip install -U torch"
        )


def admit(path: Path) -> tuple[str, str | None]:
    """(the student's id, why the file is refused or None): only a regular notebook file, not a link, a
    FIFO or a device, with a name that is safe as a folder name and a spreadsheet cell, and not too big."""
    name = path.stem
    safe = bool(SAFE_NAME.fullmatch(name)) and ".." not in name
    student = name if safe else f"refused-{hashlib.sha256(os.fsencode(path.name)).hexdigest()[:10]}"
    if not safe:
        return student, (
            f"the file name {ascii(path.name)} is not a safe student id (letters, digits and _ . @ + -, "
            "starting with a letter or digit): rename the file"
        )
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        return student, "a link, not a notebook file: put the submitted file itself in the folder"
    if not stat.S_ISREG(info.st_mode):
        return (
            student,
            "not a regular file (a FIFO, a device or a folder): put the submitted file in the folder",
        )
    if info.st_size > MAX_NOTEBOOK_BYTES:
        return student, (
            f"the notebook is {info.st_size / 2**20:.0f} MB, over the {MAX_NOTEBOOK_BYTES / 2**20:.0f} MB a "
            "submission may be: clear its outputs (Edit > Clear Outputs of All Cells) and submit again"
        )
    return student, None


def read_submission(path: Path) -> bytes:
    """The bytes of the file at `path`, opened without following a link or blocking on a FIFO put there
    since `admit` looked."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise ValueError("not a regular file")
        data = f.read(MAX_NOTEBOOK_BYTES + 1)
    if len(data) > MAX_NOTEBOOK_BYTES:
        raise ValueError(f"over {MAX_NOTEBOOK_BYTES / 2**20:.0f} MB")
    return data


def masters_in(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(Path(folder).glob("[0-9][0-9]_*.ipynb"))}


def which_lab(nb, masters: dict[str, Any]) -> str | None:
    """The lab a submission belongs to: the master sharing most grade ids with it, else the one whose
    `labkit.setup("...")` call it makes."""
    ids = assignments.grade_ids(nb)
    best = max(masters, key=lambda name: len(ids & masters[name]), default=None)
    if best is not None and ids & masters[best]:
        return best
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    named = [name for name in masters if f'labkit.setup("{name}"' in text]
    return named[0] if len(named) == 1 else None


def _sha(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()


def _kill_user(uid: int) -> None:
    import psutil

    for proc in psutil.process_iter(["uids"]):
        try:
            if proc.info["uids"] and proc.info["uids"].real == uid:
                proc.kill()
        except psutil.Error:
            pass


def _lost(
    student: str,
    lab: str,
    key: str,
    exercises: list[assignments.Exercise],
    status: str,
    why: str,
    isolation: str,
) -> dict:
    return {
        "student": student,
        "lab": lab,
        "key": key,
        "status": status,
        "error": why,
        "isolation": isolation,
        "tampering": [],
        "suspicious": [],
        "exercises": [{"id": e.id, "points": 0.0, "max": e.points, "message": why} for e in exercises],
    }


def _lost_spec(spec: dict, status: str, why: str) -> dict:
    """`_lost` for a submission the worker was given `spec` for: every exercise of its lab at 0."""
    exercises = [assignments.Exercise(**e) for e in spec["exercises"]]
    return _lost(spec["student"], spec["lab"], spec["key"], exercises, status, why, spec["isolation"])


def _isolation(settings: Settings) -> str:
    """How a submission is isolated, until its worker says exactly (`course.grading.boundary.command`)."""
    return (
        f"a process of its own ({'bubblewrap' if boundary.bwrap() else 'no isolation tool'}); data limit "
        f"{settings.memory / 2**30:.1f} GiB and a resident-memory watchdog; {settings.time_limit:.0f} s for "
        "the notebook and its tests"
    )


class Grader:
    """One grading run over a folder; see the module docstring."""

    def __init__(
        self,
        submissions: Path,
        out: Path,
        settings: Settings,
        masters: Path | None = None,
        force: bool = False,
        log=print,
        marks: Path | None = None,
        config: Path | None = None,
        timestamps: Path | None = None,
    ) -> None:
        _check_torch()
        self.submissions = Path(submissions).resolve()
        if not self.submissions.is_dir():
            raise LabError(f"{submissions} is not a folder of submitted notebooks.")
        self.out = Path(out).resolve()
        if self.out == self.submissions or self.submissions in self.out.parents:
            raise LabError("--out must not be inside the submissions folder.")
        self.masters_dir = Path(masters).resolve() if masters else project_root() / "notebooks"
        self.masters = masters_in(self.masters_dir)
        if not self.masters:
            raise LabError(f"no lab masters (NN_*.ipynb) in {self.masters_dir}.")
        self.master_ids = {
            n: assignments.grade_ids(nbformat.read(p, as_version=4)) for n, p in self.masters.items()
        }
        self.settings, self.force, self.log = settings, force, log
        # due dates and submission times are checked now, before any grading
        self.late = late.read_config(config, list(self.masters)) if config else None
        if timestamps and self.late is None:
            raise LabError("--timestamps needs --config course.toml: the due dates to compare them with.")
        self.times = late.read_timestamps(timestamps, self.late.zone) if timestamps and self.late else {}
        self.marks_path = Path(marks) if marks else None
        self.texts: dict[str, dict[str, str]] = {}  # {student: {question: answer}}
        self.notebooks: dict[str, Any] = {}  # {student: notebook}, for the similarity of answers
        self.work = self.out / ".work"
        self.labs: dict[str, assignments.Lab] = {}
        self.uids: set[int] = set()
        self.uid_lock = threading.Lock()
        self.slots: queue.Queue[int] = queue.Queue()
        for slot in range(settings.jobs):
            self.slots.put(slot)

    def deny(self) -> list[str]:
        """What a submission's code may not read: the instructor's and the grader's files."""
        root = project_root()
        return [
            str(p)
            for p in (
                root / "notebooks",
                root / "instructors",
                root / ".git",
                root / "tests",
                self.masters_dir,
                self.submissions,
                self.out,
            )
        ]

    def lab(self, name: str) -> assignments.Lab:
        if name not in self.labs:
            (self.out / ".grader").mkdir(parents=True, exist_ok=True)
            os.chmod(self.out / ".grader", 0o700)  # gradebooks: the grader's alone
            self.labs[name] = assignments.prepare(self.masters[name], self.out / ".grader" / name)
        return self.labs[name]

    def _spec(self, path: Path, student: str, lab: assignments.Lab, key: str) -> dict:
        folder = self.work / student
        return {
            "submission": str(path),
            "student": student,
            "lab": lab.name,
            "key": key,
            "master": str(lab.master),
            "release": str(lab.release),
            "exercises": [e.__dict__ for e in lab.exercises],
            "hidden_lines": lab.hidden_lines,
            "skip": lab.replaced,
            "work": str(folder),
            "sealed": lab.sealed,
            "sandbox": str(folder / "sandbox"),
            "params": self.settings.params,
            "time_limit": self.settings.time_limit,
            "memory_bytes": self.settings.memory,
            "file_bytes": self.settings.file_bytes,
            "threads": self.settings.threads,
            "deny": self.deny(),
            "uid": None,
            "isolation": _isolation(self.settings),
            "networks": self.settings.networks(),
        }

    def _fresh_uid(self) -> int:
        """A user id no process has and no submission of this run had: nothing of another submission, or
        of a grader running beside this one, shares it."""
        import psutil

        with self.uid_lock:
            while True:
                uid = UID_BASE + secrets.randbelow(UID_SPAN)
                if uid in self.uids:
                    continue
                in_use = False
                for proc in psutil.process_iter(["uids"]):
                    ids = proc.info["uids"]
                    if ids and uid in (ids.real, ids.effective, ids.saved):
                        in_use = True
                        break
                if not in_use:
                    self.uids.add(uid)
                    return uid

    def _run_worker(self, spec: dict) -> dict:
        folder = Path(spec["work"])
        slot = self.slots.get()
        try:
            if self.settings.unprivileged and os.geteuid() == 0:
                spec["uid"] = self._fresh_uid()
            spec_path, result_path = folder / "spec.json", folder / "result.json"
            spec_path.unlink(missing_ok=True)
            spec_path.touch(mode=0o600)  # it names the hidden tests' lines
            spec_path.write_text(json.dumps(spec))
            result_path.unlink(missing_ok=True)
            nice = self.settings.nice
            proc = subprocess.Popen(
                [sys.executable, "-m", "course.grading.worker", str(spec_path), str(result_path)],
                stdout=open(folder / "worker.log", "w"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=(lambda: os.nice(nice)) if nice else None,
                cwd=str(self.out),  # not the work folder: nothing a submission wrote is importable here
            )
            try:
                proc.wait(timeout=self.settings.time_limit + STARTUP_SECONDS)
            except subprocess.TimeoutExpired:
                sandbox.kill_tree(proc.pid)
                proc.wait()
                return _lost_spec(
                    spec,
                    "time limit",
                    f"time limit: grading took longer than {self.settings.time_limit:.0f} s "
                    f"(+{STARTUP_SECONDS} s to start) and was stopped",
                )
            finally:
                if proc.poll() is None:
                    sandbox.kill_tree(proc.pid)
                if spec["uid"] is not None:
                    _kill_user(spec["uid"])  # a process the kernel forked and left behind
            if not result_path.is_file():
                why = (
                    f"the grading process ended without a result (exit status {proc.returncode}); "
                    f"see {folder}/worker.log"
                )
                if proc.returncode and proc.returncode < 0:
                    why += f" (signal {signal.Signals(-proc.returncode).name})"
                return _lost_spec(spec, "error", why)
            return json.loads(result_path.read_text())
        finally:
            self.slots.put(slot)

    def _refuse_closed_folders(self) -> None:
        """Without bubblewrap a root grader runs each submission as a user of its own, which reaches Python,
        labkit and its scratch folder through the real folders: refuse a folder it cannot pass through."""
        closed = boundary.closed_to_others(self.work) if self.settings.unprivileged else None
        if closed is not None:
            raise LabError(
                f"{closed} is closed to other users (mode {closed.stat().st_mode & 0o777:o}), and without "
                "bubblewrap each submission runs as a user of its own, which must pass through it to reach "
                f"Python, labkit and {self.work}. Install bubblewrap (`apt-get install bubblewrap`), grade "
                f"into a folder other users can enter (--out under /tmp), or `chmod o+x {closed}`."
            )

    def run(self) -> list[dict]:
        self._refuse_closed_folders()  # before any folder is made: a run that could only fail them all
        self.out.mkdir(parents=True, exist_ok=True)
        self.work.mkdir(exist_ok=True)
        os.chmod(self.work, 0o711)  # kernels under their own user pass through to their sandbox, list nothing
        paths = sorted(self.submissions.glob("*.ipynb"))
        results: dict[str, dict] = {}
        todo = []
        students = {}
        for path in paths:
            student, refused = admit(path)
            students[path] = student
            if refused:
                results[student] = _lost(student, "", "", [], "refused", refused, "")
                continue
            folder = self.work / student
            folder.mkdir(exist_ok=True)
            os.chmod(folder, 0o711)
            try:
                data = read_submission(path)
                nb = nbformat.reads(data.decode("utf-8"), as_version=4)
            except Exception as err:  # noqa: BLE001 - a broken file is one student's problem, not the run's
                why = f"the notebook cannot be read: {str(err)[:300]}"
                results[student] = _lost(student, "", "", [], "unreadable", why, "")
                continue
            name = which_lab(nb, self.master_ids)
            if name is None:
                results[student] = _lost(
                    student,
                    "",
                    "",
                    [],
                    "unknown lab",
                    "not a lab notebook: none of its cells belongs to a lab's exercises",
                    "",
                )
                continue
            lab = self.lab(name)
            self.texts[student] = questions.answers(nb, [q.id for q in lab.questions])
            self.notebooks[student] = nb
            key = _sha(data, lab.sha, json.dumps(self.settings.key(), sort_keys=True))
            previous = folder / "result.json"
            if not self.force and previous.is_file():
                old = json.loads(previous.read_text())
                if old.get("key") == key:
                    results[student] = {**old, "cached": True}
                    continue
            # the worker grades this copy: what it reads is what was hashed, whatever happens to `path` now
            copy = folder / "submission.ipynb"
            copy.unlink(missing_ok=True)
            copy.touch(mode=0o600)  # kernels of other submissions pass through .work; they read nothing here
            copy.write_bytes(data)
            todo.append(self._spec(copy, student, lab, key))
        # refused before any grading starts: a marks file the run could not apply
        marks = self.read_marks(set(students.values()), results, todo)
        self.log(
            f"[grade] {len(paths)} submission(s) in {self.submissions}: {len(todo)} to grade, "
            f"{len(paths) - len(todo)} unchanged or not gradable; {self.settings.jobs} at a time, profile "
            f"{self.settings.params['profile']}"
        )
        warning = boundary.warning() if todo else None
        if warning:
            self.log(f"[grade] {warning}")
            print(f"[grade] {warning}", file=sys.stderr)
        start = time.monotonic()
        with ThreadPoolExecutor(max_workers=self.settings.jobs) as pool:
            for result in pool.map(self._run_worker, todo):
                results[result["student"]] = result
                self.log(
                    f"[grade] {result['student']}: {_points(result):g} / {_max(result):g} "
                    f"({result['status']})"
                )
        ordered = [self.with_late(self.with_questions(results[students[p]], marks), p) for p in paths]
        guessed = [r["student"] for r in ordered if r.get("submitted_from") == "file time"]
        if guessed:  # an LMS download may have set them to the time of the download
            self.log(
                f"[grade] no timestamp for {len(guessed)} submission(s); their files' modification times "
                f"stand in: {', '.join(guessed[:10])}{' ...' if len(guessed) > 10 else ''}"
            )
        self.write(ordered)
        self.log(
            f"[grade] {len(todo)} graded in {time.monotonic() - start:.1f} s; "
            f"gradebook {self.out / 'grades.csv'}, "
            f"feedback in {self.out / 'feedback'}, class report {self.out / 'report.html'}"
        )
        return ordered

    def read_marks(self, students: set[str], done: dict[str, dict], todo: list[dict]) -> dict:
        if self.marks_path is None:
            return {}
        labs = {r["lab"] for r in done.values() if r.get("lab")} | {spec["lab"] for spec in todo}
        maxima = {q.id: q.points for name in labs for q in self.lab(name).questions}
        return questions.read_marks(self.marks_path, maxima, students)

    def with_questions(self, result: dict, marks: dict) -> dict:
        """`result` with its lab's written questions: the answer, and the instructor's mark if given."""
        entries = []
        if result.get("lab"):
            texts = self.texts.get(result["student"], {})
            for q in self.lab(result["lab"]).questions:
                mark = marks.get((result["student"], q.id), {})
                entries.append(
                    {
                        "id": q.id,
                        "max": q.points,
                        "points": mark.get("points"),
                        "comment": mark.get("comment", ""),
                        "text": texts.get(q.id, ""),
                    }
                )
        return {**result, "questions": entries}

    def with_late(self, result: dict, path: Path) -> dict:
        """`result` with when it was submitted and its late penalty, when its lab has a due date."""
        if self.late is None or result.get("lab") not in self.late.due:
            return result
        submitted = self.times.get(result["student"])
        source = "timestamps" if submitted else "file time"
        when = submitted or late.file_time(path)
        found = late.assess(self.late.policy, self.late.due[result["lab"]], when, _points(result))
        return {**result, **found, "submitted_from": source, "late_policy": self.late.policy.describe()}

    def columns(self, results: list[dict]) -> list[str]:
        labs = sorted({r["lab"] for r in results if r["lab"]})
        return [item.id for name in labs for item in [*self.lab(name).exercises, *self.lab(name).questions]]

    def write(self, results: list[dict]) -> None:
        columns = self.columns(results)
        with atomic_write(self.out / "grades.csv", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            lateness = ["late_by", "penalty"] if self.late is not None else []
            writer.writerow(["student", *columns, *lateness, "total", "pending", "status"])
            for r in results:
                points = {e["id"]: e["points"] for e in [*r["exercises"], *r.get("questions", [])]}
                writer.writerow(
                    [
                        lms.safe_cell(r["student"]),
                        *(_fmt(points[c]) if points.get(c) is not None else "" for c in columns),
                        *(_fmt(r[k]) if r.get(k) is not None else "" for k in lateness),
                        _fmt(_total(r)),
                        _fmt(_pending(r)),
                        r["status"],
                    ]
                )
        feedback = self.out / "feedback"
        feedback.mkdir(exist_ok=True)
        keep = {f"{r['student']}.md" for r in results}
        for stale in feedback.glob("*.md"):
            if stale.name not in keep:
                stale.unlink()
        for r in results:
            (feedback / f"{r['student']}.md").write_text(feedback_text(r, self.settings))
        questions.write_template(self.out / "marks_template.csv", results)
        questions.write_pages(self.out / "questions", results, self.rubrics(results))
        class_report.write_report(self.out, results, self.similar_pairs(results))

    def similar_pairs(self, results: list[dict]) -> list[similarity.Pair] | None:
        """Pairs of one lab's submissions whose answers share code beyond the starter and the reference
        (`course.grading.similarity`); None when the detector is not installed (the report says so)."""
        pairs: list[similarity.Pair] = []
        for name in sorted({r["lab"] for r in results if r["lab"]}):
            lab = self.lab(name)
            notebooks = {r["student"]: self.notebooks[r["student"]] for r in results if r["lab"] == name}
            master = nbformat.read(lab.master, as_version=4)
            starter = nbformat.read(lab.release, as_version=4)
            try:
                pairs += similarity.similar_pairs(notebooks, similarity.boilerplate(master, starter))
            except LabError as err:  # copydetect missing: grading goes on, the report says why
                self.log(f"[grade] similarity not computed: {err}")
                return None
        return pairs

    def rubrics(self, results: list[dict]) -> dict[str, questions.Rubric]:
        folder = self.masters_dir.parent / "instructors" / "rubrics"
        found: dict[str, questions.Rubric] = {}
        for name in sorted({r["lab"] for r in results if r["lab"]}):
            found.update(questions.read_rubrics(folder / f"{name}.md"))
        return found


def _points(result: dict) -> float:
    """Points earned: the exercises and the written answers marked so far."""
    marked = [q["points"] for q in result.get("questions", []) if q["points"] is not None]
    return round(sum(e["points"] for e in result["exercises"]) + sum(marked), 3)


def _total(result: dict) -> float:
    """Points earned less any late penalty, never below 0."""
    return max(0.0, round(_points(result) - (result.get("penalty") or 0.0), 3))


def _pending(result: dict) -> float:
    return round(sum(q["max"] for q in result.get("questions", []) if q["points"] is None), 3)


def _max(result: dict) -> float:
    return round(sum(e["max"] for e in [*result["exercises"], *result.get("questions", [])]), 3)


def _fmt(x: float) -> str:
    return f"{x:g}"


def feedback_text(result: dict, settings: Settings) -> str:
    """A student's feedback: points per exercise and why any were lost (no test code, no outputs)."""
    lines = [f"# Feedback for {result['student']}" + (f": lab {result['lab']}" if result["lab"] else ""), ""]
    penalty = f", after a late penalty of {_fmt(result['penalty'])}" if result.get("penalty") else ""
    lines.append(
        f"**Total: {_fmt(_total(result))} / {_fmt(_max(result))} points** "
        f"(graded {datetime.now():%Y-%m-%d %H:%M} under the `{settings.params['profile']}` profile{penalty})."
    )
    lines.append("")
    lines += late.feedback_lines(result)
    if result.get("error") and not result["exercises"]:
        lines += [result["error"], ""]
    if result["exercises"]:
        lines += ["| exercise | points | result |", "|---|---|---|"]
        for e in result["exercises"]:
            verdict = "passed" if e["points"] >= e["max"] else (e["message"] or "failed")
            verdict = verdict.replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {e['id']} | {_fmt(e['points'])} / {_fmt(e['max'])} | {verdict} |")
        lines.append("")
    if result.get("questions"):
        lines += ["| written answer | points | comment |", "|---|---|---|"]
        for q in result["questions"]:
            got = "not marked yet" if q["points"] is None else _fmt(q["points"])
            comment = (q.get("comment") or "").replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {q['id']} | {got} / {_fmt(q['max'])} | {comment} |")
        lines.append("")
    notes = {
        "time limit": "The notebook did not finish within the time limit; exercises after the point where it "
        "stopped could not be graded.",
        "memory limit": "The notebook used more memory than the limit allows; the cell that did was stopped.",
        "kernel died": "The notebook's Python process died; exercises after that point could not be graded.",
        "tampering": "The notebook changes the checks or the notebook machinery, so none of its answers were "
        "graded. If this is a mistake, talk to your instructor.",
    }
    if result["status"] in notes:
        lines += ["## Note", "", notes[result["status"]], ""]
    if result.get("tampering"):
        lines += [f"- {t}" for t in result["tampering"]] + [""]
    return "\n".join(lines)


def grade(
    submissions: str | Path,
    out: str | Path,
    *,
    params: dict | None = None,
    masters: str | Path | None = None,
    time_limit: float = 600.0,
    memory: str | int = "4GB",
    jobs: int = 0,
    threads: int = 0,
    nice: int = 0,
    unprivileged: bool = True,
    checkpoints: str | Path | None = None,
    force: bool = False,
    log=print,
    marks: str | Path | None = None,
    config: str | Path | None = None,
    timestamps: str | Path | None = None,
) -> list[dict]:
    """Grade every `*.ipynb` in `submissions` into `out`; returns one result per submission (see the
    module docstring). `checkpoints`: a folder of trained networks (`runs/smoke/checkpoints` after
    `make smoke`) copied into every submission's output folder, so that labs 05-08 explain lab 02's
    network instead of each training a quick one. `config`: a course.toml with due dates and the late
    policy, `timestamps`: a CSV of student,timestamp (see `course.grading.late`)."""
    settings = Settings(
        params=dict(params or {}),
        time_limit=float(time_limit),
        memory=parse_size(memory),
        jobs=jobs,
        threads=threads,
        nice=nice,
        unprivileged=unprivileged,
        checkpoints=str(checkpoints) if checkpoints else None,
    )
    grader = Grader(
        Path(submissions),
        Path(out),
        settings,
        masters=masters,
        force=force,
        log=log,
        marks=marks,
        config=Path(config) if config else None,
        timestamps=Path(timestamps) if timestamps else None,
    )
    return grader.run()
