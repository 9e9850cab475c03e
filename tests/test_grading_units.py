"""Parts of the grader that need no kernel: reading code for tampering, the sandbox's audit hook,
limits, which lab a submission is, feedback."""

import copy
import os

import nbformat
import pytest
import tiny_course as tc
from nbformat.v4 import new_code_cell, new_notebook

from course.grading import assignments, scan
from course.grading.grade import Settings, feedback_text, parse_size, which_lab
from course.grading.sandbox import Guard, readable_by_others
from course.grading.worker import _reason, _redact, cells_to_run
from labkit.check import CheckFailed
from labkit.core import LabError


def findings(*cells, skip=()):
    return scan.scan(new_notebook(cells=[new_code_cell(c) for c in cells]), set(skip))


@pytest.mark.parametrize(
    "code",
    [
        "labkit.check.close = lambda *a, **k: None",
        "from labkit import check\ncheck.equal = print",
        "import labkit.check as c\nsetattr(c, 'close', None)",
        "from labkit.check import CheckFailed\nCheckFailed.__init__ = None",
        "del labkit.check.shape",
        "labkit = None",
        "import IPython.core.interactiveshell as s\ns.InteractiveShell.showtraceback = lambda *a, **k: None",
        "from IPython.core.interactiveshell import InteractiveShell\nInteractiveShell.showtraceback = None",
        "get_ipython().showtraceback = lambda *a, **k: None",
        "ip = get_ipython()\nip.events.register('post_run_cell', print)",
        "import sys\nsys.modules['labkit.check'] = object()",
        "import sys\nsys.modules.pop('labkit')",
        "import sys\nsys.settrace(None)",
        "import numpy as np\nnp.allclose = lambda *a, **k: True",
        "import torch\ntorch.allclose = lambda *a, **k: True",
        "import builtins\nbuiltins.print = None",
    ],
)
def test_tampering_is_read_from_the_code(code):
    assert findings(code).tampering, code


@pytest.mark.parametrize(
    "code",
    [
        "import torch\ntorch.backends.cudnn.benchmark = True",
        "import numpy as np\nnp.random.seed(0)\nx = np.zeros(3)\nx[0] = 1",
        "check = 3\nclose = check + 1",
        "model.fc = torch.nn.Linear(3, 2)\nself_attr = None",
        "%matplotlib inline\nimport matplotlib.pyplot as plt\nplt.rcParams['figure.dpi'] = 80",
    ],
)
def test_ordinary_code_is_not_tampering(code):
    assert findings(code).tampering == []


def test_suspicious_code_is_noted_and_grading_cells_are_skipped():
    found = findings("exec('x = 1')", "!ls /", "import subprocess", "open('/etc/passwd')")
    assert len(found.suspicious) == 4 and not found.tampering
    cell = new_code_cell("import subprocess\nlabkit.check.close = None")
    cell.metadata["nbgrader"] = {"grade_id": "setup"}
    assert scan.scan(new_notebook(cells=[cell]), {"setup"}).tampering == []


def test_guard_refuses_reads_of_instructor_files_and_writes_outside(tmp_path):
    root, secret = tmp_path / "box", tmp_path / "masters"
    root.mkdir()
    secret.mkdir()
    guard = Guard(str(root), [str(secret), str(tmp_path)], pid=os.getpid())
    guard("open", (str(root / "out.txt"), "w", 0))
    guard("open", (str(root / "in.txt"), "r", 0))
    guard("open", ("/dev/null", "w", 0))
    guard("open", (os.__file__, "r", 0))
    for event, args in [
        ("open", (str(secret / "02.ipynb"), "r", 0)),
        ("open", (str(tmp_path / "x"), "w", 0)),
        ("open", ("/etc/escaped", None, os.O_WRONLY | os.O_CREAT)),
        ("os.remove", (str(tmp_path / "x"), None)),
        ("os.rename", (str(root / "a"), str(tmp_path / "b"), None, None)),
        ("os.listdir", (str(secret),)),
        ("subprocess.Popen", ("cat", ["cat"], None, None)),
        ("os.system", (b"ls",)),
        ("os.kill", (1, 9)),
        ("open", (str(root / ".." / "x"), "a", 0)),
    ]:
        with pytest.raises(PermissionError):
            guard(event, args)
    link = root / "link"
    link.symlink_to(secret)
    with pytest.raises(PermissionError):
        guard("open", (str(link / "02.ipynb"), "r", 0))
    guard("os.kill", (os.getpid(), 0))


def test_readable_by_others(tmp_path):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    (private / "f").write_text("x")
    os.chmod(tmp_path, 0o755)
    assert not readable_by_others(private / "f")


def test_settings_and_sizes():
    assert parse_size("4GB") == 4 * 2**30 and parse_size("512MiB") == 512 * 2**20 and parse_size(10) == 10
    with pytest.raises(LabError, match="memory limit"):
        parse_size("lots")
    assert Settings().params["profile"] == "smoke"
    with pytest.raises(LabError, match="profile"):
        Settings(params={"profile": "fast"})
    with pytest.raises(LabError, match="out_dir"):
        Settings(params={"out_dir": "/tmp"})


def test_which_lab_by_grade_ids_then_by_setup_call():
    cell = new_code_cell("x = 1")
    cell.metadata["nbgrader"] = {"grade_id": "02-cnn"}
    masters = {"02_naive_cnn": {"02-cnn", "02-epoch"}, "03_residual_inception": {"03-block"}}
    assert which_lab(new_notebook(cells=[cell]), masters) == "02_naive_cnn"
    plain = new_notebook(cells=[new_code_cell('lab = labkit.setup("03_residual_inception", profile)')])
    assert which_lab(plain, masters) == "03_residual_inception"
    assert which_lab(new_notebook(cells=[new_code_cell("print(1)")]), masters) is None


def test_messages_come_from_the_tests_and_quotes_of_hidden_tests_are_withheld():
    assert _reason(CheckFailed("shape (2, 3), expected (2, 4)")) == "shape (2, 3), expected (2, 4)"
    assert _reason(NameError("name 'f' is not defined")) == "NameError: name 'f' is not defined"
    assert _redact(
        "x = hidden_case = make_hidden_input() y", ["hidden_case = make_hidden_input()"]
    ).startswith("(the message")


def test_the_submissions_process_gets_the_student_versions_cells_never_the_hidden_tests(tmp_path):
    lab = assignments.prepare(tc.write_master(tmp_path / "masters"), tmp_path / "course")
    master = nbformat.read(lab.master, as_version=4)
    release = nbformat.read(lab.release, as_version=4)
    submitted = tc.with_answer(release, "00-double-answer", "def my_double(x):\n    return 2 * x")
    # a submission that rewrites a test cell, duplicates one and drops another
    submitted.cells[
        [c.metadata.get("nbgrader", {}).get("grade_id") for c in submitted.cells].index("00-tv")
    ].source = "print('my own test')"
    dropped = [c for c in submitted.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "00-double"]
    submitted.cells = [*dropped, copy.deepcopy(dropped[-1])]
    cells = cells_to_run(submitted, release, {"profile": "smoke", "out_dir": "/x", "unknown": 1})
    text = "\n".join(c.source for c in cells)
    assert "HIDDEN" not in text and not [line for line in lab.hidden_lines if line in text]
    assert "my own test" not in text and "return 2 * x" in text
    assert [c.grade_id for c in cells if c.grade_id] == ["00-tv", "00-double"]  # the dropped one at the end
    injected = next(c.source for c in cells if "Parameters set by the grader" in c.source)
    assert "profile" in injected and "unknown" not in injected  # only what the parameters cell declares
    assert any("BEGIN HIDDEN TESTS" in c.source for c in master.cells)


def test_feedback_lists_points_and_reasons():
    result = {
        "student": "carol",
        "lab": "02_naive_cnn",
        "status": "ok",
        "error": None,
        "tampering": [],
        "exercises": [
            {"id": "02-cnn", "points": 4.0, "max": 4.0, "message": None},
            {"id": "02-epoch", "points": 0.0, "max": 3.0, "message": "loss | differs"},
        ],
    }
    text = feedback_text(result, Settings())
    assert "**Total: 4 / 7 points**" in text and "| 02-cnn | 4 / 4 | passed |" in text
    assert "| 02-epoch | 0 / 3 | loss \\| differs |" in text


def test_the_folder_walk_refuses_what_is_not_a_regular_notebook_file_before_any_grading(tmp_path):
    """FIFOs (which would hang a read), links out of the folder, names that would become a path, a CSV
    row or a formula, and oversized files: each gets a row saying why, and no worker runs."""
    import csv

    import tiny_course as tc

    from course.grading.grade import MAX_NOTEBOOK_BYTES, grade

    tc.write_master(tmp_path / "masters")
    subs, out = tmp_path / "subs", tmp_path / "out"
    subs.mkdir()
    os.mkfifo(subs / "fifo.ipynb")
    (subs / "link.ipynb").symlink_to("/etc/passwd")
    (subs / "dir.ipynb").mkdir()
    for name in ("...ipynb", "=cmd|calc.ipynb", "eve\nmallory,10.ipynb", "-x.ipynb"):
        (subs / name).write_text("{}")
    with open(subs / "big.ipynb", "wb") as f:
        f.truncate(MAX_NOTEBOOK_BYTES + 1)
    lines = []
    results = grade(subs, out, masters=tmp_path / "masters", log=lines.append)
    assert "0 to grade" in lines[0] and {r["status"] for r in results} == {"refused"}
    why = {r["student"]: r["error"] for r in results}
    assert "a link" in why["link"] and "FIFO" in why["fifo"] and "FIFO" in why["dir"]
    assert "clear its outputs" in why["big"]
    renamed = [s for s in why if s.startswith("refused-")]
    assert len(renamed) == 4 and all("not a safe student id" in why[s] for s in renamed)
    assert any("\\n" in why[s] for s in renamed), "the name is shown escaped, newline and all"
    rows = list(csv.reader((out / "grades.csv").open()))
    assert rows[0] == ["student", "total", "pending", "status"] and len(rows) == 1 + len(results)
    assert all(row[-1] == "refused" and row[0][:1].isalnum() for row in rows[1:])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["instructors", "masters", "out", "subs"]
    assert not any((out / ".work").iterdir()), "nothing was prepared for a refused file"


def test_the_networks_handed_to_submissions_are_absolute_paths_without_resume_states(tmp_path, monkeypatch):
    """Each worker runs in the output folder: a relative --checkpoints must still reach the networks."""
    (tmp_path / "ck").mkdir()
    for name in ("02_naive_cnn.pt", "02_naive_cnn_training.pt"):
        (tmp_path / "ck" / name).write_bytes(b"weights")
    monkeypatch.chdir(tmp_path)
    assert Settings(checkpoints="ck").networks() == [str(tmp_path / "ck" / "02_naive_cnn.pt")]
