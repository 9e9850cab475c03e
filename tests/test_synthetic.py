"""The synthetic class (`course.grading.synthetic`): its kinds and files on a class of 12 for lab 01, and one
real grading run of a class of 9 (marked `labs`: a few minutes; `make test-labs`)."""

from __future__ import annotations

import ast
import contextlib
import csv
import io
import json
import random
from datetime import datetime, timezone
from pathlib import Path

import nbformat
import pytest

from course.grading import scan, synthetic
from course.grading.assignments import grade_ids
from course.grading.grade import grade, which_lab
from labkit.core import LabError, project_root

MASTER = project_root() / "notebooks" / "01_data_prep.ipynb"
DUE = datetime(2025, 5, 1, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    out = tmp_path_factory.mktemp("class")
    return synthetic.make_class("01", out, 12, seed=5, due=DUE), out


def notebook(out: Path, student: str):
    return nbformat.read(out / "submissions" / f"{student}.ipynb", as_version=4)


def answer_cells(nb) -> dict[str, str]:
    return {
        c.metadata["nbgrader"]["grade_id"]: c.source
        for c in nb.cells
        if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")
    }


def shape(source: str) -> str:
    """The cell's syntax tree with every name made the same: what a copy in disguise keeps."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            node.id = "_"
        elif isinstance(node, ast.arg):
            node.arg = "_"
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            node.name = "_"
    return ast.dump(tree)


def test_every_kind_is_there_with_its_files_and_manifest(made):
    manifest, out = made
    assert manifest.lab == "01_data_prep" and manifest.n == 12
    assert manifest.counts == {
        "partial": 2,
        "wrong": 2,
        "empty": 1,
        "near-duplicate": 2,
        "malformed": 3,
        "full": 2,
    }
    assert list(manifest.students) == [f"s{i:03d}" for i in range(12)]
    assert sorted(p.stem for p in (out / "submissions").iterdir()) == list(manifest.students)
    kinds = [s.kind for s in manifest.students.values()]
    assert {k: kinds.count(k) for k in manifest.counts} == manifest.counts
    assert sorted(s.malformed for s in manifest.of_kind("malformed")) == sorted(synthetic.MALFORMED)
    assert manifest.exercises == {
        "01-verify": 2.0,
        "01-split": 3.0,
        "01-stats": 3.0,
        "01-shift": 3.0,
        "01-weights": 2.0,
        "01-sampler": 2.0,
    }
    on_disk = synthetic.Manifest.read(out / "manifest.json")
    assert on_disk == manifest
    for s in manifest.students.values():
        answered = set(s.answered) | set(s.wrong)
        if s.kind in ("full", "near-duplicate"):
            assert s.answered == list(manifest.exercises) and not s.wrong and s.expected_points == 15.0
        elif s.kind == "partial":
            assert 0 < len(s.answered) < 6 and not s.wrong
        elif s.kind == "wrong":
            assert (
                1 <= len(s.wrong) <= 2
                and answered == set(manifest.exercises)
                and len(s.wrong_why) == len(s.wrong)
            )
            assert s.expected_points == 15.0 - sum(manifest.exercises[e] for e in s.wrong)
        elif s.kind == "empty":
            assert not answered and s.expected_points == 0.0
        else:
            assert s.expected_points is None
            assert s.expected_status == ("unknown lab" if s.malformed == "no lab" else "unreadable")


def test_malformed_files_fail_to_parse_or_belong_to_no_lab(made):
    manifest, out = made
    masters = {"01_data_prep": grade_ids(nbformat.read(MASTER, as_version=4))}
    for s in manifest.of_kind("malformed"):
        data = (out / "submissions" / f"{s.student}.ipynb").read_bytes()
        if s.malformed == "invalid json":
            with pytest.raises(json.JSONDecodeError):
                json.loads(data)
        elif s.malformed == "truncated":
            with pytest.raises(Exception):  # noqa: B017 - cut anywhere: bad JSON or bad UTF-8
                nbformat.reads(data.decode("utf-8"), as_version=4)
        else:
            nb = nbformat.reads(data.decode(), as_version=4)
            nbformat.validate(nb)
            assert which_lab(nb, masters) is None


def test_answers_are_the_masters_the_placeholder_or_the_wrong_ones(made):
    manifest, out = made
    master = {
        k: synthetic._strip_markers(v) for k, v in answer_cells(nbformat.read(MASTER, as_version=4)).items()
    }
    for s in manifest.students.values():
        if s.kind == "malformed":
            continue
        cells = answer_cells(notebook(out, s.student))
        for exercise in manifest.exercises:
            source, own = cells[f"{exercise}-answer"], master[f"{exercise}-answer"]
            if s.kind == "near-duplicate" and s.copy_of:
                continue  # in disguise: below
            if exercise in s.answered:
                assert source.startswith(own) and len(source) > len(own) + 20, (s.student, exercise)
            elif exercise in s.wrong:
                assert not source.startswith(own) and "NotImplementedError" not in source
            else:
                assert "raise NotImplementedError()" in source and source.count("\n") < 10


def test_late_timestamps_come_after_due_and_the_others_before(made):
    manifest, out = made
    with open(out / "timestamps.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["student"] for r in rows] == list(manifest.students)
    late = 0
    for row in rows:
        s = manifest.students[row["student"]]
        when = datetime.fromisoformat(row["timestamp"])
        assert row["timestamp"] == s.timestamp
        assert (when > DUE) == (s.late_minutes > 0)
        if s.late_minutes:
            late += 1
            assert s.late_minutes == int((when - DUE).total_seconds() // 60)
            assert s.kind != "malformed"
    assert late == 1  # 10 % of 12, at least one


def test_roster_is_canvas_style_with_the_file_stems_as_logins(made):
    manifest, out = made
    with open(out / "roster.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    assert [r["SIS Login ID"] for r in rows] == list(manifest.students)
    assert len({r["ID"] for r in rows}) == 12 and all(", " in r["Student"] for r in rows)


def test_near_duplicate_is_the_same_program_in_disguise(made):
    manifest, out = made
    second = [s for s in manifest.of_kind("near-duplicate") if s.copy_of]
    assert len(second) == 1
    b = second[0]
    assert manifest.students[b.copy_of].pair == b.student and b.pair == b.copy_of
    cells_a, cells_b = answer_cells(notebook(out, b.copy_of)), answer_cells(notebook(out, b.student))
    renamed = 0
    for gid, source in cells_a.items():
        assert shape(cells_b[gid]) == shape(source), gid  # the same program
        assert cells_b[gid] != source, gid  # not the same text
        names = {n.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name)}
        renamed += len(names - {n.id for n in ast.walk(ast.parse(cells_b[gid])) if isinstance(n, ast.Name)})
    assert renamed >= 10


def test_independent_students_share_the_answer_but_not_their_own_lines(made):
    manifest, out = made
    master = "\n".join(answer_cells(nbformat.read(MASTER, as_version=4)).values())

    def own_lines(student):
        text = "\n".join(answer_cells(notebook(out, student)).values())
        return {line.strip() for line in text.splitlines() if line.strip() and line.strip() not in master}

    full = [s.student for s in manifest.of_kind("full")]
    a, b = own_lines(full[0]), own_lines(full[1])
    assert len(a) > 12 and len(b) > 12
    assert len(a & b) / len(a | b) < 0.1


def test_every_notebook_is_valid_and_its_answer_cells_compile(made):
    manifest, out = made
    for s in manifest.students.values():
        if s.kind == "malformed":
            continue
        nb = notebook(out, s.student)
        nbformat.validate(nb)
        for gid, source in answer_cells(nb).items():
            code, _ = scan._strip_magics(source)
            compile(code, f"{s.student}:{gid}", "exec")
        findings = scan.scan(nb, {"01-colab"})
        assert findings.tampering == [] and findings.suspicious == [], s.student


def test_the_same_seed_gives_the_same_class_and_another_seed_another(made, tmp_path):
    manifest, out = made
    again = synthetic.make_class("01_data_prep", tmp_path / "again", 12, seed=5, due=DUE)
    other = synthetic.make_class("01", tmp_path / "other", 12, seed=6, due=DUE)
    assert again == manifest
    for path in sorted(out.rglob("*")):
        if path.is_file():
            assert (tmp_path / "again" / path.relative_to(out)).read_bytes() == path.read_bytes(), path.name
    assert [s.kind for s in other.students.values()] != [s.kind for s in manifest.students.values()] or any(
        (tmp_path / "other" / "submissions" / f"{s}.ipynb").read_bytes()
        != (out / "submissions" / f"{s}.ipynb").read_bytes()
        for s in manifest.students
    )


def test_scratch_lines_run_quickly_print_one_line_and_bind_only_fresh_names():
    taken = {"targets", "my_unreadable"}
    for seed in range(300):
        scratch = synthetic.Scratch(random.Random(seed), taken)
        lines = scratch.block(["my_unreadable"])
        namespace = {"my_unreadable": lambda paths: []}
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile("\n".join(lines), f"scratch {seed}", "exec"), namespace)  # noqa: S102
        assert printed.getvalue().count("\n") == 1 and len(printed.getvalue()) < 200
        bound = set(namespace) - {"__builtins__", "my_unreadable"}
        assert bound and bound <= scratch.names and not bound & taken


def test_bad_requests_are_refused_before_anything_is_written(tmp_path):
    with pytest.raises(LabError, match="too small"):
        synthetic.make_class("01", tmp_path / "small", 7)
    with pytest.raises(LabError, match="not one of the masters"):
        synthetic.make_class("42", tmp_path / "none", 12)
    (tmp_path / "foreign" / "submissions").mkdir(parents=True)
    (tmp_path / "foreign" / "submissions" / "alice.ipynb").write_text("{}")
    with pytest.raises(LabError, match="empty folder"):
        synthetic.make_class("01", tmp_path / "foreign", 12)
    assert not (tmp_path / "small").exists() and not (tmp_path / "none").exists()


@pytest.mark.labs
def test_grading_a_small_class_gives_each_kind_its_expected_result(tmp_path):
    manifest = synthetic.make_class("01", tmp_path / "class", 9, seed=0)
    results = grade(
        tmp_path / "class" / "submissions",
        tmp_path / "out",
        params={"profile": "smoke"},
        jobs=1,
        log=lambda *a: None,
    )
    points = {r["student"]: {e["id"]: e["points"] for e in r["exercises"]} for r in results}
    for r in results:
        s = manifest.students[r["student"]]
        assert r["status"] == s.expected_status, (s.student, s.kind, r.get("error"))
        if s.kind == "malformed":
            continue
        got = points[s.student]
        assert sum(got.values()) == s.expected_points, (s.student, s.kind, got)
        for exercise in s.answered:
            assert got[exercise] == manifest.exercises[exercise], (s.student, exercise)
        for exercise in s.wrong:
            assert got[exercise] == 0.0, (s.student, exercise)
        saved = json.loads((tmp_path / "out" / ".work" / s.student / "result.json").read_text())
        assert 0 < saved["notebook_seconds"] <= saved["seconds"]
        assert saved["peak_rss_mib"] > 50  # a Python process with torch imported
    kinds = {s.kind for s in manifest.students.values()}
    assert kinds == {"full", "partial", "wrong", "empty", "near-duplicate", "malformed"}
    totals = {
        s.kind: sum(points[s.student].values()) for s in manifest.students.values() if s.kind != "malformed"
    }
    assert totals["full"] == 15.0 and totals["empty"] == 0.0 and 0 < totals["partial"] < 15.0
    assert totals["wrong"] < 15.0
