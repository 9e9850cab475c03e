"""The Gradescope autograder bundle (course/grading/gradescope.py): what the zip holds, and run_autograder
run in a folder laid out as Gradescope lays out /autograder (the zip unpacked into source/, run_autograder
copied beside it, the notebook in submission/), on lab 01's master (one grading run), its student version
and a wrong answer (one grading run each: marked `labs`, run by `make test-labs`), and on submissions that
never reach a notebook run (missing, malformed, another lab's). Every results.json is checked against
Gradescope's documented schema."""

from __future__ import annotations

import json
import os
import re
import runpy
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from course import run as runner
from course.grading import assignments, gradescope
from labkit.core import LabError

LAB = "01_data_prep"
ROOT = Path(__file__).resolve().parents[1]
WRONG = Path(__file__).resolve().parent / "wrong_answers" / "lab01.py"

# Gradescope's results.json, as https://gradescope-autograders.readthedocs.io/en/latest/specs/ documents it
# ("Output format", "Controlling Test Case Visibility", "Test case status", "Output String Formatting").
VISIBILITY = {"hidden", "after_due_date", "after_published", "visible"}
FORMATS = {"text", "html", "simple_format", "md", "ansi"}
NUMBER = (int, float)
TOP_LEVEL = {
    "score": NUMBER,
    "execution_time": int,
    "output": str,
    "output_format": FORMATS,
    "test_output_format": FORMATS,
    "test_name_format": FORMATS,
    "visibility": VISIBILITY,
    "stdout_visibility": VISIBILITY,
    "extra_data": dict,
    "tests": list,
    "leaderboard": list,
}
TEST = {
    "score": NUMBER,
    "max_score": NUMBER,
    "status": {"passed", "failed"},
    "name": str,
    "name_format": FORMATS,
    "number": str,
    "output": str,
    "output_format": FORMATS,
    "tags": list,
    "visibility": VISIBILITY,
    "extra_data": dict,
}


def _check_fields(obj: dict, schema: dict, where: str) -> None:
    unknown = set(obj) - set(schema)
    assert not unknown, f"{where}: fields Gradescope does not document: {unknown}"
    for key, value in obj.items():
        allowed = schema[key]
        if isinstance(allowed, set):
            assert value in allowed, f"{where}.{key} = {value!r}, not one of {sorted(allowed)}"
        else:
            assert isinstance(value, allowed) and not isinstance(value, bool), f"{where}.{key} = {value!r}"


def check_schema(doc: dict) -> None:
    """Types and allowed values of every field; a score at the top or on every test."""
    _check_fields(doc, TOP_LEVEL, "results")
    for i, test in enumerate(doc.get("tests", [])):
        _check_fields(test, TEST, f"tests[{i}]")
        assert all(isinstance(tag, str) for tag in test.get("tags", []))
    assert "score" in doc or all("score" in t for t in doc["tests"]), "no score at the top nor on every test"


def read_results(path: Path) -> dict:
    """results.json as strict JSON (no NaN or Infinity, which Gradescope's parser refuses)."""

    def refuse(name):
        raise AssertionError(f"results.json holds {name}")

    return json.loads(path.read_text(), parse_constant=refuse)


def master_nb():
    return nbformat.read(runner.notebooks_dir() / f"{LAB}.ipynb", as_version=4)


def master_exercises() -> dict[str, float]:
    return {e.id: e.points for e in assignments.exercises(master_nb())}


@pytest.fixture(scope="module")
def bundle_zip(tmp_path_factory) -> Path:
    return gradescope.build("01", tmp_path_factory.mktemp("bundle"), root=ROOT)


def unpack(zip_path: Path, root: Path) -> Path:
    """The zip as Gradescope installs it: its contents in ROOT/source (with their permission bits),
    run_autograder copied to ROOT."""
    source = root / "source"
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            target = Path(zf.extract(info, source))
            os.chmod(target, (info.external_attr >> 16) & 0o777)
    (root / "run_autograder").write_bytes((source / "run_autograder").read_bytes())
    os.chmod(root / "run_autograder", 0o755)
    (root / "submission").mkdir()
    return root


def environment(root: Path, python: str = sys.executable) -> dict:
    return {**os.environ, "AUTOGRADER_ROOT": str(root), "AUTOGRADER_PYTHON": python, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def autograder(bundle_zip, tmp_path_factory) -> Path:
    """An unpacked bundle with the lab prepared, as setup.sh leaves it (setup.sh itself installs packages)."""
    root = unpack(bundle_zip, tmp_path_factory.mktemp("gs") / "autograder")
    done = subprocess.run(
        [sys.executable, "-m", "course.grading.gradescope", "prepare"],
        cwd=root / "source",
        env=environment(root),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert (root / "grading" / ".grader" / LAB / "gradebook.db").is_file()
    return root


def submit(root: Path, files: dict[str, bytes], metadata: dict | None = None, python=sys.executable):
    """Put `files` in ROOT/submission, run ROOT/run_autograder as Gradescope does; (results, stdout)."""
    for old in (root / "submission").iterdir():
        old.unlink()
    for name, data in files.items():
        (root / "submission" / name).write_bytes(data)
    meta = root / "submission_metadata.json"
    meta.unlink(missing_ok=True)
    if metadata is not None:
        meta.write_text(json.dumps(metadata))
    done = subprocess.run(
        ["bash", str(root / "run_autograder")],
        cwd=root,
        env=environment(root, python),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    results = read_results(root / "results" / "results.json")
    check_schema(results)
    return results, done.stdout


def exercise_tests(results: dict) -> dict[str, dict]:
    """The per-exercise tests by grade id (the first test is the always-visible notebook check)."""
    return {t["name"].split(":")[0]: t for t in results["tests"][1:]}


def assert_zero(results: dict, says: str) -> None:
    """A failure result: score 0, the check failed saying `says`, every exercise at 0 of its points."""
    assert results["score"] == 0.0
    check = results["tests"][0]
    assert check["status"] == "failed" and check["visibility"] == "visible" and says in check["output"]
    assert says in results["output"]
    tests = exercise_tests(results)
    assert {gid: t["max_score"] for gid, t in tests.items()} == master_exercises()
    assert all(t["score"] == 0.0 and t["status"] == "failed" for t in tests.values())
    assert all(t["output"].startswith("not graded: ") for t in tests.values())


# ------------------------------------------------------------------------------------------------ the zip


def test_the_zip_holds_the_project_and_this_lab_only_with_its_scripts_executable(bundle_zip):
    assert bundle_zip.name == f"autograder_{LAB}.zip"
    with zipfile.ZipFile(bundle_zip) as zf:
        infos = {i.filename: i for i in zf.infolist()}
        settings = json.loads(zf.read("gradescope.json"))
    names = set(infos)
    own = {n for n in names if n.startswith(("labkit/", "course/"))}
    assert names - own == {
        "setup.sh",
        "run_autograder",
        "gradescope.json",
        "pyproject.toml",
        "requirements.txt",
        "README.md",
        f"notebooks/{LAB}.ipynb",
        f"instructors/rubrics/{LAB}.md",
    }
    on_disk = {
        str(p.relative_to(ROOT))
        for package in ("labkit", "course")
        for p in (ROOT / package).rglob("*")
        if p.is_file()
        and not any(part.startswith(".") or part == "__pycache__" for part in p.parts)
        and p.suffix != ".pyc"
    }
    assert own == on_disk, "the packages' sources, nothing more, nothing less"
    assert not any("__pycache__" in n or n.endswith(".pyc") or "/." in n for n in names)
    for script in ("setup.sh", "run_autograder"):
        mode = infos[script].external_attr >> 16
        assert stat.S_ISREG(mode) and mode & 0o777 == 0o755, (script, oct(mode))
    assert (infos["README.md"].external_attr >> 16) & 0o777 == 0o644
    assert settings == {
        "lab": LAB,
        "params": {"profile": "smoke"},
        "time_limit": 600.0,
        "memory": "4GB",
        "visibility": "after_published",
    }


def test_setup_sh_and_run_autograder_are_valid_bash_and_honour_autograder_root(bundle_zip, tmp_path):
    root = unpack(bundle_zip, tmp_path / "autograder")
    setup = (root / "source" / "setup.sh").read_text()
    for script in (root / "source" / "setup.sh", root / "run_autograder"):
        done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert 'ROOT="${AUTOGRADER_ROOT:-/autograder}"' in script.read_text()
    assert "bubblewrap" in setup and "python3-venv" in setup
    assert 'for private in "$ROOT/source/notebooks" "$ROOT/source/instructors"; do' in setup
    assert 'chmod 700 "$private"' in setup
    # the grader's nbgrader, as pyproject.toml's dev extra requires it
    required = re.search(r'"(nbgrader[^"]*)"', (ROOT / "pyproject.toml").read_text()).group(1)
    assert f'"{required}"' in setup


def test_the_command_line_gives_the_same_zip_for_the_same_project(bundle_zip, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert gradescope.main(["gradescope", "01", "--out", str(tmp_path)]) == 0
    assert (tmp_path / bundle_zip.name).read_bytes() == bundle_zip.read_bytes()
    assert "timeout to at least 13 minutes" in capsys.readouterr().out
    assert gradescope.main(["gradescope", "09", "--out", str(tmp_path / "no")]) == 2
    assert "lab '09': no such lab" in capsys.readouterr().err


@pytest.mark.parametrize(
    "kwargs, says",
    [
        ({"lab": "1_data"}, "no such lab"),
        ({"visibility": "sometimes"}, "--visibility 'sometimes'"),
        ({"params": {"epochz": 3}}, "['epochz'] are not declared by 01_data_prep.ipynb"),
        ({"params": {"profile": "huge"}}, "profile='huge'"),
        ({"time_limit": -1}, "time limit -1"),
        ({"memory": "lots"}, "memory limit 'lots'"),
    ],
)
def test_bad_settings_are_refused_before_anything_is_written(kwargs, says, tmp_path):
    kwargs = {"lab": "01", **kwargs}
    with pytest.raises(LabError, match=re.escape(says)):
        gradescope.build(kwargs.pop("lab"), tmp_path / "out", root=ROOT, **kwargs)
    assert not (tmp_path / "out").exists()


# -------------------------------------------------------------------- submissions that never reach a notebook


def test_no_notebook_scores_zero_and_says_so(autograder):
    results, _ = submit(autograder, {"notes.txt": b"my answers are in my head"})
    assert_zero(results, "No notebook was submitted")
    assert results["extra_data"]["status"] == "missing"


def test_a_malformed_notebook_scores_zero_and_says_it_cannot_be_read(autograder):
    results, _ = submit(autograder, {f"{LAB}.ipynb": b'{"cells": [ {"cell_type": '})
    assert_zero(results, "The notebook cannot be read (Notebook does not appear to be JSON")
    assert results["extra_data"]["status"] == "unreadable"


def test_a_notebook_of_another_lab_scores_zero_and_names_the_lab_it_looks_like(autograder):
    other = (runner.notebooks_dir() / "02_naive_cnn.ipynb").read_bytes()
    results, _ = submit(autograder, {"02_naive_cnn.ipynb": other})
    assert_zero(results, f"This is not a notebook of lab {LAB}")
    assert "(it looks like lab 02_naive_cnn)" in results["output"]
    assert exercise_tests(results)["01-split"]["output"] == f"not graded: not a notebook of lab {LAB}"


def test_a_link_or_an_oversized_file_is_refused_unread(autograder, tmp_path):
    submission = autograder / "submission"
    for old in submission.iterdir():
        old.unlink()
    # a link to the master would hand the student its solutions if it were followed
    (submission / f"{LAB}.ipynb").symlink_to(autograder / "source" / "notebooks" / f"{LAB}.ipynb")
    results = gradescope.run(autograder, log=lambda *a: None)
    check_schema(results)
    assert_zero(results, f"{LAB}.ipynb is a link or not a regular file: submit the notebook file itself")
    assert "BEGIN SOLUTION" not in json.dumps(results)
    (submission / f"{LAB}.ipynb").unlink()
    with open(submission / f"{LAB}.ipynb", "wb") as f:
        f.truncate(21 * 2**20)
    results = gradescope.run(autograder, log=lambda *a: None)
    assert_zero(results, f"{LAB}.ipynb is 21 MB, over the 20 MB a submission may be: clear its outputs")
    assert results == read_results(autograder / "results" / "results.json")
    (submission / f"{LAB}.ipynb").unlink()


def test_a_runner_that_cannot_start_still_leaves_a_result(bundle_zip, tmp_path):
    root = unpack(bundle_zip, tmp_path / "autograder")
    results, _ = submit(root, {f"{LAB}.ipynb": b"{}"}, python=str(tmp_path / "no-python"))
    assert results["score"] == 0.0 and results["tests"] == []
    assert results["output"].startswith(
        "The autograder failed before grading your notebook (exit status 127)."
    )


def test_a_runner_that_fails_writes_score_zero_and_the_traceback_to_stdout_only(tmp_path, capsys):
    (tmp_path / "source").mkdir()  # no gradescope.json: the bundle is broken
    written = gradescope.run(tmp_path, log=lambda *a: None)
    results = read_results(tmp_path / "results" / "results.json")
    check_schema(results)
    assert results == written and results["score"] == 0.0
    assert "The autograder failed before it could grade your notebook" in results["output"]
    assert "FileNotFoundError" in results["output"] and "gradescope.json" in capsys.readouterr().out


# ------------------------------------------------------------------------------------ the mapping, unit tests

BUNDLE = gradescope.Bundle(
    lab=LAB,
    params={"profile": "smoke"},
    time_limit=600.0,
    memory="4GB",
    visibility="after_due_date",
    exercises=[("01-a", 2.0), ("01-b", 3.0)],
    titles={"01-a": "the first"},
    questions=[("01-q", 2.0)],
    hidden=["assert secret_answer == 42, 'hidden'"],
)


def graded(status: str, points=(2.0, 0.0), messages=(None, "expected 3 classes, got 2"), **extra) -> dict:
    return {
        "student": "student",
        "lab": LAB,
        "status": status,
        "error": None,
        "tampering": [],
        "exercises": [
            {"id": gid, "points": p, "max": m, "message": msg}
            for (gid, m), p, msg in zip(BUNDLE.exercises, points, messages)
        ],
        "seconds": 31.4,
        **extra,
    }


def test_an_ok_result_keeps_its_points_and_the_checks_messages():
    results = gradescope.to_results(BUNDLE, graded("ok"), ["Submitted 5 min after the due date."], 40.6)
    check_schema(results)
    assert results["score"] == 2.0 and results["execution_time"] == 41
    check, first, second = results["tests"]
    assert check["status"] == "passed" and check["visibility"] == "visible" and "score" not in check
    assert (first["name"], first["score"], first["max_score"], first["status"], first["output"]) == (
        "01-a: the first",
        2.0,
        2.0,
        "passed",
        "passed",
    )
    assert (second["name"], second["score"], second["status"], second["output"]) == (
        "01-b",
        0.0,
        "failed",
        "expected 3 classes, got 2",
    )
    assert first["visibility"] == second["visibility"] == results["visibility"] == "after_due_date"
    assert results["output"].splitlines()[0] == (
        "Your notebook ran to its end (in 31 s, under the smoke profile) and every exercise was graded. "
        "The points of each exercise are shown after the due date."
    )
    assert "Submitted 5 min after the due date." in results["output"]
    assert results["output"].endswith(
        "Written questions: 1 (2 points), marked by hand on Gradescope, not by the autograder."
    )
    assert results["extra_data"] == {
        "lab": LAB,
        "profile": "smoke",
        "written_questions": [{"id": "01-q", "max_score": 2.0}],
        "status": "ok",
    }


def test_over_the_time_limit_everything_scores_zero_saying_what_had_passed():
    result = graded("time limit", messages=(None, "not run: the time limit of 600 s was reached"))
    results = gradescope.to_results(BUNDLE, result, [], 700.0)
    check_schema(results)
    assert results["score"] == 0.0
    assert results["output"].startswith("time limit: the notebook did not finish in 600 s")
    first, second = results["tests"][1:]
    assert first["score"] == 0.0 and first["status"] == "failed"
    assert first["output"] == "passed before the time limit; a notebook over the time limit earns no points"
    assert second["output"].startswith("not run: the time limit of 600 s was reached; ")


def test_tampering_scores_zero_with_the_graders_note_and_an_error_blames_the_autograder():
    tampered = graded("tampering", tampering=["rebinds labkit.check.exercise"])
    results = gradescope.to_results(BUNDLE, tampered, [], 10.0)
    assert results["score"] == 0.0 and all(t.get("score", 0.0) == 0.0 for t in results["tests"])
    assert "(rebinds labkit.check.exercise)" in results["output"]
    failed = gradescope.to_results(BUNDLE, graded("error", error="KeyError: 'x'"), [], 10.0)
    assert failed["score"] == 0.0 and "not your notebook's fault" in failed["output"]
    assert "KeyError" not in json.dumps(failed)  # the grader's own trouble is for stdout, not the student


def test_a_memory_limit_keeps_the_points_earned_before_it():
    results = gradescope.to_results(BUNDLE, graded("memory limit"), [], 10.0)
    assert results["score"] == 2.0 and results["tests"][0]["status"] == "failed"
    assert results["output"].startswith("memory limit: the notebook used more memory than the 4GB allowed")


def test_a_message_quoting_a_hidden_test_is_redacted():
    result = graded("ok", messages=(None, "AssertionError: assert secret_answer == 42, 'hidden'"))
    text = json.dumps(gradescope.to_results(BUNDLE, result, [], 1.0))
    assert "secret_answer" not in text and "[a line of a hidden test]" in text


def test_the_notebook_to_grade_is_the_only_one_or_the_one_named_like_the_lab(tmp_path):
    assert gradescope.pick_notebook(tmp_path, LAB) == (None, "")
    (tmp_path / "deep" / ".ipynb_checkpoints").mkdir(parents=True)
    (tmp_path / "deep" / ".ipynb_checkpoints" / f"{LAB}-checkpoint.ipynb").write_text("{}")
    (tmp_path / "deep" / "mine.ipynb").write_text("{}")
    assert gradescope.pick_notebook(tmp_path, LAB) == (tmp_path / "deep" / "mine.ipynb", "")
    (tmp_path / "a_draft.ipynb").write_text("{}")
    chosen, note = gradescope.pick_notebook(tmp_path, LAB)
    assert chosen == tmp_path / "a_draft.ipynb"
    assert note == (
        "2 notebooks were submitted (a_draft.ipynb, deep/mine.ipynb); graded a_draft.ipynb "
        "(the first of them; name your notebook like the lab)."
    )
    (tmp_path / "deep" / "01_lab.ipynb").write_text("{}")
    assert gradescope.pick_notebook(tmp_path, LAB)[0] == tmp_path / "deep" / "01_lab.ipynb"
    (tmp_path / f"Copy of {LAB}.ipynb").write_text("{}")
    assert gradescope.pick_notebook(tmp_path, LAB)[0] == tmp_path / f"Copy of {LAB}.ipynb"


@pytest.mark.parametrize(
    "created, late_due, says",
    [
        ("2027-01-20T23:59:00+01:00", None, ""),
        ("2027-01-21T01:13:30Z", None, "Submitted 2 h 13 min after the due date (Gradescope applies"),
        ("2027-01-23T00:00:00+01:00", "2027-01-22T00:00:00+01:00", "2 d after the due date, and 1 d after"),
        ("2027-01-21T00:00:20+01:00", None, "Submitted under a minute after the due date"),
    ],
)
def test_lateness_is_read_from_gradescopes_submission_metadata(tmp_path, created, late_due, says):
    meta = tmp_path / "submission_metadata.json"
    assignment = {"due_date": "2027-01-21T00:00:00.000000+01:00", "late_due_date": late_due, "title": "Lab 1"}
    meta.write_text(json.dumps({"id": 1, "created_at": created, "assignment": assignment}))
    text = gradescope.lateness(meta)
    assert says in text if says else text == ""
    assert gradescope.lateness(tmp_path / "absent.json") == ""
    meta.write_text("{not json")
    assert gradescope.lateness(meta) == ""


# ------------------------------------------------------------------------------------- graded for real


def assert_no_hidden_test(results: dict) -> None:
    text = json.dumps(results)
    leaked = [line for line in assignments.hidden_lines(master_nb()) if line in text]
    assert not leaked, f"results.json shows hidden test lines: {leaked[:3]}"


@pytest.mark.notebook
def test_the_master_gets_full_marks_and_a_late_note(autograder):
    metadata = {
        "created_at": "2027-01-21T02:13:00+01:00",
        "assignment": {"due_date": "2027-01-21T00:00:00+01:00", "late_due_date": None},
    }
    master = (runner.notebooks_dir() / f"{LAB}.ipynb").read_bytes()
    results, stdout = submit(autograder, {f"{LAB}.ipynb": master, "scratch.ipynb": b"{"}, metadata)
    assert results["score"] == sum(master_exercises().values()) == 15.0
    assert results["tests"][0]["status"] == "passed"
    tests = exercise_tests(results)
    assert {gid: (t["score"], t["max_score"], t["status"]) for gid, t in tests.items()} == {
        gid: (points, points, "passed") for gid, points in master_exercises().items()
    }
    assert tests["01-verify"]["name"] == "01-verify: find the files that do not decode"
    assert all(t["visibility"] == "after_published" and t["tags"] == [LAB] for t in tests.values())
    assert [t["number"] for t in results["tests"]] == [str(i) for i in range(len(tests) + 1)]
    assert f"graded {LAB}.ipynb (its name matches the lab)" in results["output"]
    assert "Submitted 2 h 13 min after the due date" in results["output"]
    assert results["extra_data"]["status"] == "ok" and results["stdout_visibility"] == "hidden"
    assert results["execution_time"] >= 1
    assert "[grade] student: 15 / 15 (ok)" in stdout
    assert_no_hidden_test(results)


@pytest.mark.labs
def test_the_student_version_runs_and_scores_zero_with_a_message_per_exercise(autograder, tmp_path):
    copy = assignments.make_student_copies(runner.notebooks_dir(), tmp_path, ["01"])[0]
    results, _ = submit(autograder, {"submission.ipynb": copy.read_bytes()})
    assert results["score"] == 0.0
    assert results["tests"][0]["status"] == "passed"  # unanswered exercises do not stop the notebook
    tests = exercise_tests(results)
    assert set(tests) == set(master_exercises())
    for gid, test in tests.items():
        assert test["status"] == "failed" and f"{gid}: not answered yet" in test["output"], gid
    assert_no_hidden_test(results)


@pytest.mark.labs
def test_a_wrong_answer_loses_only_its_exercise(autograder):
    wrong = next(w for w in runpy.run_path(str(WRONG))["WRONG"] if w["exercise"] == "01-split")
    nb = master_nb()
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "01-split-answer")
    for old, new in wrong["replace"].items():
        assert cell.source.count(old) == 1
        cell.source = cell.source.replace(old, new)
    results, _ = submit(autograder, {f"{LAB}.ipynb": nbformat.writes(nb).encode()})
    tests = exercise_tests(results)
    assert results["score"] == 15.0 - 3.0
    assert tests["01-split"]["score"] == 0.0 and tests["01-split"]["status"] == "failed"
    assert wrong["says"] in tests["01-split"]["output"]
    assert all(t["status"] == "passed" for gid, t in tests.items() if gid != "01-split")
    assert_no_hidden_test(results)
