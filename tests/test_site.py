"""The course site (course/site.py) built from a tiny fake run: two executed notebooks written here, with
an exercise, hidden tests, a written question, a figure, an explorer and a paper, and no kernel run.
The browser test (tests/browser/test_course_site.py) builds it from a real smoke run and opens it in
Chromium."""

from __future__ import annotations

import base64
import html
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import numpy as np
import pytest
from PIL import Image

from course import colab, site
from labkit.core import LabError

pytestmark = pytest.mark.filterwarnings("ignore:.*Check CHANGES for Sphinx API")  # the theme's, on Sphinx 9

MASTER_LINE = "return x * 42  # the master's own answer"
HIDDEN_LINE = "assert answer(3) == 126, 'a hidden input'"
HIDDEN_OUTPUT = "answer(3) gives 126 on a hidden input"
MODEL_ANSWER = "Squares grow fastest because the area is quadratic"
CITATION = "A. Author, B. Writer, *A very fine paper on convolutions*, ICML 2015"
LABS = ["01_first", "07_gradcam"]


def _grader(grade_id: str, **flags) -> dict:
    flags = {"grade": False, "solution": False, "locked": False, **flags}
    return {"nbgrader": {"grade_id": grade_id, "schema_version": 3, **flags}}


def _png(path: Path, colour: str) -> dict:
    Image.new("RGB", (40, 30), colour).save(path)
    return {"image/png": base64.b64encode(path.read_bytes()).decode(), "text/plain": "<Figure>"}


def _executed(name: str, run: Path) -> nbformat.NotebookNode:
    """An executed master as the runner leaves it: outputs, papermill's injected cell, widget state."""
    new_md, new_code, output = (
        nbformat.v4.new_markdown_cell,
        nbformat.v4.new_code_cell,
        nbformat.v4.new_output,
    )
    prefix = name[:2]
    figures = run / "figures" / name
    figures.mkdir(parents=True)
    figure = _png(figures / "result.png", "navy")
    cells = [
        new_md(
            f"# Lab {prefix} — The {name[3:]} lab\n\n{colab.badge(name)}\n\nSome prose about Grad-CAM, "
            f"with math $y = w^\\top x$ and a paper: {CITATION}."
        ),
        new_code(colab.setup_cell_source()),
        new_code('profile = "full"  # the lab\'s parameter', metadata={"tags": ["parameters"]}),
        new_code(f'profile = "smoke"\nout_dir = "{run}"', metadata={"tags": ["injected-parameters"]}),
        new_code(
            f"def answer(x):\n    ### BEGIN SOLUTION\n    {MASTER_LINE}\n    ### END SOLUTION",
            metadata=_grader(f"{prefix}-answer", solution=True),
            outputs=[output("stream", name="stdout", text="the master's answer printed this\n")],
        ),
        new_code(
            f'assert answer(1) == 42\nprint("✓ {prefix}-ex: check passed.")\n'
            f"### BEGIN HIDDEN TESTS\n{HIDDEN_LINE}\n### END HIDDEN TESTS",
            metadata=_grader(f"{prefix}-ex", grade=True, locked=True, points=2),
            outputs=[
                output("stream", name="stdout", text=f"✓ {prefix}-ex: check passed.\n✓ {HIDDEN_OUTPUT}\n"),
                output("stream", name="stdout", text=f"✓ {prefix}-ex: hidden tests passed.\n"),
            ],
        ),
        new_md("**Question (2 points).** Why do squares grow fastest?"),
        new_md(MODEL_ANSWER + ".", metadata=_grader(f"{prefix}-q", grade=True, solution=True, points=2)),
        new_code("plot()", outputs=[output("display_data", data=figure)]),
        new_code(
            "view = labkit.widgets.explorer(render, layers, images)\nview",
            outputs=[output("display_data", data=figure)],
        ),
    ]
    for i, cell in enumerate(cells):
        cell.id = f"{prefix}-cell-{i}"
        if cell.cell_type == "code":
            cell.execution_count = i
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata.update(
        kernelspec={"name": "python3", "display_name": "Python 3", "language": "python"},
        language_info={"name": "python"},
        papermill={"parameters": {"profile": "smoke"}},
        widgets={"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2}},
    )
    return nb


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("run")
    (run / "notebooks").mkdir()
    for name in LABS:
        nbformat.write(_executed(name, run), run / "notebooks" / f"{name}.ipynb")
    (run / "summary.json").write_text(json.dumps({"profile": "smoke", "notebooks": []}))
    return run


@pytest.fixture(scope="module")
def student(run, tmp_path_factory) -> Path:
    return site.build(run, tmp_path_factory.mktemp("site") / "student").parent


@pytest.fixture(scope="module")
def instructor(run, tmp_path_factory) -> Path:
    return site.build(run, tmp_path_factory.mktemp("site") / "instructor", audience="instructor").parent


def _text(folder: Path, suffixes=(".html", ".js", ".ipynb", ".txt", ".css")) -> str:
    """Every file's text, and the pages' text as shown (code without its highlighting markup)."""
    text = "\n".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.suffix in suffixes)
    return text + html.unescape(re.sub(r"<[^>]+>", "", text))


class _Refs(HTMLParser):
    """Every tag's src/href in a page, with the tag's name."""

    def __init__(self):
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key in ("src", "href") and value:
                self.refs.append((tag, key, value))


def _pages(folder: Path) -> list[Path]:
    """The site's pages (the theme's _static/ also holds a template with an .html name)."""
    return [p for p in folder.rglob("*.html") if "_static" not in p.relative_to(folder).parts]


def _refs(page: Path) -> list[tuple[str, str, str]]:
    parser = _Refs()
    parser.feed(page.read_text())
    return parser.refs


def test_student_site_has_a_page_per_lab_and_its_links_and_images_resolve(student):
    pages = sorted(p.relative_to(student).as_posix() for p in student.glob("labs/*.html"))
    assert pages == [f"labs/{name}.html" for name in LABS]
    front = (student / "index.html").read_text()
    for name in LABS:
        assert f'href="labs/{name}.html"' in front
        assert (student / "_static" / "cards" / f"{name}.png").is_file()  # the lab's figure on its card
    for page in _pages(student):
        for tag, _, ref in _refs(page):
            parts = urlsplit(ref)
            if parts.scheme or ref.startswith(("#", "mailto:", "data:")):
                continue
            target = (page.parent / unquote(parts.path)).resolve()
            assert target.exists(), f"{page.name}: <{tag}> {ref} points to nothing"


def test_student_site_shows_no_solution_hidden_test_or_model_answer(student):
    text = _text(student)
    for secret in (
        "BEGIN SOLUTION",
        "HIDDEN TESTS",
        MASTER_LINE,
        HIDDEN_LINE,
        HIDDEN_OUTPUT,
        MODEL_ANSWER,
        "the master's answer printed this",
    ):
        assert secret not in text, secret
    lab = (student / "labs" / "01_first.html").read_text()
    assert "01-ex: check passed." in lab  # the visible check's output stays
    assert "YOUR ANSWER HERE" in lab and "NotImplementedError" in lab  # nbgrader's placeholders


def test_instructor_site_shows_the_solutions(instructor):
    assert "Instructor build" in (instructor / "index.html").read_text()
    page = html.unescape(re.sub(r"<[^>]+>", "", (instructor / "labs" / "01_first.html").read_text()))
    assert MASTER_LINE in page and MODEL_ANSWER in page and HIDDEN_LINE in page


def test_lab_page_has_launch_and_download_links_papers_math_and_explorer_note(student):
    html = (student / "labs" / "07_gradcam.html").read_text()
    assert colab.badge("07_gradcam").rsplit("(", 1)[1].rstrip(")") in html  # the badge's URL
    assert "colab-badge.svg" not in html  # the badge's image lives on Colab's site
    refs = [ref for _, _, ref in _refs(student / "labs" / "07_gradcam.html")]
    downloads = [ref for ref in refs if ref.endswith(".ipynb") and not ref.startswith("https:")]
    assert len(downloads) == 1
    nb = nbformat.read(student / "labs" / downloads[0], as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")  # a clean student copy
    assert not any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)
    assert "Papers cited in this lab" in html and "A very fine paper on convolutions" in html
    assert 'class="math' in html and "mathjax/tex-chtml.js" in html
    assert "On this site the explorer above is the static figure" in html
    assert "profile" in html and "smoke" in html  # which run the outputs come from
    index = json.loads(re.search(r"setIndex\((.*)\)", (student / "searchindex.js").read_text()).group(1))
    lab07 = index["docnames"].index("labs/07_gradcam")
    assert all(lab07 in np.atleast_1d(index["terms"][term]) for term in ("grad", "cam"))  # Sphinx's stems


def test_site_loads_nothing_from_the_network(student):
    """No script, style, font, image or frame from another host: the site works offline."""
    for page in _pages(student):
        for tag, key, ref in _refs(page):
            if tag in ("script", "link", "img", "iframe", "source", "video", "audio", "embed"):
                assert not re.match(r"(https?:)?//", ref), f"{page.name}: <{tag} {key}={ref}>"
    for sheet in student.rglob("*.css"):
        assert not re.search(r"(url\(|@import)\s*['\"]?(https?:)?//", sheet.read_text(errors="replace")), (
            sheet
        )
    assert "unpkg.com" not in _text(student) and "require.js" not in _text(student, (".html",))


def test_papers_are_found_in_both_citation_styles():
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell(
                "Papers: K. Simonyan, A. Vedaldi, A. Zisserman, *Deep inside convolutional networks*, ICLR "
                "workshop 2014. Residual blocks (He et al. 2016, *Deep Residual Learning for Image "
                "Recognition*, CVPR) and LeNet (LeCun et al. 1998); He et al. 2016 again."
            )
        ]
    )
    assert site.papers(nb) == [
        "K. Simonyan, A. Vedaldi, A. Zisserman, *Deep inside convolutional networks*, ICLR workshop 2014.",
        "He et al., *Deep Residual Learning for Image Recognition*, CVPR, 2016.",
        "LeCun et al. 1998.",
    ]


def test_a_test_cells_output_stops_at_its_visible_check():
    out = nbformat.v4.new_output("stream", name="stdout", text="✓ a\n✓ 02-x: check passed.\n✓ secret\n")
    kept = site._sealed_output([out, nbformat.v4.new_output("stream", text="more\n")], "02-x")
    assert [o.text for o in kept] == ["✓ a\n✓ 02-x: check passed.\n"]
    assert site._sealed_output([nbformat.v4.new_output("stream", text="✓ secret\n")], "02-x") == []


def test_a_missing_run_or_a_foreign_folder_is_refused(tmp_path, run):
    with pytest.raises(LabError, match="make lab"):
        site.build(tmp_path / "nothing", tmp_path / "out")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(LabError, match="not a site"):
        site.build(run, tmp_path / "mine", audience="instructor")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
