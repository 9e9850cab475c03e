"""Every lab's Questions have answers in instructors/answers/, quoted as the lab asks them; the
notebooks (and so the student copies) carry no answers."""

import re
from pathlib import Path

import nbformat
import pytest

from course import run as runner

ANSWERS = Path(__file__).resolve().parents[1] / "instructors" / "answers"


def _flat(text: str) -> str:
    return " ".join(text.split())


def questions(path: Path) -> dict[int, str]:
    """{number: question} from the lab's "## Questions" cell (none: {})."""
    nb = nbformat.read(path, as_version=4)
    cell = next((c for c in nb.cells if c.cell_type == "markdown" and "## Questions" in c.source), None)
    if cell is None:
        return {}
    items = re.split(r"(?m)^(\d+)\. ", cell.source.split("## Questions", 1)[1])[1:]
    return {int(n): _flat(body) for n, body in zip(items[::2], items[1::2])}


def answers(path: Path) -> dict[int, tuple[str, str]]:
    """{number: (quoted question, answer)} from an answers file."""
    found = {}
    for block in re.split(r"(?m)^## Question ", path.read_text())[1:]:
        number, _, body = block.partition("\n")
        quote = [ln[1:] for ln in body.strip().splitlines() if ln.startswith(">")]
        rest = "\n".join(ln for ln in body.strip().splitlines() if not ln.startswith(">"))
        found[int(number)] = (_flat(" ".join(quote)), _flat(rest))
    return found


@pytest.mark.parametrize("path", runner.available(), ids=[p.stem for p in runner.available()])
def test_every_question_has_its_answer_for_instructors(path):
    asked, file = questions(path), ANSWERS / f"{path.stem}.md"
    if not asked:
        assert not file.exists(), f"{file.name} answers questions {path.name} does not ask"
        return
    assert file.is_file(), f"the answers to {path.name}'s Questions belong in {file}"
    given = answers(file)
    assert sorted(given) == sorted(asked), (
        f"{file.name} answers {sorted(given)}, the lab asks {sorted(asked)}"
    )
    for number, question in asked.items():
        quoted, answer = given[number]
        assert quoted == question, f"{file.name}, question {number} changed in the lab: update its answer"
        assert len(answer) > 40, f"{file.name}, question {number} has no real answer"


@pytest.mark.parametrize("path", runner.available(), ids=[p.stem for p in runner.available()])
def test_the_lab_itself_carries_no_answers(path):
    text = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown")
    assert not re.search(r"(?im)^\W*answers?\b.*:", text), f"{path.name} shows answers to students"
