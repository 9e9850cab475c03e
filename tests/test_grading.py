"""The graded course: student versions, and grading a folder of submissions the tests make.

Most cases grade submissions of a tiny two-exercise lab (tests/tiny_course.py) in one parallel run:
the solution, the untouched student version, a wrong answer, an exception, an endless loop, memory
without bound, and the first exploits (checks redefined, error reporting silenced, instructor files
read, files written outside the sandbox, labkit's reference called). The verdict is computed in the
grader's process (course.grading.verdict), so a notebook that changes the checks in its own process
only changes what its own log says. The hostile classes of issue 22, one run of their own:
test_grading_hostile.py; the real labs: test_grading_labs.py.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import stat
import textwrap
from pathlib import Path

import nbformat
import pytest
import tiny_course as tc

from course.grading import assignments
from course.grading.grade import grade
from labkit.core import LabError

pytestmark = pytest.mark.notebook

# seconds per tiny submission (each needs about 3 on a busy 2-core machine); the endless loop uses all of it
TIME_LIMIT = 15
MEMORY = "2.5GB"


def _code(text: str) -> str:
    return textwrap.dedent(text).strip()


def submissions(master_nb, student_nb, places: dict) -> dict[str, nbformat.NotebookNode]:
    """{student: notebook}: one per case."""
    A, B = "00-double-answer", "00-tv-answer"
    wrong = tc.with_answer(
        tc.with_answer(student_nb, A, "def my_double(x):\n    return x"),
        B,
        "def my_tv(z):\n    return z.sum(dim=(1, 2, 3))",
    )
    subs = {
        "alice": master_nb,
        "bob": student_nb,
        "carol": tc.with_answer(
            tc.with_answer(master_nb, A, "def my_double(x):\n    return 3 * x"),
            tc.QUESTION,
            "<script>alert('marked')</script> Yes: it is linear.",
        ),
        "dave": tc.with_answer(
            master_nb,
            A,
            'raise RuntimeError("my first answer is broken")\ndef my_double(x):\n    return 2 * x',
        ),
        "erin": tc.with_answer(master_nb, A, "while True:\n    pass"),
        "frank": tc.with_cell_before(
            master_nb,
            A,
            _code("""
            import numpy as np
            blocks = []
            while True:
                blocks.append(np.ones(2**26))  # 512 MB at a time, until the data limit refuses
        """),
        ),
        "gina": tc.with_cell_before(
            master_nb,
            A,
            _code("""
            import mmap
            shared = mmap.mmap(-1, 6 * 2**30)  # shared memory is outside the data limit: the watchdog's case
            for i in range(0, len(shared), 4096):
                shared[i] = 1
        """),
        ),
        "hank": tc.with_cell_before(
            wrong,
            A,
            _code("""
            import labkit.check
            labkit.check.close = lambda *args, **kwargs: None
            labkit.check.equal = labkit.check.close
        """),
        ),
        "ivy": tc.with_cell_before(
            wrong,
            A,
            _code("""
            exec("import labkit.check as c\\nc.close = lambda *a, **k: None")
        """),
        ),
        "jack": tc.with_cell_before(
            wrong,
            A,
            _code("""
            import contextlib
            exec("import labkit.check as c\\nc.exercise = lambda *a, **k: contextlib.nullcontext()\\n"
                 "c.close = lambda *a, **k: None")
        """),
        ),
        "liam": tc.with_cell_before(
            wrong,
            A,
            _code("""
            exec("import IPython.core.interactiveshell as s\\n"
                 "s.InteractiveShell.showtraceback = lambda *a, **k: None")
        """),
        ),
        "mia": tc.with_answer(
            wrong,
            A,
            _code(f"""
            import json, re
            got = {{}}
            for path in {json.dumps(places["secret"])}:
                try:
                    got[path] = open(path, "rb").read()[:100]
                except Exception as err:
                    got[path] = type(err).__name__
            print(json.dumps({{k: str(v) for k, v in got.items()}}))
            def my_double(x):
                return 0 * x
        """),
        ),
        "noah": tc.with_answer(
            student_nb,
            A,
            _code(f"""
            import os
            done = {{}}
            for path in {json.dumps(places["targets"])}:
                try:
                    with open(path, "w") as f:
                        f.write("overwritten by a submission")
                    done[path] = "written"
                except Exception as err:
                    done[path] = type(err).__name__
            for pid in (os.getppid(), 1):
                try:
                    os.kill(pid, 9)
                except Exception as err:
                    done[pid] = type(err).__name__
            print(done)
        """),
        ),
        "olivia": tc.with_answer(master_nb, B, "def my_tv(z):\n    return total_variation(z)"),
        "pia": tc.with_cell_before(master_nb, A, 'import torch\nprint(f"threads={torch.get_num_threads()}")'),
        "quinn": tc.with_answer(
            master_nb,
            B,
            _code("""
            def my_tv(z):
                import inspect
                raise ValueError(inspect.getsource(inspect.currentframe().f_back))
        """),
        ),
    }
    stranger = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print('not a lab')")])
    subs["zed"] = stranger
    return subs


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    base = tmp_path_factory.mktemp("course")
    master = tc.write_master(base / "masters")
    student = assignments.make_student_copies(base / "masters", base / "student")[0]
    subs_dir, out = base / "submissions", base / "out"
    subs_dir.mkdir()
    places = {
        "secret": [
            str(master),
            str(out / ".grader" / tc.NAME / "gradebook.db"),
            str(subs_dir / "alice.ipynb"),
            # the grader's own files about another submission: its spec holds the hidden tests' lines
            str(out / ".work" / "alice" / "spec.json"),
            str(out / ".work" / "alice" / "submission.ipynb"),
        ],
        "targets": [
            str(out / "grades.csv"),
            str(subs_dir / "alice.ipynb"),
            str(base / "escaped.txt"),
            str(out / ".work" / "alice" / "result.json"),
        ],
    }
    master_nb, student_nb = nbformat.read(master, as_version=4), nbformat.read(student, as_version=4)
    for name, nb in submissions(master_nb, student_nb, places).items():
        nbformat.write(nb, subs_dir / f"{name}.ipynb")
    alice_before = (subs_dir / "alice.ipynb").read_bytes()
    lines = []
    results = grade(
        subs_dir,
        out,
        masters=base / "masters",
        time_limit=TIME_LIMIT,
        memory=MEMORY,
        nice=19,
        log=lines.append,
    )
    return {
        "results": {r["student"]: r for r in results},
        "out": out,
        "base": base,
        "subs": subs_dir,
        "student": student,
        "master": master,
        "alice_before": alice_before,
        "log": lines,
    }


def points(graded, student) -> dict[str, float]:
    return {e["id"]: e["points"] for e in graded["results"][student]["exercises"]}


def message(graded, student, exercise) -> str:
    return next(e["message"] for e in graded["results"][student]["exercises"] if e["id"] == exercise) or ""


def executed(graded, student) -> str:
    """What the notebook printed (its stdout and stderr: the log the grader keeps, not for students)."""
    return (graded["out"] / ".work" / student / "notebook.log").read_text(errors="replace")


def test_student_version_has_no_solutions_and_no_hidden_tests(graded):
    student = graded["student"]
    assert [p.name for p in student.parent.iterdir()] == [student.name], (
        "nothing may sit beside the student copy"
    )
    text = student.read_text()
    for secret in (
        "BEGIN SOLUTION",
        "return 2 * x",
        "HIDDEN TESTS",
        "z_hidden_case",
        "my_double of other numbers",
    ):
        assert secret not in text
    nb = nbformat.read(student, as_version=4)
    assert "raise NotImplementedError()" in tc.answer_cell(nb, "00-double-answer").source
    assert 'labkit.check.exercise("00-double"' in tc.answer_cell(nb, "00-double").source


def test_gradebook_has_a_column_per_exercise_and_the_expected_totals(graded):
    rows = (graded["out"] / "grades.csv").read_text().splitlines()
    assert rows[0] == "student,00-double,00-tv,00-q-linear,total,pending,status"
    table = {r.split(",")[0]: r.split(",") for r in rows[1:]}
    # the written answer is empty until marked, and its points are pending
    assert table["alice"][1:] == ["2", "3", "", "5", "2", "ok"]
    assert table["bob"][1:] == ["0", "0", "", "0", "2", "ok"]
    assert table["carol"][1:] == ["0", "3", "", "3", "2", "ok"]
    assert table["zed"][1:6] == ["", "", "", "0", "0"] and table["zed"][6] == "unknown lab"


def test_untouched_student_version_gets_zero_and_a_helpful_message_per_exercise(graded):
    assert points(graded, "bob") == {"00-double": 0, "00-tv": 0}
    for exercise in ("00-double", "00-tv"):
        assert "not answered yet" in message(graded, "bob", exercise)
        assert "NotImplementedError" in message(graded, "bob", exercise)
    assert "total variation of a ramp" in executed(graded, "bob"), "the cell after the exercises still ran"


def test_wrong_answer_loses_only_its_exercise_and_says_why(graded):
    assert points(graded, "carol") == {"00-double": 0, "00-tv": 3}
    assert "my_double([1, 2]) differs" in message(graded, "carol", "00-double")
    feedback = (graded["out"] / "feedback" / "carol.md").read_text()
    assert "3 / 7" in feedback and "00-double | 0 / 2" in feedback and "00-tv | 3 / 3 | passed" in feedback
    assert "00-q-linear | not marked yet / 2" in feedback


def test_exception_in_first_exercise_leaves_later_exercises_graded(graded):
    assert points(graded, "dave") == {"00-double": 0, "00-tv": 3}
    assert "NameError" in message(graded, "dave", "00-double")


def test_endless_loop_hits_the_time_limit_and_is_recorded(graded):
    result = graded["results"]["erin"]
    assert result["status"] == "time limit"
    assert points(graded, "erin") == {"00-double": 0, "00-tv": 0}
    assert "time limit" in message(graded, "erin", "00-tv")
    assert "time limit" in (graded["out"] / "feedback" / "erin.md").read_text()


def test_unbounded_memory_is_stopped_and_recorded(graded):
    assert graded["results"]["frank"]["status"] == "memory limit"  # refused by the data limit (MemoryError)
    assert graded["results"]["gina"]["status"] == "memory limit"  # shared memory: killed by the watchdog
    assert "passed the memory limit" in message(graded, "gina", "00-double")
    assert points(graded, "gina") == {"00-double": 0, "00-tv": 0}, "stopped before its first test"


def test_the_batch_is_unaffected_by_loops_memory_and_exploits(graded):
    rows = (graded["out"] / "grades.csv").read_text().splitlines()
    assert len(rows) == 1 + len(graded["results"])
    assert points(graded, "alice") == {"00-double": 2, "00-tv": 3}
    assert (graded["subs"] / "alice.ipynb").read_bytes() == graded["alice_before"]
    assert json.loads((graded["out"] / ".work" / "alice" / "result.json").read_text())["student"] == "alice"


def test_changing_the_checks_written_out_is_read_from_the_code(graded):
    # read from the code before it runs (more forms: test_grading_units.py)
    assert points(graded, "hank") == {"00-double": 0, "00-tv": 0}
    assert graded["results"]["hank"]["status"] == "tampering"
    assert any("labkit.check.close" in t for t in graded["results"]["hank"]["tampering"])
    assert "changes the checks" in (graded["out"] / "feedback" / "hank.md").read_text()


@pytest.mark.parametrize("student", ["ivy", "jack", "liam"])
def test_checks_changed_out_of_sight_change_nothing_the_grader_decides(graded, student):
    # hidden in exec, so the reading of the code misses them: the checks (ivy, jack) or the error
    # reports (liam) are changed in the notebook's process, where no test is decided. The master's
    # test cells run in the grader's process and fail the wrong answers for what they are.
    result = graded["results"][student]
    assert result["status"] == "ok" and not result["tampering"], result
    assert points(graded, student) == {"00-double": 0, "00-tv": 0}
    assert "my_double([1, 2]) differs from the expected value" in message(graded, student, "00-double")
    assert "your total variation differs from the expected value" in message(graded, student, "00-tv")
    log = executed(graded, student)
    if student != "liam":  # the change took effect where it was made: its visible checks went quiet
        assert "differs" not in log, log


def test_reading_solutions_hidden_tests_or_other_submissions_is_refused(graded):
    assert points(graded, "mia") == {"00-double": 0, "00-tv": 0}
    text = executed(graded, "mia")
    reads = json.loads(next(line for line in text.splitlines() if line.startswith("{")))
    assert len(reads) == 5, reads
    # refused by the audit hook (PermissionError), or not there at all inside the boundary
    assert set(reads.values()) <= {"PermissionError", "FileNotFoundError"}, reads


def test_writing_outside_the_sandbox_is_refused(graded):
    import ast

    text = executed(graded, "noah")
    done = ast.literal_eval(next(line for line in text.splitlines() if line.startswith("{")))
    # four files, then the parent and pid 1 (one pid inside a pid namespace, where the parent is 1)
    assert len(done) in (5, 6) and set(done.values()) == {"PermissionError"}, done
    assert not (graded["base"] / "escaped.txt").exists()
    assert "overwritten" not in (graded["out"] / "grades.csv").read_text()
    assert points(graded, "noah") == {"00-double": 0, "00-tv": 0}


def test_an_answer_that_calls_the_reference_earns_nothing_and_says_why(graded):
    # an answer that *is* the reference (my_tv = total_variation): tests/test_check.py
    assert points(graded, "olivia") == {"00-double": 2, "00-tv": 0}
    why = message(graded, "olivia", "00-tv")
    assert "total_variation" in why and "earns no points" in why


def test_feedback_never_shows_the_hidden_tests(graded):
    hidden = assignments.hidden_lines(nbformat.read(graded["master"], as_version=4), minimum=12)
    assert hidden
    for feedback in (graded["out"] / "feedback").glob("*.md"):
        text = feedback.read_text()
        assert not [line for line in hidden if line in text], feedback.name
    # quinn's answer raises the source of the frame that called it: the test runs in the grader's
    # process, so that frame is the submission process's own request loop, and its source reaches the
    # feedback unredacted (nothing of the tests in it)
    why = message(graded, "quinn", "00-tv")
    assert why.startswith("ValueError") and "withheld" not in why and "z_hidden_case" not in why, why
    assert points(graded, "quinn") == {"00-double": 2, "00-tv": 0}


def test_the_class_report_covers_every_submission_and_shows_no_test_code(graded):
    page = (graded["out"] / "report.html").read_text()
    for student, result in graded["results"].items():  # the ones to look at are named
        assert result["status"] == "ok" or html.escape(student) in page, student
    for status in {r["status"] for r in graded["results"].values()}:
        assert html.escape(status) in page, status
    assert "00-double" in page and "00-tv" in page  # the item analysis has a row per exercise
    hidden = assignments.hidden_lines(nbformat.read(graded["master"], as_version=4), minimum=12)
    assert not [line for line in hidden if html.escape(line) in page]
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "the report fetches nothing"


def test_each_kernel_uses_the_threads_the_grader_gives_it(graded):
    # one job per core and one thread each: a kernel at its default (every core) beside another job
    # oversubscribes the cores and runs about four times slower
    assert "threads=1" in executed(graded, "pia")
    assert points(graded, "pia") == points(graded, "alice")


def test_regrading_grades_only_changed_submissions(graded):
    subs, out = graded["subs"], graded["out"]
    fixed = tc.with_answer(
        nbformat.read(subs / "carol.ipynb", as_version=4),
        "00-double-answer",
        "def my_double(x):\n    return x + x",
    )
    nbformat.write(fixed, subs / "carol.ipynb")
    (subs / "zed.ipynb").unlink()
    lines = []
    again = {
        r["student"]: r
        for r in grade(
            subs,
            out,
            masters=graded["base"] / "masters",
            time_limit=TIME_LIMIT,
            memory=MEMORY,
            nice=19,
            log=lines.append,
        )
    }
    assert "1 to grade" in lines[0], lines
    assert not again["carol"].get("cached") and all(r.get("cached") for s, r in again.items() if s != "carol")
    assert points({"results": again}, "carol") == {"00-double": 2, "00-tv": 3}
    assert "zed" not in (out / "grades.csv").read_text() and not (out / "feedback" / "zed.md").exists()


def test_each_written_question_gets_a_page_with_every_answer_and_the_rubric(graded):
    page = (graded["out"] / "questions" / f"{tc.QUESTION}.html").read_text()
    assert (
        "Is doubling a linear map?" in page
        and "shows additivity and homogeneity, or gives the matrix 2I" in page
    )
    assert tc.MODEL_ANSWER.replace("'", "&#x27;") in page  # alice handed in the master's model answer
    assert "&lt;script&gt;alert(&#x27;marked&#x27;)&lt;/script&gt; Yes: it is linear." in page
    assert "<script>" not in page  # a student's answer is shown as text, never run in the marker's browser
    bob = page.split("<td>bob</td>", 1)[1].split("</tr>", 1)[0]
    assert "no answer" in bob, "the untouched student version's placeholder is not an answer"
    assert f'href="{tc.QUESTION}.html"' in (graded["out"] / "questions" / "index.html").read_text()
    template = (graded["out"] / "marks_template.csv").read_text().splitlines()
    assert template[0] == "student,question,points,comment" and f"alice,{tc.QUESTION},," in template


def test_marks_are_merged_without_regrading_and_a_bad_marks_file_changes_nothing(graded, tmp_path):
    subs, out = graded["subs"], graded["out"]
    before = (out / "grades.csv").read_bytes()
    kwargs = dict(masters=graded["base"] / "masters", time_limit=TIME_LIMIT, memory=MEMORY, nice=19)
    bad = tmp_path / "bad.csv"
    bad.write_text(
        f"student,question,points\nalice,{tc.QUESTION},3\nnobody,{tc.QUESTION},1\nbob,00-q-other,1\n"
        f"carol,{tc.QUESTION},x\n"
    )
    with pytest.raises(LabError) as err:
        grade(subs, out, marks=bad, log=lambda *a: None, **kwargs)
    for problem in (
        "from 0 to 2",
        "no submission from student 'nobody'",
        "'00-q-other' is not",
        "'x' points",
    ):
        assert problem in str(err.value)
    assert (out / "grades.csv").read_bytes() == before
    marks = tmp_path / "marks.csv"
    marks.write_text(
        f"student,question,points,comment\nalice,{tc.QUESTION},1.5,no matrix\nbob,{tc.QUESTION},,\n"
    )
    lines = []
    grade(subs, out, marks=marks, log=lines.append, **kwargs)
    assert "0 to grade" in lines[0], lines
    table = {r.split(",")[0]: r.split(",") for r in (out / "grades.csv").read_text().splitlines()}
    assert table["alice"][3:] == ["1.5", "6.5", "0", "ok"] and table["bob"][3:] == ["", "0", "2", "ok"]
    assert f"{tc.QUESTION} | 1.5 / 2 | no matrix" in (out / "feedback" / "alice.md").read_text()
    template = (out / "marks_template.csv").read_text()
    assert f"bob,{tc.QUESTION}" in template and "alice" not in template


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None, reason="the fallback user exists only under root"
)
def test_a_root_grader_without_bubblewrap_refuses_a_folder_its_submissions_cannot_enter(
    graded, tmp_path, monkeypatch
):
    from course.grading import boundary

    monkeypatch.setattr(boundary, "bwrap", lambda: None)
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    out = closed / "grades"
    kwargs = dict(masters=graded["base"] / "masters", time_limit=TIME_LIMIT, memory=MEMORY, nice=19)
    with pytest.raises(LabError) as err:
        grade(graded["subs"], out, log=lambda *a: None, **kwargs)
    named = Path(str(err.value).split(" is closed to other users")[0])
    # the folder named is really closed, on the way to the grades or to what the submission imports
    assert not named.stat().st_mode & stat.S_IXOTH
    assert any(p.resolve().is_relative_to(named) for p in [out, *boundary.readable()])
    assert "apt-get install bubblewrap" in str(err.value) and f"chmod o+x {named}" in str(err.value)
    assert not out.exists(), "nothing is made before the refusal"
