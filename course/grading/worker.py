"""Grades one submission: `python -m course.grading.worker SPEC.json RESULT.json`.

The grader (`course.grading.grade`) starts one such process per submission, in parallel. It runs
`nbgrader autograde` on the submission in a course folder of its own, with two changes made through
nbgrader's configuration: the lab's parameters are injected after its `parameters` cell (as papermill
does), and cells run in the sandboxed kernel of `course.grading.sandbox` with a deadline and a memory
limit. nbgrader puts back the read-only cells and the test cells with their hidden tests, scores each
test cell from its outputs, and keeps the scores in the submission's gradebook; this process reads
them back, with the reason each failing test gives, into RESULT.json.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import nbformat

from course.grading import assignments, sandbox, scan
from labkit.core import write_json_atomic

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
STOPS = {
    "TimeLimitExceeded": "time limit",
    "MemoryLimitExceeded": "memory limit",
    "KernelDied": "kernel died",
}
OUT_OF_MEMORY = re.compile(r"MemoryError|can(no|')t allocate|Unable to allocate|out of memory", re.I)


def injector_class():
    from nbgrader.preprocessors import NbGraderPreprocessor
    from traitlets import Dict

    class InjectParameters(NbGraderPreprocessor):
        """Papermill's parameter injection: a cell after the one tagged `parameters`."""

        parameters = Dict({}).tag(config=True)

        def preprocess(self, nb, resources):
            from nbformat.v4 import new_code_cell
            from papermill.translators import translate_parameters

            where = next(
                (i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])), -1
            )
            declared = _assigned(nb.cells[where].source) if where >= 0 else set()
            chosen = {k: v for k, v in self.parameters.items() if k in declared}
            cell = new_code_cell(
                translate_parameters("python", "python", chosen, "Parameters set by the grader")
            )
            cell.metadata["tags"] = ["injected-parameters"]
            nb.cells.insert(where + 1, cell)
            return nb, resources

    return InjectParameters


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


def _configure(cfg, spec: dict):
    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.preprocessors import (
        AssignLatePenalties,
        CheckCellMetadata,
        ClearOutput,
        DeduplicateIds,
        IgnorePattern,
        LimitOutput,
        OverwriteCells,
        OverwriteKernelspec,
        SaveAutoGrades,
    )

    execute = sandbox.executor_class()
    cfg.Autograde.sanitize_preprocessors = [
        ClearOutput,
        DeduplicateIds,
        OverwriteKernelspec,
        OverwriteCells,
        CheckCellMetadata,
        injector_class(),
    ]
    cfg.Autograde.autograde_preprocessors = [
        execute,
        IgnorePattern,
        ClearMetadataPreprocessor,
        LimitOutput,
        SaveAutoGrades,
        AssignLatePenalties,
        CheckCellMetadata,
    ]
    cfg.SandboxedExecute.time_limit = float(spec["time_limit"])
    cfg.SandboxedExecute.memory_limit = int(spec["memory_bytes"] or 0)
    cfg.SandboxedExecute.sandbox = spec["sandbox"]
    cfg.SandboxedExecute.startup_timeout = 120
    cfg.InjectParameters.parameters = {**spec["params"], "out_dir": str(Path(spec["sandbox"]) / "out")}
    return cfg


def _message(outputs: list) -> str | None:
    """Why a test cell failed, from its outputs: the error's message (never its traceback, which would
    show the test's code), else what it wrote to stderr."""
    for out in reversed(outputs):
        if out.get("output_type") == "error":
            ename, evalue = out.get("ename", "Error"), ANSI.sub("", str(out.get("evalue", "")))
            if ename == "CheckFailed":
                return evalue
            if ename == "NotRun":
                return evalue
            return f"{ename}: {evalue}" if evalue else ename
    for out in outputs:
        if out.get("output_type") == "stream" and out.get("name") == "stderr":
            first = ANSI.sub("", out.get("text", "")).strip().splitlines()[:1]
            return "the test cell wrote to stderr, which counts as a failure: " + (first[0] if first else "")
    return None


def _redact(message: str | None, hidden: list[str]) -> str | None:
    if message and any(line in message for line in hidden):
        return "(the message is withheld: it quotes the hidden tests)"
    return message[:600] if message else message


def _status(nb) -> str:
    """ "ok", or what stopped the notebook: the time limit, the memory limit, a dead kernel."""
    errors = [
        out for cell in nb.cells for out in cell.get("outputs", []) if out.get("output_type") == "error"
    ]
    stops = [STOPS[e["ename"]] for e in errors if e.get("ename") in STOPS]
    if stops:
        return stops[0]
    if any(OUT_OF_MEMORY.search(f"{e.get('ename')}: {e.get('evalue')}") for e in errors):
        return "memory limit"
    return "ok"


def _text(outputs: list) -> str:
    return "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")


def grade_submission(spec: dict) -> dict:
    """Grade `spec["submission"]`; see the module docstring for what `spec` holds."""
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
    }
    work, sandbox_dir = Path(spec["work"]), Path(spec["sandbox"])
    root = work / "course"
    for folder in (root, sandbox_dir):
        shutil.rmtree(folder, ignore_errors=True)
    submitted = root / "submitted" / assignments.STUDENT_ID / lab
    submitted.mkdir(parents=True)
    (root / "source" / lab).mkdir(parents=True)
    os.chmod(root, 0o700)
    sandbox_dir.mkdir(mode=0o700)
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
    shutil.copyfile(spec["gradebook"], root / "gradebook.db")
    nbformat.write(nb, submitted / f"{lab}.ipynb")
    box = {
        "root": str(sandbox_dir),
        "deny": spec["deny"],
        "memory_bytes": spec["memory_bytes"],
        "file_bytes": spec["file_bytes"],
        "uid": spec["uid"],
    }
    os.environ[sandbox.CONFIG_ENV] = json.dumps(box)
    # in the environment the kernel process starts with: its thread pools (torch's OpenMP, BLAS) are sized
    # when the kernel first imports labkit, before any code of the sandbox could set them
    os.environ.update(OMP_NUM_THREADS=str(spec["threads"]), MKL_NUM_THREADS=str(spec["threads"]))
    result["isolation"] = spec["isolation"].replace("{user}", sandbox.user_switch(box)[1])
    with assignments.nbgrader_env():
        from nbgrader.api import Gradebook

        cfg = _configure(assignments.config(root), spec)
        outcome = assignments.api(root, cfg).autograde(lab, assignments.STUDENT_ID, force=True, create=True)
        graded = root / "autograded" / assignments.STUDENT_ID / lab / f"{lab}.ipynb"
        if not outcome["success"] or not graded.is_file():
            result.update(
                status="error", error="nbgrader autograde failed:\n" + assignments._log_tail(outcome)
            )
            return result
        with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
            notebook = gb.find_submission_notebook(lab, lab, assignments.STUDENT_ID)
            scores = {g.name: float(g.score or 0.0) for g in notebook.grades}
    executed = nbformat.read(graded, as_version=4)
    outputs = {
        c.metadata.get("nbgrader", {}).get("grade_id"): c.get("outputs", [])
        for c in executed.cells
        if c.cell_type == "code"
    }
    result["status"] = _status(executed)
    for entry in result["exercises"]:
        entry["points"] = scores.get(entry["id"], 0.0)
        cell = outputs.get(entry["id"], [])
        if (
            entry["points"]
            and entry["id"] in spec["sealed"]
            and f"✓ {entry['id']}: hidden tests passed." not in _text(cell)
        ):
            # labkit.check.exercise reports hidden tests that ran and passed; checks replaced by the
            # notebook (a no-op stand-in) report nothing
            entry["points"] = 0.0
            entry["message"] = (
                "no points: the hidden tests did not report that they passed (the notebook may "
                "have replaced labkit's checks)"
            )
            continue
        if entry["points"] < entry["max"]:
            entry["message"] = _redact(_message(outputs.get(entry["id"], [])), spec["hidden_lines"]) or (
                "no points: the test cell did not pass"
            )
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
    sys.exit(main(sys.argv[1:]))
