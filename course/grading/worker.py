"""Grades one submission: `python -m course.grading.worker SPEC.json RESULT.json`.

The grader (`course.grading.grade`) starts one such process per submission, in parallel. It is the
trusted side of the grading, and it keeps two processes apart:

* the submission's process (`course.grading.submission_process`, inside the boundary of
  `course.grading.boundary`) runs the notebook: the student's cells, with the lab's read-only and test
  cells put back from the student version (visible checks only) and the lab's parameters injected
  after the `parameters` cell, as papermill does;
* this process holds the master, and after each test cell has run there, runs the master's test cell
  (visible checks and hidden tests) here, against what the notebook defined (`course.grading.verdict`).
  A test that runs to its end earns the cell's points; its exception is the student's feedback.

nbgrader made the student version and the gradebook (`course.grading.assignments`); its autograde,
which runs the hidden tests inside the student's kernel and reads the score from its outputs, is not
used. The result, with the reason each failing test gives, goes to RESULT.json, with two figures for
the grader's cost: `notebook_seconds`, the time the submission's process spent running the cells (the
lab's own time; `seconds` is this whole process's), and `peak_rss_mib`, the highest resident memory of
the submission's processes that the memory watchdog saw.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

from course.grading import assignments, boundary, remote, sandbox, scan, verdict
from labkit.core import write_json_atomic

MAX_PROCESSES = 256  # processes and threads of a submission's user (a fresh uid each, under root)

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
OUT_OF_MEMORY = re.compile(r"MemoryError|can(no|')t allocate|Unable to allocate|out of memory", re.I)


def _assigned(source: str) -> set[str]:
    """Names a `parameters` cell assigns."""
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    return {
        t.id
        for node in tree.body
        if isinstance(node, (ast.Assign, ast.AnnAssign))
        for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(t, ast.Name)
    }


@dataclass
class Cell:
    source: str
    grade_id: str | None = None  # a test cell's: the master's cell of this id is the test


def cells_to_run(submitted, release, parameters: dict) -> list[Cell]:
    """The notebook the submission's process runs: the submission's cells in its order, each read-only or
    test cell replaced by the student version's (visible checks only: no hidden test ever goes there),
    the first copy of a grade id only, every test cell the submission dropped at the end, and papermill's
    parameter cell after the one tagged `parameters`."""
    from papermill.translators import translate_parameters

    released = {
        c.metadata["nbgrader"]["grade_id"]: c
        for c in release.cells
        if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade_id")
    }
    tests = {
        k
        for k, c in released.items()
        if c.metadata["nbgrader"].get("grade") and not c.metadata["nbgrader"].get("solution")
    }
    fixed = {k for k, c in released.items() if not c.metadata["nbgrader"].get("solution")}
    seen: set[str] = set()
    out: list[Cell] = []
    for cell in submitted.cells:
        if cell.cell_type != "code":
            continue
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id in seen:
            continue
        if grade_id:
            seen.add(grade_id)
        if grade_id in fixed:
            source = released[grade_id].source
            out.append(Cell(source, grade_id if grade_id in tests else None))
            if "parameters" in released[grade_id].metadata.get("tags", []):
                chosen = {k: v for k, v in parameters.items() if k in _assigned(source)}
                out.append(
                    Cell(translate_parameters("python", "python", chosen, "Parameters set by the grader"))
                )
        else:
            out.append(Cell(str(cell.get("source", ""))))
    out += [Cell(released[k].source, k) for k in released if k in tests and k not in seen]
    return out


def _redact(message: str | None, hidden: list[str]) -> str | None:
    if message and any(line in message for line in hidden):
        return "(the message is withheld: it quotes the hidden tests)"
    return message[:600] if message else message


def _hand_over(root: Path, uid: int) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
            os.chown(name, uid, uid)


def _limits(spec: dict):
    """The resource limits the submission's process starts under (set in the child before exec)."""
    import resource

    def apply() -> None:
        if spec["memory_bytes"]:
            resource.setrlimit(resource.RLIMIT_DATA, (spec["memory_bytes"], spec["memory_bytes"]))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_FSIZE, (spec["file_bytes"], spec["file_bytes"]))
        if spec["uid"] is not None and os.geteuid() == 0:
            resource.setrlimit(resource.RLIMIT_NPROC, (MAX_PROCESSES, MAX_PROCESSES))

    return apply


def _start(
    spec: dict, sandbox_dir: Path, log, deadline: float, shared: Path | None = None
) -> tuple[remote.Submission, str]:
    config = {
        "root": str(sandbox_dir),
        "deny": spec["deny"],
        "readable": [str(shared)] if shared else [],
        "memory_bytes": spec["memory_bytes"],
        "file_bytes": spec["file_bytes"],
    }
    program = [sys.executable, "-m", "course.grading.submission_process"]
    command, how = boundary.command(program, sandbox_dir, spec["uid"], shared=shared)
    if spec["uid"] is not None and os.geteuid() == 0:
        _hand_over(sandbox_dir, spec["uid"])
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "PYTHONNOUSERSITE": "1",
        "OMP_NUM_THREADS": str(spec["threads"]),
        "MKL_NUM_THREADS": str(spec["threads"]),
        sandbox.CONFIG_ENV: json.dumps(config),
    }
    submission = remote.Submission(command, env, str(sandbox_dir), log, deadline, preexec=_limits(spec))
    return submission, how


def grade_submission(spec: dict) -> dict:
    """Grade `spec["submission"]`; see the module docstring for what `spec` holds."""
    import labkit.check

    start = time.monotonic()
    lab, student = spec["lab"], spec["student"]
    exercises = [assignments.Exercise(**e) for e in spec["exercises"]]
    result = {
        "student": student,
        "lab": lab,
        "key": spec["key"],
        "status": "ok",
        "error": None,
        "exercises": [{"id": e.id, "points": 0.0, "max": e.points, "message": None} for e in exercises],
        "tampering": [],
        "suspicious": [],
        "isolation": spec["isolation"],
        "cell_errors": [],  # the notebook's cells that raised, in its own process (for the instructor)
    }
    entries = {e["id"]: e for e in result["exercises"]}
    work, sandbox_dir = Path(spec["work"]), Path(spec["sandbox"])
    # the tests' files for the answer (lab 01's damaged images): the grader's folder, read-only inside the
    # boundary, so the notebook can neither plant a link there nor change a file under a test
    shared = work / "shared"
    for folder in (sandbox_dir, shared):
        shutil.rmtree(folder, ignore_errors=True)
    sandbox_dir.mkdir(mode=0o700)
    shared.mkdir(mode=0o755)
    if spec.get("networks"):  # trained networks the labs reuse (lab 02's for labs 05-08), a copy each
        (sandbox_dir / "out" / "checkpoints").mkdir(parents=True)
        for network in spec["networks"]:
            shutil.copyfile(network, sandbox_dir / "out" / "checkpoints" / Path(network).name)
    try:
        nb = nbformat.read(spec["submission"], as_version=4)
    except Exception as err:  # noqa: BLE001 - any unreadable file is reported, not raised
        result.update(status="unreadable", error=f"the notebook cannot be read: {err}")
        return result
    findings = scan.scan(nb, set(spec["skip"]))
    result["tampering"], result["suspicious"] = findings.tampering, findings.suspicious
    master = nbformat.read(spec["master"], as_version=4)
    tests = {
        c.metadata["nbgrader"]["grade_id"]: c.source
        for c in master.cells
        if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade_id") in entries
    }
    parameters = {**spec["params"], "out_dir": str(sandbox_dir / "out")}
    cells = cells_to_run(nb, nbformat.read(spec["release"], as_version=4), parameters)
    deadline = start + float(spec["time_limit"])
    with open(work / "notebook.log", "wb") as log:
        submission, how = _start(spec, sandbox_dir, log, deadline, shared)
        result["isolation"] = how
        # with no memory limit it only watches: its peak is the submission's peak_rss_mib either way
        watchdog = sandbox.Watchdog(submission.pid, spec["memory_bytes"] or 0)
        watchdog.start()
        runner = verdict.Tests(master, submission, shared)
        labkit.check._REMOTE = remote.Watch(submission)
        try:
            notebook_seconds = _run(
                cells, tests, submission, runner, entries, spec["hidden_lines"], result["cell_errors"]
            )
        finally:
            labkit.check._REMOTE = None
            submission.close()
            try:
                submission.proc.wait(timeout=5)
            except Exception:  # noqa: BLE001
                pass
            sandbox.kill_tree(submission.pid)
            submission.drainer.join(timeout=30)
            watchdog.stopped.set()
    result["notebook_seconds"] = round(notebook_seconds, 1)  # the lab's own time; the rest is the grader's
    result["peak_rss_mib"] = round(watchdog.peak / 2**20, 1)
    if watchdog.fired or submission.out_of_memory:
        result["status"] = "memory limit"
    elif submission.timed_out:
        result["status"] = "time limit"
    elif submission.gone:
        result["status"] = "kernel died"
        result["error"] = submission.gone
    for entry in result["exercises"]:
        if entry["points"] < entry["max"] and not entry["message"]:
            entry["message"] = _not_run(result["status"], spec["time_limit"])
    if findings.tampering:
        result["status"] = "tampering"
        for entry in result["exercises"]:
            entry["points"] = 0.0
            entry["message"] = (
                "not graded: the notebook changes the grading machinery ("
                + "; ".join(findings.tampering[:3])
                + ")"
            )
    result["seconds"] = round(time.monotonic() - start, 1)
    return result


def _not_run(status: str, time_limit: float) -> str:
    return {
        "time limit": f"not run: the time limit of {float(time_limit):.0f} s was reached before this test",
        "memory limit": "not run: the notebook passed the memory limit and was stopped before this test",
        "kernel died": "not run: the notebook's process ended or stopped answering before this test",
    }.get(status, "no points: the test cell did not pass")


def _run(cells, tests, submission, runner, entries, hidden_lines, errors: list) -> float:
    """Each cell in the submission's process; after each test cell, its test in this one. Returns the
    seconds the submission's process spent running the cells (the tests' time is not counted)."""
    spent = 0.0
    for number, cell in enumerate(cells):
        if submission.gone:
            return spent
        began = time.monotonic()
        try:
            submission.request("exec", cell.source)
        except remote.SubmissionGone:
            return spent + time.monotonic() - began
        except Exception as err:  # noqa: BLE001 - a failing cell of the notebook: the next cells still run
            if isinstance(err, MemoryError) or OUT_OF_MEMORY.search(str(err)):
                submission.out_of_memory = True
            errors.append({"cell": number, "test": cell.grade_id, "error": _reason(err)[:300]})
        spent += time.monotonic() - began
        if cell.grade_id is None or cell.grade_id not in entries:
            continue
        entry = entries[cell.grade_id]
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                runner.run(tests[cell.grade_id])
        except remote.SubmissionGone:
            return spent
        except BaseException as err:  # noqa: BLE001 - the test's failure is the student's feedback
            entry["message"] = _redact(_reason(err), hidden_lines)
            continue
        entry["points"] = entry["max"]
    return spent


def _reason(err: BaseException) -> str:
    from labkit.check import CheckFailed

    text = ANSI.sub("", str(err))
    if isinstance(err, CheckFailed):
        return text
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def main(argv: list[str]) -> int:
    spec_path, result_path = Path(argv[0]), Path(argv[1])
    spec = json.loads(spec_path.read_text())
    try:
        result = grade_submission(spec)
    except Exception as err:  # noqa: BLE001 - the grader records the failure for this submission only
        result = {
            "student": spec["student"],
            "lab": spec["lab"],
            "key": spec["key"],
            "status": "error",
            "error": f"{type(err).__name__}: {err}",
            "exercises": [
                {"id": e["id"], "points": 0.0, "max": e["points"], "message": "not graded: the grader failed"}
                for e in spec["exercises"]
            ],
            "tampering": [],
            "suspicious": [],
            "isolation": spec["isolation"],
        }
    write_json_atomic(result_path, result)
    return 0


if __name__ == "__main__":
    status = main(sys.argv[1:])
    sys.stdout.flush()
    os._exit(status)  # the result is written: torch's teardown would only keep the grader waiting
