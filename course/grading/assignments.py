"""The masters as nbgrader assignments: course folders, gradebooks, student versions.

Each master notebook in `notebooks/` is an nbgrader source notebook: its answer cells carry nbgrader's
"solution" metadata and `### BEGIN SOLUTION` / `### END SOLUTION` markers, its test cells the
"grade" metadata with their points, the visible checks, and the instructor's hidden tests between
`### BEGIN HIDDEN TESTS` / `### END HIDDEN TESTS`; the setup cells are read-only ("locked"), so
grading restores them. `nbgrader generate_assignment` (`prepare`) turns a master into

* the student version (`release/<lab>/<lab>.ipynb`): answers replaced by a `NotImplementedError`
  placeholder, hidden tests removed, outputs cleared;
* the gradebook (`gradebook.db`): every test cell with its points, and the master's source of the
  cells that grading puts back (test cells with their hidden tests, read-only cells).

`make student` copies only the student versions out (`make_student_copies`): nothing beside them
reveals an answer.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from course.grading.questions import Question, questions
from labkit.core import LabError

STUDENT_ID = "student"  # each submission is graded in a course folder of its own, as this one student


@contextlib.contextmanager
def nbgrader_env() -> Iterator[None]:
    """nbgrader runs `alembic` by name and warns through SQLAlchemy on every gradebook it opens."""
    bindir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if bindir not in path.split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + path
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def config(root: Path, **extra):
    """An nbgrader configuration for a course folder `root` with its gradebook inside it."""
    from traitlets.config import Config

    c = Config()
    c.CourseDirectory.root = str(root)
    c.CourseDirectory.db_url = f"sqlite:///{root / 'gradebook.db'}"
    c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__"]
    for key, value in extra.items():
        section, _, name = key.partition("__")
        setattr(getattr(c, section), name, value)
    return c


def api(root: Path, cfg=None):
    from nbgrader.apps import NbGraderAPI

    return NbGraderAPI(config=cfg or config(root))


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class Exercise:
    """One graded exercise: its test cell's grade id and points."""

    id: str
    points: float


@dataclass
class Lab:
    """A master prepared for grading: its course folder, gradebook and student version."""

    name: str
    master: Path
    root: Path
    sha: str
    exercises: list[Exercise]
    hidden_lines: list[str]
    replaced: list[str]  # grade ids of the cells grading puts back from the master
    sealed: list[str]  # grade ids of the test cells with hidden tests
    questions: list[Question] = field(default_factory=list)  # written answers, marked by hand

    @property
    def gradebook(self) -> Path:
        return self.root / "gradebook.db"

    @property
    def release(self) -> Path:
        return self.root / "release" / self.name / f"{self.name}.ipynb"

    @property
    def max_points(self) -> float:
        return sum(e.points for e in self.exercises)


def exercises(nb) -> list[Exercise]:
    """The graded test cells of a notebook, in order."""
    found = []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and not meta.get("solution"):
            found.append(Exercise(meta["grade_id"], float(meta.get("points", 0))))
    return found


def hidden_lines(nb, minimum: int = 12) -> list[str]:
    """Lines of the hidden tests long enough to recognise if a message quotes them."""
    lines = []
    for cell in nb.cells:
        inside = False
        for line in cell.source.splitlines():
            if "BEGIN HIDDEN TESTS" in line:
                inside = True
            elif "END HIDDEN TESTS" in line:
                inside = False
            elif inside and len(line.strip()) >= minimum:
                lines.append(line.strip())
    return lines


def sealed(nb) -> list[str]:
    """Grade ids of the test cells that carry hidden tests: they must report having passed them."""
    return [
        c.metadata["nbgrader"]["grade_id"]
        for c in nb.cells
        if c.metadata.get("nbgrader", {}).get("grade") and "BEGIN HIDDEN TESTS" in c.source
    ]


def replaced(nb) -> list[str]:
    """Grade ids of the cells grading replaces by the master's (test cells and read-only cells)."""
    return sorted(
        c.metadata["nbgrader"]["grade_id"]
        for c in nb.cells
        if c.metadata.get("nbgrader", {}).get("grade_id")
        and (c.metadata["nbgrader"].get("locked") or c.metadata["nbgrader"].get("grade"))
        and not c.metadata["nbgrader"].get("solution")
    )


def grade_ids(nb) -> set[str]:
    return {
        c.metadata["nbgrader"]["grade_id"] for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id")
    }


def _log_tail(result: dict) -> str:
    text = (result.get("error") or "") + "\n" + (result.get("log") or "")
    return "\n".join(text.strip().splitlines()[-25:])


def prepare(master: Path, root: Path) -> Lab:
    """`nbgrader generate_assignment` for `master` in course folder `root` (reused while the master is
    unchanged): the gradebook and the student version."""
    master = Path(master).resolve()
    name, sha = master.stem, sha256(master)
    nb = nbformat.read(master, as_version=4)
    lab = Lab(
        name,
        master,
        Path(root),
        sha,
        exercises(nb),
        hidden_lines(nb),
        replaced(nb),
        sealed(nb),
        questions(nb),
    )
    if not lab.exercises:
        raise LabError(f"{master.name} has no graded test cells (nbgrader 'grade' metadata with points).")
    stamp = lab.root / "master.sha256"
    if stamp.is_file() and stamp.read_text() == sha and lab.gradebook.is_file() and lab.release.is_file():
        return lab
    shutil.rmtree(lab.root, ignore_errors=True)
    source = lab.root / "source" / name
    source.mkdir(parents=True)
    shutil.copyfile(master, source / master.name)
    with nbgrader_env():
        result = api(lab.root).generate_assignment(name, force=True, create=True)
    if not result["success"]:
        raise LabError(f"nbgrader generate_assignment failed for {master.name}:\n{_log_tail(result)}")
    shutil.rmtree(source.parent)  # the master's copy is not needed to grade, and must not sit beside anything
    stamp.write_text(sha)
    return lab


def make_student_copies(src: Path, dst: Path, names: list[str] | None = None) -> list[Path]:
    """Student versions of the masters in `src` (all `NN_*.ipynb`, or `names`) written to `dst`: only
    the notebooks, generated by nbgrader (no solutions, no hidden tests, no outputs)."""
    masters = sorted(Path(src).glob("[0-9][0-9]_*.ipynb"))
    if names:
        masters = [m for m in masters if m.stem in names or m.stem[:2] in names]
    if not masters:
        raise LabError(f"no lab notebooks found in {src}.")
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory(prefix="labkit-student-") as tmp:
        for master in masters:
            lab = prepare(master, Path(tmp) / master.stem)
            target = dst / master.name
            shutil.copyfile(lab.release, target)
            written.append(target)
    return written
