"""The class report (course.grading.class_report): its statistics checked against pandas and scipy on a
hand-made class, its HTML (escaped, self-contained), and the page in Chromium."""

from __future__ import annotations

import math
import re
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from course.grading import class_report, similarity
from labkit.core import LabError

LAB = "01_data_prep"
MAXIMA = {"01-verify": 2.0, "01-split": 3.0, "01-stats": 2.0, "01-easy": 1.0, "01-hard": 2.0}
# points per student and exercise; messages below for the points lost
POINTS = {
    "ann": [2, 3, 2, 1, 0],
    "ben": [2, 1.5, 2, 1, 0],
    "cat": [0, 0, 1, 1, 0],
    "dan": [2, 3, 0, 1, 0],
    "eli": [1, 0, 2, 1, 0],
    "<script>alert(1)</script>": [0, 3, 0, 1, 0],
}
MESSAGES = {
    "01-verify": "unreadable files missed: 3 of 5",
    "01-split": "  the splits are not stratified  ",
    "01-stats": "mean is off by 0.5",
    "01-hard": "wrong shape <b>(3,)</b>",
}


def result(student, points, status="ok", **extra):
    exercises = [
        {
            "id": i,
            "points": float(p),
            "max": m,
            "message": "" if p >= m else MESSAGES.get(i, ""),
        }
        for (i, m), p in zip(MAXIMA.items(), points)
    ]
    questions = [
        {"id": "01-q-leakage", "max": 2.0, "points": extra.pop("marked", None), "comment": "", "text": "..."},
        {"id": "01-q-augment", "max": 2.0, "points": None, "comment": "", "text": "..."},
    ]
    return {
        "student": student,
        "lab": LAB,
        "key": "k",
        "status": status,
        "error": extra.pop("error", ""),
        "isolation": "",
        "tampering": [],
        "suspicious": [],
        "exercises": exercises,
        "questions": questions,
        "seconds": extra.pop("seconds", 30.0),
        "cell_errors": [],
        "cached": False,
        **extra,
    }


def lost(student, status, why):
    return {"student": student, "lab": "", "key": "", "status": status, "error": why, "isolation": "",
            "tampering": [], "suspicious": [], "exercises": [], "questions": []}  # fmt: skip


@pytest.fixture
def results():
    made = [
        result(s, p, seconds=20.0 + i, marked=1.5 if s == "ann" else None)
        for i, (s, p) in enumerate(POINTS.items())
    ]
    timed_out = result("fay", [0, 0, 0, 0, 0], status="time limit", error="ran past 600 s", seconds=600.0)
    for e in timed_out["exercises"]:
        e["message"] = "the notebook did not finish within the time limit"
    made.append(timed_out)
    made.append(lost("gil", "refused", "not a notebook: a symlink"))
    made.append(lost("hoa", "unreadable", "the notebook cannot be read: bad JSON"))
    return made


def frame(results):
    """The class's exercise points as pandas sees them: gradable submissions only."""
    rows = {r["student"]: {e["id"]: e["points"] for e in r["exercises"]} for r in results if r["lab"]}
    return pd.DataFrame.from_dict(rows, orient="index")[list(MAXIMA)]


def test_item_analysis_matches_pandas_and_scipy(results):
    items = {i.id: i for i in class_report.item_analysis(results)}
    df = frame(results)
    assert list(items) == list(MAXIMA) and len(df) == 7  # the refused and the unreadable are not counted
    for exercise, top in MAXIMA.items():
        item, col = items[exercise], df[exercise]
        assert item.n == 7 and item.max == top
        assert item.mean_share == pytest.approx((col / top).mean())
        assert item.full == pytest.approx((col == top).mean())
        assert item.zero == pytest.approx((col == 0).mean())
        assert item.partial == pytest.approx(((col > 0) & (col < top)).mean())
        rest = df.drop(columns=exercise).sum(axis=1)
        if col.nunique() > 1:
            assert item.discrimination == pytest.approx(stats.pearsonr(col, rest).statistic)
            assert item.discrimination == pytest.approx(col.corr(rest))
            assert item.undefined == ""


def test_discrimination_is_undefined_without_variance_and_says_why(results):
    items = {i.id: i for i in class_report.item_analysis(results)}
    assert math.isnan(items["01-hard"].discrimination)
    assert items["01-hard"].undefined == "everyone got the same points"
    r, why = class_report.discrimination(np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 0.0]]))
    assert math.isnan(r[0]) and why[0] == "the rest of the total is the same for everyone"
    r, why = class_report.discrimination(np.array([[1.0], [0.0], [1.0]]))
    assert math.isnan(r[0]) and "only exercise" in why[0]
    r, why = class_report.discrimination(np.array([[1.0, 2.0], [0.0, 1.0]]))
    assert math.isnan(r[0]) and why[0] == "fewer than 3 gradable submissions"


def test_flags_and_failure_messages(results):
    items = {i.id: i for i in class_report.item_analysis(results)}
    assert items["01-hard"].flags == ["nobody"]
    assert items["01-easy"].full == pytest.approx(6 / 7) and items["01-easy"].flags == []
    everyone = [result(s, [2, 3, 2, 1, 2]) for s in "pqrstuvwxyz"] + [result("a", [2, 3, 2, 0, 2])]
    assert "too easy" in {i.id: i for i in class_report.item_analysis(everyone)}["01-verify"].flags
    # ann, ben, dan strong on 01-verify; cat, eli, <script> weak: and 01-split goes the other way round
    assert items["01-stats"].discrimination > 0
    negative = [
        result(s, p) for s, p in [("a", [2, 0, 2, 1, 0]), ("b", [0, 3, 0, 1, 0]), ("c", [2, 0, 2, 1, 1])]
    ]
    assert (
        "negative discrimination" in {i.id: i for i in class_report.item_analysis(negative)}["01-split"].flags
    )
    # cat, eli and fay lost 01-split: two with the (stripped) check message, one ran out of time
    assert items["01-split"].failures == [
        ("the splits are not stratified", 3),
        ("the notebook did not finish within the time limit", 1),
    ]
    assert items["01-easy"].failures == [("the notebook did not finish within the time limit", 1)]


def test_lab_summary_totals_and_pending(results):
    (summary,) = class_report.lab_summaries(results)
    assert (summary.lab, summary.submissions, summary.gradable, summary.max_total) == (LAB, 7, 7, 14.0)
    assert summary.totals[0] == 2 + 3 + 2 + 1 + 0 + 1.5  # ann: her marked answer counts
    assert summary.totals == pytest.approx(
        [*(frame(results).sum(axis=1)[:1] + 1.5), *frame(results).sum(axis=1)[1:]]
    )
    # ann's 01-q-leakage is marked; everything else waits
    assert summary.pending == [("01-q-leakage", 6, 12.0), ("01-q-augment", 7, 14.0)]
    assert class_report.status_counts(results) == [
        ("ok", 6),
        ("refused", 1),
        ("time limit", 1),
        ("unreadable", 1),
    ]


def test_a_late_penalty_lowers_the_total():
    late = result("ann", [2, 3, 2, 1, 0], late_by=26.5, penalty=0.8, submitted_at="2027-01-22T02:29:00+01:00")
    assert class_report.total(late) == pytest.approx(7.2)
    assert class_report.total({**late, "penalty": 20.0}) == 0.0  # as in grades.csv: never negative


def test_several_labs_get_a_section_each(results):
    other = result("ann", [1, 1, 1, 1, 1])
    other["lab"] = "02_naive_cnn"
    for e in other["exercises"]:
        e["id"] = e["id"].replace("01-", "02-")
    summaries = class_report.lab_summaries([*results, other])
    assert [s.lab for s in summaries] == [LAB, "02_naive_cnn"]
    assert [i.id for i in summaries[1].items] == [i.replace("01-", "02-") for i in MAXIMA]
    with pytest.raises(LabError, match="not 01_data_prep, 02_naive_cnn: use lab_summaries"):
        class_report.item_analysis([*results, other])
    page = class_report.render([*results, other])
    assert 'id="lab-01_data_prep"' in page and 'id="lab-02_naive_cnn"' in page


@pytest.fixture
def pairs():
    """A flagged pair from two notebooks whose answer cells share a helper beyond the reference."""
    helper = "\n".join(f"    total_{i} = sum(v * {i} for v in values if v > {i})" for i in range(8))
    nbs = {}
    for name, extra in (("ann", ""), ("<script>alert(1)</script>", "\nprint('<b>mine</b>')")):
        cell = nbformat.v4.new_code_cell(f"def helper(values):\n{helper}\n    return values{extra}")
        cell.metadata["nbgrader"] = {"solution": True, "grade_id": "01-verify-answer"}
        nbs[name] = nbformat.v4.new_notebook(cells=[cell])
    found = similarity.similar_pairs(nbs, [], min_run=0)  # a short copy: the page, not the rule
    assert len(found) == 1
    return found


def test_html_escapes_student_text_and_embeds_every_image(tmp_path, results, pairs):
    path = class_report.write_report(tmp_path, results, pairs, title="Lab 01 <term 2>")
    assert path == tmp_path / "report.html"
    page = path.read_text()
    assert "<script" not in page  # the student named <script>alert(1)</script>, and no script of ours
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "wrong shape &lt;b&gt;(3,)&lt;/b&gt;" in page and "<b>(3,)</b>" not in page
    assert "print(&#x27;&lt;b&gt;mine&lt;/b&gt;&#x27;)" in page
    assert "<title>Lab 01 &lt;term 2&gt;</title>" in page
    sources = re.findall(r'<img[^>]*\bsrc="([^"]*)"', page)
    assert len(sources) == 3  # run times, scores, marks per exercise
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r'(href|src)="(https?:)?//', page)  # nothing fetched from anywhere
    assert "Nothing is deducted automatically" in page
    assert "— <small>(everyone got the same points)</small>" in page
    assert not list(tmp_path.glob(".report.html.*"))  # the atomic write left no temporary


def test_the_report_says_when_similarity_was_not_computed_or_found_nothing(results):
    assert "Similarity was not computed" in class_report.render(results)
    assert "No pair of submissions is similar enough" in class_report.render(results, [])


def test_late_submissions_are_listed_when_present(results):
    assert "Late submissions" not in class_report.render(results)  # no late policy applied: no section
    results[0].update(late_by=26.5, penalty=0.8, submitted_at="2027-01-22")
    for r in results[1:]:
        r.update(late_by=0.0, penalty=0.0)
    page = class_report.render(results)
    assert "1 of 9 late; 0.8 point(s) taken" in page and "26.5 h" in page


def test_report_renders_in_chromium(tmp_path, results, pairs):
    chromium = Path("/usr/bin/chromium")
    if not chromium.is_file():
        pytest.skip("no Chromium at /usr/bin/chromium: apt-get install chromium to run this check")
    sync_api = pytest.importorskip("playwright.sync_api")
    from browser.conftest import CHROMIUM_ARGS

    path = class_report.write_report(tmp_path, results, pairs)
    errors, failed = [], []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("requestfailed", lambda r: failed.append(r.url))
            page.goto(path.as_uri(), wait_until="load")
            assert page.title() == "Class report"
            assert page.locator("table.items tbody tr").count() == len(MAXIMA)
            widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.complete && i.naturalWidth)")
            assert len(widths) == 3 and all(w > 0 for w in widths), widths
            assert page.locator(".pair .shared").count() > 0
        finally:
            browser.close()
    assert errors == [] and failed == []
