"""The written answers: manually graded questions, their rubrics, the instructor's marks, and one page per
question with every student's answer side by side.

A lab asks a written question in an nbgrader "manually graded answer" cell (a markdown cell with
`grade` and `solution` set, and points); the student version has "YOUR ANSWER HERE" in it. The rubric
of each question sits in `instructors/rubrics/<lab>.md`:

    ## 05-q-shortname (3 points)

    > The question as the lab asks it.

    - 1: an element a good answer contains
    - 2: another

Grading leaves these questions' points empty until the instructor marks them, in a CSV with the
columns `student,question,points` and an optional `comment`, which `grade --marks FILE` merges
(`OUT/marks_template.csv` lists what is left to mark). `OUT/questions/<question>.html` shows one
question's rubric and every student's answer to it, which is how a class's answers are marked.
"""

from __future__ import annotations

import csv
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

from labkit.core import LabError, atomic_write

MAX_ANSWER_CHARS = 20_000  # a page shows this much of one answer; the rest is cut, saying so
UNANSWERED = "YOUR ANSWER HERE"


@dataclass
class Question:
    """One manually graded answer cell of a master: its grade id and points."""

    id: str
    points: float


@dataclass
class Rubric:
    """A question's rubric: the question as asked and the elements of a good answer with their points."""

    id: str
    points: float
    question: str
    elements: list[tuple[float, str]] = field(default_factory=list)


def is_question(cell) -> bool:
    meta = cell.metadata.get("nbgrader", {})
    return cell.cell_type == "markdown" and bool(meta.get("grade")) and bool(meta.get("solution"))


def questions(nb) -> list[Question]:
    """The manually graded answer cells of a master, in order."""
    return [
        Question(c.metadata["nbgrader"]["grade_id"], float(c.metadata["nbgrader"].get("points", 0)))
        for c in nb.cells
        if is_question(c)
    ]


def answers(nb, ids: list[str]) -> dict[str, str]:
    """{question id: the submission's answer text} (the first cell with that id; "" if none or untouched)."""
    found: dict[str, str] = {}
    for cell in nb.cells:
        qid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if qid in ids and qid not in found and isinstance(cell.get("source"), str):
            text = cell.source.strip()
            found[qid] = "" if text == UNANSWERED else text
    return {qid: found.get(qid, "") for qid in ids}


_HEADING = re.compile(r"^## (\S+) \(([\d.]+) points?\)\s*$", re.M)
_ELEMENT = re.compile(r"^- ([\d.]+): (.+)$")


def read_rubrics(path: Path) -> dict[str, Rubric]:
    """The rubrics of one lab's file (see the module docstring); {} when there is no file."""
    path = Path(path)
    if not path.is_file():
        return {}
    text = path.read_text()
    found = {}
    heads = list(_HEADING.finditer(text))
    for head, nxt in zip(heads, [*heads[1:], None]):
        body = text[head.end() : nxt.start() if nxt else len(text)]
        lines = body.strip().splitlines()
        question = " ".join(ln[1:].strip() for ln in lines if ln.startswith(">"))
        elements: list[tuple[float, str]] = []
        for ln in lines:
            match = _ELEMENT.match(ln.strip())
            if match:
                elements.append((float(match[1]), match[2].strip()))
            elif ln.startswith("  ") and elements:  # a wrapped element
                elements[-1] = (elements[-1][0], elements[-1][1] + " " + ln.strip())
        found[head[1]] = Rubric(head[1], float(head[2]), question, elements)
    return found


def read_marks(path: Path, maxima: dict[str, float], students: set[str]) -> dict[tuple[str, str], dict]:
    """{(student, question): {"points", "comment"}} from a marks CSV, refusing anything it cannot apply:
    an unknown student or question, points that are not a number in [0, max], a pair marked twice."""
    path = Path(path)
    if not path.is_file():
        raise LabError(f"--marks {path}: no such file (columns: student,question,points[,comment]).")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = {"student", "question", "points"} - set(reader.fieldnames or [])
        if missing:
            raise LabError(
                f"--marks {path}: the header lacks {', '.join(sorted(missing))} "
                "(columns: student,question,points[,comment])."
            )
        rows = list(reader)
    marks, problems = {}, []
    for line, row in enumerate(rows, start=2):
        student, qid = (row.get("student") or "").strip(), (row.get("question") or "").strip()
        text = (row.get("points") or "").strip()
        if not text:
            continue  # a template row not marked yet
        if student not in students:
            problems.append(f"line {line}: no submission from student {student!r}")
        elif qid not in maxima:
            problems.append(f"line {line}: {qid!r} is not a written question of the graded labs")
        elif (student, qid) in marks:
            problems.append(f"line {line}: {student} / {qid} is marked twice")
        else:
            try:
                points = float(text)
            except ValueError:
                points = float("nan")
            if not 0 <= points <= maxima[qid]:
                problems.append(
                    f"line {line}: {text!r} points for {qid}: give a number from 0 to {maxima[qid]:g}"
                )
            else:
                marks[(student, qid)] = {"points": points, "comment": (row.get("comment") or "").strip()}
    if problems:
        raise LabError(
            f"--marks {path}: " + "; ".join(problems[:10]) + ("; ..." if len(problems) > 10 else "")
        )
    return marks


def write_template(path: Path, results: list[dict]) -> None:
    """The marks CSV's rows still to fill: one per (student, question) without points."""
    with atomic_write(path, newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["student", "question", "points", "comment"])
        for r in results:
            for q in r.get("questions", []):
                if q["points"] is None:
                    writer.writerow([r["student"], q["id"], "", ""])


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 15px/1.5 system-ui, sans-serif; max-width: 70rem; margin: 2rem auto; padding: 0 1rem; }}
table {{ border-collapse: collapse; width: 100%; }}
td, th {{ border-top: 1px solid #8884; padding: .5rem; vertical-align: top; text-align: left; }}
pre {{ white-space: pre-wrap; margin: 0; font: inherit; }}
.empty {{ color: #888; font-style: italic; }}
</style></head><body>
{body}
</body></html>
"""


def _answer_html(text: str) -> str:
    if not text:
        return '<span class="empty">no answer</span>'
    cut = text[:MAX_ANSWER_CHARS]
    more = (
        f" <em>(cut: {len(text) - MAX_ANSWER_CHARS:,} more characters)</em>" if len(text) > len(cut) else ""
    )
    return f"<pre>{html.escape(cut)}</pre>{more}"


def write_pages(folder: Path, results: list[dict], rubrics: dict[str, Rubric]) -> None:
    """`folder/<question>.html` for every question some result has, and `folder/index.html`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    by_question: dict[str, list[tuple[str, dict]]] = {}
    for r in results:
        for q in r.get("questions", []):
            by_question.setdefault(q["id"], []).append((r["student"], q))
    for stale in folder.glob("*.html"):
        if stale.stem not in by_question and stale.name != "index.html":
            stale.unlink()
    rows = []
    for qid, entries in sorted(by_question.items()):
        rubric = rubrics.get(qid)
        head = [f"<h1>{html.escape(qid)}</h1>", '<p><a href="index.html">all questions</a></p>']
        if rubric:
            head.append(f"<blockquote>{html.escape(rubric.question)}</blockquote>")
            head.append("<h2>Rubric</h2><ul>")
            head += [f"<li><b>{p:g}</b>: {html.escape(text)}</li>" for p, text in rubric.elements]
            head.append("</ul>")
        table = ["<h2>Answers</h2><table><tr><th>student</th><th>answer</th><th>points</th></tr>"]
        for student, q in entries:
            points = "" if q["points"] is None else f"{q['points']:g}"
            comment = f"<br><small>{html.escape(q.get('comment') or '')}</small>" if q.get("comment") else ""
            table.append(
                f"<tr><td>{html.escape(student)}</td><td>{_answer_html(q['text'])}</td>"
                f"<td>{points} / {q['max']:g}{comment}</td></tr>"
            )
        table.append("</table>")
        page = _PAGE.format(title=html.escape(qid), body="\n".join(head + table))
        with atomic_write(folder / f"{qid}.html") as f:
            f.write(page)
        answered = sum(1 for _, q in entries if q["text"])
        marked = sum(1 for _, q in entries if q["points"] is not None)
        rows.append(
            f'<tr><td><a href="{html.escape(qid)}.html">{html.escape(qid)}</a></td>'
            f"<td>{answered} / {len(entries)}</td><td>{marked} / {len(entries)}</td></tr>"
        )
    index = "<h1>Written answers</h1><table><tr><th>question</th><th>answered</th><th>marked</th></tr>"
    with atomic_write(folder / "index.html") as f:
        f.write(_PAGE.format(title="Written answers", body=index + "\n".join(rows) + "</table>"))
