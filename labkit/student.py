"""Student copies of the notebooks: every `### BEGIN SOLUTION` … `### END SOLUTION` block becomes
a placeholder, outputs are cleared. `python -m labkit.student notebooks student` (or `make student`)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat

_SOLUTION = re.compile(r"^([ \t]*)### BEGIN SOLUTION\n.*?^[ \t]*### END SOLUTION[ \t]*$", re.S | re.M)


def strip_solutions(source: str) -> str:
    """Replace each solution block by `# YOUR CODE HERE` and a `NotImplementedError` at its indentation."""
    return _SOLUTION.sub(lambda m: f"{m[1]}# YOUR CODE HERE\n{m[1]}raise NotImplementedError()", source)


def make_student_copies(src: Path, dst: Path) -> list[Path]:
    dst.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(Path(src).glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.source = strip_solutions(cell.source)
                cell.outputs, cell.execution_count = [], None
        target = dst / path.name
        nbformat.write(nb, target)
        written.append(target)
    return written


if __name__ == "__main__":
    src, dst = (Path(a) for a in (sys.argv[1:3] if len(sys.argv) >= 3 else ("notebooks", "student")))
    for p in make_student_copies(src, dst):
        print("wrote", p)
