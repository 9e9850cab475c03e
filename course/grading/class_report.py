"""The class report, `OUT/report.html`, written by every grading run (`make grade`, `python -m course grade`).

One self-contained page (plots embedded as PNG data, style inline, no script, nothing fetched) for the
instructor: submissions by status and their run times, late submissions when a late policy applied,
then one section per lab with the score distribution, an item analysis of its exercises (share of
full, partial and zero marks, discrimination, the most frequent failure messages) and the written
answers still to mark, and last the pairs of submissions whose answers are suspiciously alike
(`course.grading.similarity`), which nothing deducts from.

Item discrimination is the corrected item-total correlation: over a lab's gradable submissions, the
Pearson correlation of an exercise's points with the rest of the total (the other exercises' points).
An exercise that the strong students pass and the weak ones fail scores near 1; near 0 it tells
nothing about who understood the lab; below 0 the weak students pass it more often than the strong,
which usually means a check that is broken or that rewards the wrong thing.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from labkit.core import LabError, atomic_write

if TYPE_CHECKING:
    from course.grading.similarity import Pair

NOT_GRADABLE = ("refused", "unreadable", "unknown lab")  # no lab ran: nothing to analyse
TOO_EASY = 0.95  # an exercise more students than this get in full tells little apart
TOP_MESSAGES = 5
MESSAGE_CHARS = 300  # a failure message longer than this is cut on the page (its full text in the tooltip)
CONTEXT_LINES = 2  # unshared lines shown around the shared ones of a similar pair


@dataclass
class Item:
    """One exercise of a lab across the class."""

    id: str
    max: float
    n: int  # gradable submissions
    mean_share: float  # mean of points / max
    full: float  # share of submissions with all the points
    partial: float
    zero: float
    discrimination: float  # corrected item-total correlation; NaN when undefined
    undefined: str = ""  # why the discrimination is undefined
    failures: list[tuple[str, int]] = field(default_factory=list)  # most frequent messages of lost points

    @property
    def flags(self) -> list[str]:
        found = []
        if self.n and self.full > TOO_EASY:
            found.append("too easy")
        if self.n and self.full == 0:
            found.append("nobody")
        if self.discrimination < 0:  # False for NaN
            found.append("negative discrimination")
        return found


@dataclass
class LabSummary:
    """One lab's part of the class: totals, item analysis, written answers still to mark."""

    lab: str
    submissions: int  # all of this lab's results
    gradable: int
    totals: list[float]  # per gradable submission: exercises and marked answers, less any late penalty
    max_total: float
    items: list[Item]
    pending: list[tuple[str, int, float]]  # per question: answers waiting, points waiting


def gradable(results: list[dict]) -> list[dict]:
    """The results whose lab ran (whatever happened in it): those the statistics are computed over."""
    return [r for r in results if r.get("lab") and r.get("status") not in NOT_GRADABLE]


def discrimination(points: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Corrected item-total correlations of a (submissions, exercises) matrix of points, and for each
    exercise why it is undefined (NaN) or "" when defined."""
    points = np.asarray(points, dtype=float)
    n, m = points.shape
    rest = points.sum(axis=1, keepdims=True) - points  # (n, m): the total without each exercise
    x = points - points.mean(axis=0)
    y = rest - rest.mean(axis=0)
    sxx, syy = (x * x).sum(axis=0), (y * y).sum(axis=0)
    r = np.full(m, np.nan)
    why = [""] * m
    for j in range(m):
        if n < 3:
            why[j] = "fewer than 3 gradable submissions"
        elif m < 2:
            why[j] = "the lab's only exercise: there is no rest of the total"
        elif sxx[j] <= 1e-12 * max(1.0, n):
            why[j] = "everyone got the same points"
        elif syy[j] <= 1e-12 * max(1.0, n):
            why[j] = "the rest of the total is the same for everyone"
        else:
            r[j] = float((x[:, j] * y[:, j]).sum() / math.sqrt(sxx[j] * syy[j]))
    return r, why


def _exercise_ids(results: list[dict]) -> list[str]:
    ids: list[str] = []
    for r in results:
        ids += [e["id"] for e in r["exercises"] if e["id"] not in ids]
    return ids


def item_analysis(results: list[dict]) -> list[Item]:
    """The exercises of one lab's results, analysed over its gradable ones (an exercise a result lacks
    counts as 0 points)."""
    rows = gradable(results)
    labs = sorted({r["lab"] for r in rows})
    if len(labs) > 1:
        raise LabError(f"item_analysis takes one lab's results, not {', '.join(labs)}: use lab_summaries.")
    ids = _exercise_ids(rows)
    maxima = {e["id"]: e["max"] for r in rows for e in r["exercises"]}
    found = [{e["id"]: e for e in r["exercises"]} for r in rows]
    points = np.array([[f[i]["points"] if i in f else 0.0 for i in ids] for f in found], dtype=float)
    points = points.reshape(len(rows), len(ids))
    r, why = discrimination(points)
    items = []
    for j, exercise in enumerate(ids):
        top, got = maxima[exercise], points[:, j]
        n = len(got)
        full = got >= top - 1e-9
        zero = (got <= 1e-9) & ~full
        lost = Counter(
            (f[exercise].get("message") or "").strip() or "(no message)"
            for f in found
            if exercise in f and f[exercise]["points"] < top - 1e-9
        )
        missing = sum(1 for f in found if exercise not in f)
        if missing:
            lost["(the exercise is missing from the result)"] += missing
        items.append(
            Item(
                id=exercise,
                max=top,
                n=n,
                mean_share=float(np.mean(got / top)) if n and top > 0 else float("nan"),
                full=float(full.mean()) if n else float("nan"),
                partial=float((~full & ~zero).mean()) if n else float("nan"),
                zero=float(zero.mean()) if n else float("nan"),
                discrimination=float(r[j]),
                undefined=why[j],
                failures=sorted(lost.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_MESSAGES],
            )
        )
    return items


def total(result: dict) -> float:
    """A result's total as the gradebook has it: exercises and marked answers, less any late penalty (never
    below 0)."""
    marked = sum(q["points"] for q in result.get("questions", []) if q.get("points") is not None)
    penalty = result.get("penalty")
    penalty = penalty if isinstance(penalty, (int, float)) else 0.0
    return max(0.0, round(sum(e["points"] for e in result["exercises"]) + marked - penalty, 3))


def lab_summaries(results: list[dict]) -> list[LabSummary]:
    """One summary per lab the results hold, in lab order."""
    summaries = []
    for lab in sorted({r["lab"] for r in results if r.get("lab")}):
        mine = [r for r in results if r.get("lab") == lab]
        rows = gradable(mine)
        maxima = {e["id"]: e["max"] for r in rows for e in [*r["exercises"], *r.get("questions", [])]}
        pending: dict[str, list[float]] = {}  # per question in the lab's order: the points of each wait
        for r in rows:
            for q in r.get("questions", []):
                waiting = pending.setdefault(q["id"], [])
                if q.get("points") is None:
                    waiting.append(q["max"])
        summaries.append(
            LabSummary(
                lab=lab,
                submissions=len(mine),
                gradable=len(rows),
                totals=[total(r) for r in rows],
                max_total=round(sum(maxima.values()), 3),
                items=item_analysis(rows),
                pending=[(q, len(m), round(sum(m), 3)) for q, m in pending.items() if m],
            )
        )
    return summaries


def status_counts(results: list[dict]) -> list[tuple[str, int]]:
    """(status, submissions) with "ok" first, then the most frequent."""
    counts = Counter(r.get("status", "?") for r in results)
    return sorted(counts.items(), key=lambda kv: (kv[0] != "ok", -kv[1], kv[0]))


# ---------------------------------------------------------------- plots


def _png(fig) -> str:
    """An <img> of a matplotlib figure, embedded as base64 PNG data."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="plot" src="data:image/png;base64,{data}">'


def _figure(width=6.0, height=2.6):
    # a Figure without pyplot: no global state, no GUI backend, safe in threads
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _histogram(values: list[float], upper: float, xlabel: str) -> str:
    from matplotlib.ticker import MaxNLocator

    fig, ax = _figure()
    upper = max(upper, max(values, default=0.0), 1e-9)
    ax.hist(values, bins=np.linspace(0, upper, 21), color="#4c72b0", edgecolor="white")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("submissions")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts of submissions, never 2.5
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def _marks_bars(items: list[Item]) -> str:
    fig, ax = _figure(height=0.4 * len(items) + 1.0)
    names = [i.id for i in items][::-1]
    left = np.zeros(len(items))
    for share, colour, label in (("full", "#55a868", "full"), ("partial", "#dd8452", "partial"),
                                 ("zero", "#c44e52", "zero")):  # fmt: skip
        values = np.array([getattr(i, share) for i in items][::-1])
        ax.barh(names, values, left=left, color=colour, label=label)
        left += values
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of gradable submissions")
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1), fontsize="small", ncol=3, frameon=False)
    return _png(fig)


# ---------------------------------------------------------------- page


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _pct(x: float) -> str:
    return "—" if x != x else f"{100 * x:.0f} %"


def _table(header: list[str], rows: list[list[str]], cls: str = "") -> str:
    """A table of cells that are already HTML (escape what goes in)."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _overview(results: list[dict]) -> str:
    parts = ["<h2>Submissions</h2>"]
    rows = []
    for status, count in status_counts(results):
        who = [r["student"] for r in results if r.get("status") == status]
        names = ", ".join(_e(s) for s in who[:12]) + (f" and {len(who) - 12} more" if len(who) > 12 else "")
        rows.append([_e(status), str(count), names if status != "ok" else ""])
    parts.append(_table(["status", "submissions", "students"], rows))
    failed = [r for r in results if r.get("status") != "ok" and r.get("error")]
    if failed:
        parts.append("<details><summary>Why each submission that is not ok is so</summary>")
        rows = [[_e(r["student"]), _e(r["status"]), _e(_cut(r["error"]))] for r in failed]
        parts.append(_table(["student", "status", "why"], rows) + "</details>")
    seconds = [float(r["seconds"]) for r in results if isinstance(r.get("seconds"), (int, float))]
    if seconds:
        parts.append(
            f"<h3>Run time</h3><p>{len(seconds)} submission(s) ran: median {np.median(seconds):.1f} s, "
            f"longest {max(seconds):.1f} s.</p>" + _histogram(seconds, 0.0, "seconds per submission")
        )
    if any("late_by" in r for r in results):
        late = [r for r in results if isinstance(r.get("late_by"), (int, float)) and r["late_by"] > 0]
        taken = sum(r["penalty"] for r in late if isinstance(r.get("penalty"), (int, float)))
        parts.append(
            f"<h3>Late submissions</h3><p>{len(late)} of {len(results)} late; "
            f"{taken:g} point(s) taken in all.</p>"
        )
        if late:
            rows = [
                [
                    _e(r["student"]),
                    f"{r['late_by']:.1f} h",
                    _e(r.get("penalty", "")),
                    _e(r.get("submitted_at", "")),
                ]
                for r in sorted(late, key=lambda r: -r["late_by"])
            ]
            parts.append(_table(["student", "late by", "penalty (points)", "submitted at"], rows))
    return "\n".join(parts)


def _cut(text: str) -> str:
    text = str(text).strip()
    return text if len(text) <= MESSAGE_CHARS else text[:MESSAGE_CHARS] + " …"


def _lab_section(summary: LabSummary) -> str:
    parts = [f'<h2 id="lab-{_e(summary.lab)}">Lab {_e(summary.lab)}</h2>']
    parts.append(
        f"<p>{summary.submissions} submission(s), {summary.gradable} graded; "
        f"maximum {summary.max_total:g} points.</p>"
    )
    if summary.totals:
        totals = np.array(summary.totals)
        parts.append(
            f"<h3>Scores</h3><p>Mean {totals.mean():.2f}, median {np.median(totals):g}, "
            f"lowest {totals.min():g}, highest {totals.max():g} (of {summary.max_total:g}; written answers "
            "count once marked).</p>" + _histogram(summary.totals, summary.max_total, "points")
        )
    if summary.items:
        parts.append("<h3>Exercises</h3>")
        rows = []
        for item in summary.items:
            if item.undefined:
                disc = f"— <small>({_e(item.undefined)})</small>"
            else:
                disc = f"{item.discrimination:.2f}"
            flags = " ".join(f'<span class="flag">{_e(f)}</span>' for f in item.flags)
            rows.append(
                [_e(item.id), f"{item.max:g}", _pct(item.mean_share), _pct(item.full), _pct(item.partial),
                 _pct(item.zero), disc, flags]
            )  # fmt: skip
        header = ["exercise", "max", "mean", "full", "partial", "zero", "discrimination", "flags"]
        parts.append(_table(header, rows, "items"))
        parts.append(
            "<p class=note>Discrimination: correlation of the exercise's points with the rest of the total "
            f"over the graded submissions. Flags: <i>too easy</i> (more than {TOO_EASY:.0%} full marks), "
            "<i>nobody</i> (no full marks), <i>negative discrimination</i> (weaker students do better: "
            "check the exercise's tests).</p>"
        )
        parts.append(_marks_bars(summary.items))
        parts.append("<h3>Most frequent failure messages</h3>")
        for item in summary.items:
            if not item.failures:
                continue
            rows = [[str(count), f'<span title="{_e(m)}">{_e(_cut(m))}</span>'] for m, count in item.failures]
            parts.append(f"<h4>{_e(item.id)}</h4>" + _table(["submissions", "message"], rows, "messages"))
    if summary.pending:
        waiting = sum(n for _, n, _ in summary.pending)
        points = sum(p for _, _, p in summary.pending)
        rows = [[_e(q), str(n), f"{p:g}"] for q, n, p in summary.pending]
        parts.append(
            f"<h3>Written answers to mark</h3><p>{waiting} answer(s) wait, {points:g} point(s) pending "
            '(pages in <a href="questions/index.html">questions/</a>, marks go in with '
            "<code>--marks</code>).</p>" + _table(["question", "answers waiting", "points pending"], rows)
        )
    elif summary.gradable:
        parts.append("<p>No written answer waits to be marked.</p>")
    return "\n".join(parts)


def _side(pair: Pair, side: str) -> str:
    """One side of a similar pair: its shared lines highlighted, with a little context, the rest elided."""
    lines, pieces = pair.lines(side), pair.segments(side)
    keep = set()
    for i, (_, shared) in enumerate(lines):
        if shared:
            keep.update(range(max(0, i - CONTEXT_LINES), min(len(lines), i + CONTEXT_LINES + 1)))
    out, last = [], -1
    for i in sorted(keep):
        if i != last + 1:
            out.append('<span class="gap">…</span>')
        # the line is marked when shared, and within it exactly the characters copydetect matched
        text = "".join(f"<mark>{_e(t)}</mark>" if flag else _e(t) for t, flag in pieces[i])
        out.append(f'<span class="{"shared" if lines[i][1] else "line"}"><b>{i + 1:4d}</b> {text}</span>')
        last = i
    if last != len(lines) - 1:
        out.append('<span class="gap">…</span>')
    return "<pre>" + "".join(out) + "</pre>"


def _similarity_section(pairs: list[Pair] | None, labs: dict[str, str]) -> str:
    parts = ['<h2 id="similarity">Similar submissions</h2>']
    if pairs is None:
        return "\n".join(parts + ["<p>Similarity was not computed in this run.</p>"])
    parts.append(
        "<p>Pairs whose answer cells share code beyond the starter code and the reference solution "
        "(<code>course.grading.similarity</code>, copydetect's fingerprints). A score is the share of one "
        "student's own code found in the other's. <b>Nothing is deducted automatically</b>: read the shared "
        "lines and decide.</p>"
    )
    if not pairs:
        return "\n".join(parts + ["<p>No pair of submissions is similar enough to show.</p>"])
    rows = [
        [_e(p.a), _e(p.b), _e(labs.get(p.a, "")), _pct(p.similarity_a), _pct(p.similarity_b)] for p in pairs
    ]
    parts.append(_table(["student a", "student b", "lab", "of a's code in b", "of b's code in a"], rows))
    for p in pairs:
        parts.append(
            f"<h3>{_e(p.a)} and {_e(p.b)}</h3><p>{_pct(p.similarity_a)} of {_e(p.a)}'s own code is in "
            f"{_e(p.b)}'s, {_pct(p.similarity_b)} of {_e(p.b)}'s in {_e(p.a)}'s.</p>"
            f'<div class="pair"><div><h4>{_e(p.a)}</h4>{_side(p, "a")}</div>'
            f"<div><h4>{_e(p.b)}</h4>{_side(p, 'b')}</div></div>"
        )
    return "\n".join(parts)


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.6em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
.flag { background: #fde2e1; color: #8a1c1c; border-radius: 3px; padding: 0 0.3em; margin-right: 0.3em; }
.note { color: #555; font-size: 0.9em; }
.messages td { white-space: pre-wrap; }
.pair { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 1em; }
.pair pre { background: #fafafa; border: 1px solid #ddd; padding: 0.5em; overflow-x: auto; font-size: 0.8em; }
.pair .shared { background: #fff8d0; display: block; }
.pair mark { background: #ffd84d; }
.pair .line, .pair .gap { display: block; color: #666; }
img { max-width: 100%; display: block; margin: 0.5em 0; }
"""


def render(results: list[dict], pairs: list[Pair] | None = None, *, title: str = "Class report") -> str:
    """The report's HTML for grade()'s `results` and similarity's `pairs` (None: not computed)."""
    summaries = lab_summaries(results)
    labs = {r["student"]: r.get("lab", "") for r in results}
    toc = " · ".join(f'<a href="#lab-{_e(s.lab)}">{_e(s.lab)}</a>' for s in summaries)
    body = [
        f"<h1>{_e(title)}</h1>",
        f"<p>{len(results)} submission(s)" + (f"; labs: {toc}" if toc else "") + ' · <a href="#similarity">'
        "similar submissions</a></p>",
        _overview(results),
        *(_lab_section(s) for s in summaries),
        _similarity_section(pairs, labs),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def write_report(
    out: Path, results: list[dict], pairs: list[Pair] | None = None, *, title: str = "Class report"
) -> Path:
    """Write `out/report.html` atomically for grade()'s `results` and similarity's `pairs`; its path."""
    path = Path(out) / "report.html"
    page = render(results, pairs, title=title)
    with atomic_write(path, encoding="utf-8") as f:
        f.write(page)
    return path
