"""Every exercise against its wrong answers, inside the smoke series' own run of each lab.

`tests/wrong_answers/labNN.py` gives, per exercise, plausible mistakes: edits of the master's answer, what
the exercise's checks must say about each. `insert(nb, lab, folder)` puts a probe cell before each answer
cell that has wrong answers. When the lab reaches it, the probe forks the kernel once per wrong answer: the
copy runs the wrong answer and then the exercise's test cell (visible checks and hidden tests), notes
whether the test failed and what it said in `folder/LAB.jsonl`, and exits. The lab's own process waits and
goes on untouched, so its figures are those of an unprobed run (fork: memory, random number generators
and all). `results(folder, lab)` reads the notes back for tests/test_exercises.py.

Why a fork and not the kernel itself: a wrong answer may change what it was given in place, or draw
random numbers, and the smoke series' figures are checked against thresholds and against a second run.
"""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import nbformat

WRONG = Path(__file__).resolve().parent / "wrong_answers"
TAG = "wrong-answer-probe"

# Runs in the lab's kernel. The child keeps off the kernel's output channels (their threads stay with the
# parent) and off OpenMP's thread pool (not fork-safe once used: PyTorch's DataLoader workers do the same).
PROBE = """# inserted by tests/wrong_answer_probes.py: not part of the lab
def _probe_wrong_answers(cases, test, path):
    import json, os, sys
    import torch
    shell = get_ipython()
    for case in cases:
        pid = os.fork()
        if pid:
            status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
            if status:  # the copy died before it wrote its note (a signal, the memory limit, a failed write)
                with open(path, "a") as f:
                    note = {"exercise": case["exercise"], "why": case["why"], "died": status}
                    f.write(json.dumps(note) + "\\n")
            continue
        note, written = {"exercise": case["exercise"], "why": case["why"]}, False
        try:
            sys.stdout = sys.stderr = open(os.devnull, "w")
            torch.set_num_threads(1)
            try:
                exec(compile(shell.transform_cell(case["source"]), "<wrong answer>", "exec"), shell.user_ns)
            except BaseException as err:
                note["answer_error"] = f"{type(err).__name__}: {err}"
            else:
                try:
                    exec(compile(shell.transform_cell(test), "<test cell>", "exec"), shell.user_ns)
                    note["failed"] = False
                except BaseException as err:
                    note["failed"] = True
                    note["message"] = f"{type(err).__name__}: {err}"
            with open(path, "a") as f:
                f.write(json.dumps(note) + "\\n")
            written = True
        finally:
            os._exit(0 if written else 1)
"""


def wrong_answers(lab: str) -> list[dict]:
    path = WRONG / f"lab{lab[:2]}.py"
    return runpy.run_path(str(path))["WRONG"] if path.is_file() else []


def grade_id(cell) -> str:
    return cell.metadata.get("nbgrader", {}).get("grade_id", "")


def apply(source: str, replace: dict[str, str], what: str) -> str:
    for old, new in replace.items():
        count = source.count(old)
        assert count == 1, f"{what}: {old!r} occurs {count} times in the master's answer, not once"
        source = source.replace(old, new)
    return source


def insert(nb, lab: str, folder: Path):
    """A copy of `nb` with a probe cell before each answer cell that has wrong answers."""
    wrong: dict[str, list[dict]] = {}
    for w in wrong_answers(lab):
        wrong.setdefault(w["exercise"], []).append(w)
    if not wrong:
        return nb
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{lab}.jsonl"
    path.unlink(missing_ok=True)
    tests = {grade_id(c): c.source for c in nb.cells if c.cell_type == "code" and grade_id(c) in wrong}
    cells = []
    for cell in nb.cells:
        exercise = grade_id(cell).removesuffix("-answer")
        if cell.cell_type == "code" and grade_id(cell).endswith("-answer") and exercise in wrong:
            cases = [
                {"exercise": exercise, "why": w["why"], "source": apply(cell.source, w["replace"], w["why"])}
                for w in wrong[exercise]
            ]
            call = f"_probe_wrong_answers({cases!r}, {tests[exercise]!r}, {str(path)!r})"
            cells.append(nbformat.v4.new_code_cell(PROBE + call, metadata={"tags": [TAG]}))
        cells.append(cell)
    probed = nbformat.from_dict(dict(nb))
    probed.cells = cells
    return probed


def results(folder: Path, lab: str) -> list[dict]:
    path = folder / f"{lab}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
