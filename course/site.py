"""The course site: a run's executed labs as a static book that students read before running anything.

    python -m course site [--run runs/full] [--audience student|instructor] [--out DIR]    (make site)

The pages are the notebooks the runner executed (`{run}/notebooks/`), never run again: a front page
(the course, the eight labs with one of each lab's figures from `{run}/figures/`, how to start) and
one page per lab with its prose, code and outputs, a "Launch in Colab" link (course/colab.py's
URL), a download link and the papers the lab cites; search, and the theme's light and dark modes.

The student build (default, into `runs/site/`) shows the student version's cells, made by nbgrader
as `make student` makes them (course.grading.assignments), with the master's outputs; an answer
cell's outputs are left out, and a test cell keeps only its visible check's lines, so neither
solutions, hidden tests nor written questions' model answers reach the site. The instructor build
(`--audience instructor`, into `runs/site-instructor/`) shows the masters as run.

Why Sphinx with myst-nb and sphinx-book-theme (Jupyter Book 1's engine, driven directly), not Jupyter
Book 2 (mystmd): mystmd fetches its HTML theme from the network when it builds (jupyter-book/mystmd
issue 1451), which CI's network, package registries only, refuses; these are pip packages whose
pages carry their own scripts, styles and fonts, Sphinx's search is an index searched in the page,
and myst-nb renders stored outputs as they are (`nb_execution_mode = "off"`). Math is set by the
MathJax copy that the sphinx-mathjax-offline package ships, instead of Sphinx's default, a CDN.
"""

from __future__ import annotations

import argparse
import copy
import html
import importlib.metadata
import io
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from course import colab
from labkit.core import LabError, project_root

AUDIENCES = ("student", "instructor")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
LEAKS = ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS")  # nbgrader's markers: never on a student page
EXPLORER_NOTE = (
    "```{{note}}\nOn this site the explorer above is the static figure that a headless run draws. "
    "To move its controls, open the lab in JupyterLab (`make jupyter`) or in [Colab]({url}): "
    "there the same cell shows the live explorer.\n```"
)
CSS = """
/* Figures keep a white ground in the dark theme: matplotlib draws dark text and axes on them. */
html[data-theme="dark"] .bd-content img, html[data-theme="dark"] .bd-content div.cell_output img {
    background-color: #fff; }
.lab-grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(15rem, 1fr)); gap: 1rem;
            margin: 1rem 0; }
.lab-card { display: block; border: 1px solid var(--pst-color-border); border-radius: .5rem; padding: .6rem;
            text-decoration: none !important; color: var(--pst-color-text-base) !important; }
.lab-card:hover { border-color: var(--pst-color-primary); }
.lab-card img { width: 100%; height: 11rem; object-fit: contain; border-radius: .25rem; }
.lab-card b { display: block; margin-top: .4rem; color: var(--pst-color-primary); }
.launch-links p { display: flex; gap: 1.5rem; flex-wrap: wrap; font-weight: 600; }
.launch-links code.download { font: inherit; background: none; border: none; padding: 0; }
"""

# The figure each lab's card on the front page shows (file stems under {run}/figures/<lab>/).
CARD_FIGURES = {
    "01_data_prep": "samples",
    "02_naive_cnn": "learning_curves",
    "03_residual_inception": "gradient_norms",
    "04_transfer_learning": "imagenet_predictions",
    "05_filters_feature_maps": "pretrained_filter_patterns",
    "06_deconvnet": "occlusion_photos",
    "07_gradcam": "photos_four_maps",
    "08_class_model_synthesis": "class_models_imagenet",
}
FAVICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" '
    'fill="#2a6ebb"/><path d="M3 3h4v4H3zM9 3h4v4H9zM3 9h4v4H3zM9 9h4v4H9z" fill="#fff"/></svg>'
)

# Papers: "A. Author, B. Author, *Title*, Venue 2015" and "Author et al. 2016, *Title*, Venue"; other
# "Author et al. 2014" or "A & B 2015" mentions are listed as they are written.
_NAME = r"[A-Z][\w'\u00C0-\u017F-]+"
_AUTHOR = rf"(?:[A-Z]\.(?:\s?[A-Z]\.)*\s)?{_NAME}"
_FULL = re.compile(
    rf"(?P<authors>{_AUTHOR}(?:,\s{_AUTHOR})*(?:\s(?:and|&)\s{_AUTHOR})?(?:\set\sal\.)?),\s"
    rf"\*(?P<title>[^*]{{8,}}?)\*,?\s(?P<venue>[^()*]{{0,50}}?(?P<year>(?:19|20)\d\d))"
)
_SHORT = re.compile(
    rf"(?P<authors>{_NAME}(?:,\s{_NAME})*(?:\set\sal\.|\s(?:and|&)\s{_NAME})?)\s(?P<year>(?:19|20)\d\d)[a-z]?,\s"
    rf"\*(?P<title>[^*]{{8,}}?)\*(?:,\s(?P<venue>[A-Z][\w ]*[\w]))?"
)
_CITED = re.compile(
    rf"\b(?P<authors>{_NAME}(?:,\s{_NAME})*(?:\set\sal\.|\s(?:and|&)\s{_NAME}))\s(?P<year>(?:19|20)\d\d)\b"
)


def papers(nb) -> list[str]:
    """The papers a notebook's text cites, as Markdown: those given with a title, in order, then the
    other "Author et al. 2016" mentions."""
    text = re.sub(r"\s+", " ", "\n".join(c.source for c in nb.cells if c.cell_type == "markdown"))
    titled: dict[str, str] = {}  # title -> reference
    named: dict[str, str] = {}  # "surname year" -> reference: a mention without a title
    seen = set()  # "surname year" of the titled ones (one author may have two papers a year)
    matches = sorted([*_FULL.finditer(text), *_SHORT.finditer(text)], key=lambda m: m.start())
    for m in matches:
        surname = re.split(r",| and | & | et al\.", m["authors"])[0].split()[-1]
        seen.add(f"{surname.lower()} {m['year']}")
        if m.re is _FULL:
            reference = f"{m['authors']}, *{m['title']}*, {m['venue']}."
        else:
            reference = (
                f"{m['authors']}, *{m['title']}*{', ' + m['venue'] if m['venue'] else ''}, {m['year']}."
            )
        titled.setdefault(m["title"].lower(), reference)
    for m in _CITED.finditer(text):
        key = f"{re.split(r',| ', m['authors'])[0].lower()} {m['year']}"
        if key not in seen:
            named.setdefault(key, f"{m['authors']} {m['year']}.")
    return [*titled.values(), *named.values()]


def colab_url(name: str) -> str:
    """The URL the lab's "Open in Colab" badge points to (course/colab.py writes both)."""
    return re.search(r"\]\((https://[^)]+)\)$", colab.badge(name)).group(1)


def _sealed_output(outputs: list, grade_id: str) -> list:
    """A test cell's outputs up to its visible check's last line: what follows came from hidden tests."""
    ends = (f"{grade_id}: check passed", f"{grade_id}: not answered")
    kept = []
    for out in outputs:
        if out.output_type != "stream":
            kept.append(out)
            continue
        lines = out.text.splitlines(keepends=True)
        end = next((i for i, line in enumerate(lines) if any(e in line for e in ends)), None)
        if end is not None:
            kept.append(nbformat.from_dict({**out, "text": "".join(lines[: end + 1])}))
            return kept
        kept.append(out)
    return []  # no end of the visible check found: keep nothing rather than risk a hidden test's line


def _student_cells(master, student) -> list:
    """The student version's cells with the master's outputs, matched by cell id."""
    outputs = {c.id: c for c in master.cells if c.cell_type == "code"}
    cells = []
    for cell in student.cells:
        cell = copy.deepcopy(cell)
        meta = cell.metadata.get("nbgrader", {})
        ran = outputs.get(cell.get("id"))
        if cell.cell_type == "code" and ran is not None and not meta.get("solution"):
            cell.execution_count = ran.execution_count
            cell.outputs = copy.deepcopy(ran.outputs)
            if meta.get("grade") and "BEGIN HIDDEN TESTS" in ran.source:
                cell.outputs = _sealed_output(cell.outputs, meta["grade_id"])
        cells.append(cell)
    return cells


def page(executed: Path, student: Path | None, profile: str | None) -> tuple[dict, dict]:
    """The notebook a lab's page renders and the notebook its download link gives.

    `student`: the nbgrader student version (None for the instructor build)."""
    name = executed.stem
    master = nbformat.read(executed, as_version=4)
    nb = copy.deepcopy(master)
    download = copy.deepcopy(master)
    if student is not None:
        download = nbformat.read(student, as_version=4)
        nb.cells = _student_cells(master, download)
    for book in (nb, download):
        book.metadata.pop("widgets", None)
        book.metadata.pop("papermill", None)
        # papermill's injected cell names this run's folders; the `parameters` cell above it stays
        book.cells = [c for c in book.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    for cell in download.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    # The page has its own launch and download links; the badge's image would come from Colab's site.
    nb.cells = [c for c in nb.cells if not (c.cell_type == "code" and colab.is_setup_cell(c.source))]
    title = nb.cells[0]
    lines = [ln for ln in title.source.splitlines() if "colab-badge.svg" not in ln]
    what = "notebook" if student is not None else "master notebook (solutions, hidden tests)"
    ran = f" Outputs below are from a run under the `{profile}` profile." if profile else ""
    links = (
        f"```{{container}} launch-links\n[Launch in Colab]({colab_url(name)})\n"
        f"{{download}}`Download the {what} <../downloads/{name}.ipynb>`\n```\n\n"
        f"*Read it here, run it in JupyterLab or Colab.{ran}*"
    )
    title.source = f"{lines[0]}\n\n{links}\n\n" + "\n".join(lines[1:]).lstrip("\n")
    cells = []
    for cell in nb.cells:
        cells.append(cell)
        if cell.cell_type == "code":
            # live widgets need a kernel; myst-nb would also load their scripts from a CDN
            cell.outputs = [o for o in cell.outputs if WIDGET_VIEW not in o.get("data", {})]
            if "labkit.widgets." in cell.source:
                cells.append(nbformat.v4.new_markdown_cell(EXPLORER_NOTE.format(url=colab_url(name))))
    cited = papers(master)
    if cited:
        cells.append(nbformat.v4.new_markdown_cell("## Papers cited in this lab\n\n" + _bullets(cited)))
    nb.cells = cells
    return nb, download


def _bullets(items: list[str]) -> str:
    return "\n".join(f"- {item}" for item in items)


def _card_figure(run: Path, name: str) -> Path | None:
    """One figure for a lab's card: the one CARD_FIGURES names when the run saved it, else the first."""
    figures = sorted((run / "figures" / name).glob("*.png"))
    chosen = [f for f in figures if f.stem == CARD_FIGURES.get(name)]
    return (chosen or figures or [None])[0]


def front_page(labs: list[tuple[str, str, str | None]], audience: str, profile: str | None) -> str:
    """index.md: `labs` is (name, title, card image path relative to the site or None) per lab."""
    cards = []
    for name, title, image in labs:
        number, _, rest = (html.escape(part) for part in title.partition(" — "))
        img = f'<img src="{image}" alt="A figure from {number}">' if image else ""
        cards.append(f'<a class="lab-card" href="labs/{name}.html">{img}<b>{number}</b>{rest}</a>')
    banner = (
        "```{warning}\nInstructor build: the exercises show their solutions and hidden tests, and the "
        "written questions their model answers. Give students the default build (`make site`).\n```\n\n"
        if audience == "instructor"
        else ""
    )
    ran = f" under the `{profile}` profile" if profile else ""
    toc = "\n".join(f"labs/{name}" for name, _, _ in labs)
    return f"""# CNN Lab

{banner}Eight Jupyter labs on convolutional networks for image classification: training them (data
preparation, a naive CNN, residual and inception blocks, transfer learning) and looking inside them
(filters and feature maps, deconvnet, Grad-CAM, class-model synthesis). Each lab has exercises in
which you write the technique it is about, with checks that say what is wrong, and written
questions. This site shows every lab as it was executed{ran}: read a lab here, with its figures,
before you run it yourself.

## The labs

<div class="lab-grid">
{chr(10).join(cards)}
</div>

## Start on your machine

With Python 3.10+ and `make`, in a clone of the course's repository:

```bash
make lab       # creates .venv, installs everything, runs the eight labs into runs/full/
make test      # lint, unit tests, and every lab headlessly under the quick smoke profile
make jupyter   # JupyterLab on notebooks/, to work through a lab yourself
```

No dataset or network weights are downloaded: the labs default to a dataset labkit draws and a
pretrained network that a package ships. In a lab, the cell after the setup cell holds its
parameters: `profile = "smoke"` runs the same code in seconds, `"full"` is the real lab.

## Start on Colab

Each lab's page has a **Launch in Colab** link. The lab's first code cell sets Colab up (it
fetches the course and installs what Colab lacks, in a minute); then run the cells in order.

## For instructors

`make student` writes the student versions (solutions and hidden tests removed, by nbgrader),
`make grade SUBMISSIONS=DIR` grades submitted notebooks into a gradebook, and
`make site AUDIENCE=instructor` builds this site with the solutions shown; the repository's README
says more.

```{{toctree}}
:hidden:
:maxdepth: 1

{toc}
```
"""


def _mathjax(static: Path) -> None:
    """MathJax's TeX-to-HTML component, its fonts, and the parts it loads on demand (no speech)."""
    dist = importlib.metadata.distribution("sphinx-mathjax-offline")
    source = Path(dist.locate_file("sphinx-mathjax-offline/static/mathjax"))
    for part in ("tex-chtml.js", "input/tex", "output/chtml", "ui", "a11y"):
        src, dst = source / part, static / "mathjax" / part
        if src.is_dir():
            shutil.copytree(src, dst)
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)


def sphinx_config(audience: str) -> dict:
    """What Sphinx, myst-nb and the theme are told (there is no conf.py)."""
    return {
        "project": "CNN Lab",
        "html_title": "CNN Lab" + (" (instructor)" if audience == "instructor" else ""),
        "extensions": ["myst_nb", "sphinx.ext.mathjax"],
        "exclude_patterns": ["downloads/**", "_build", "**.ipynb_checkpoints"],
        "nb_execution_mode": "off",  # the runner executed them; the site shows that run
        "nb_ipywidgets_js": {},  # no widget scripts from a CDN (the outputs hold no live widgets)
        "nb_output_stderr": "remove",  # warnings and progress noise of the headless run
        "nb_merge_streams": True,
        "myst_enable_extensions": ["dollarmath", "amsmath"],
        "mathjax_path": "mathjax/tex-chtml.js",  # under _static: the local copy, not a CDN
        # MathJax's menu can switch on speech, whose rule files come from a CDN: no menu, no request.
        "mathjax3_config": {"options": {"enableMenu": False}},
        "html_theme": "sphinx_book_theme",
        "html_theme_options": {
            "home_page_in_toc": True,
            "use_download_button": False,  # each page has its own download link
            "use_fullscreen_button": False,
            "show_toc_level": 2,
            "navbar_persistent": [],  # the sidebar has the search field; no second one in a top bar
        },
        "html_context": {"default_mode": "auto"},  # light or dark as the reader's system says
        "html_favicon": "_static/favicon.svg",  # else the browser asks for /favicon.ico, a 404
        "html_static_path": ["_static"],
        "html_css_files": ["site.css"],
        "html_copy_source": False,  # the pages' sources are the notebooks, linked for download
        "html_show_sourcelink": False,
        "html_last_updated_fmt": None,
        "suppress_warnings": ["myst.header", "mystnb.unknown_mime_type"],
        "language": "en",
    }


def _clear(out: Path) -> None:
    """Remove a previous build, and refuse to replace a folder that is not one."""
    if out.exists() and any(out.iterdir()):
        if not (out / ".buildinfo").is_file():
            raise LabError(f"{out} exists and is not a site built here; choose another --out or remove it.")
        shutil.rmtree(out)


def build(run: str | Path, out: str | Path | None = None, audience: str = "student") -> Path:
    """Build the site of run folder `run` into `out` (default runs/site or runs/site-instructor);
    returns the path of its front page."""
    from sphinx.application import Sphinx

    if audience not in AUDIENCES:
        raise LabError(f"--audience {audience!r}: choose one of {AUDIENCES}.")
    run = Path(run).expanduser().resolve()
    executed = sorted((run / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if not executed:
        raise LabError(
            f"no executed notebooks in {run / 'notebooks'}: run the labs first (`make lab`, or `make smoke` "
            f"and then `make site SITE_RUN=runs/smoke`)."
        )
    suffix = "" if audience == "student" else "-instructor"
    out = Path(out or project_root() / "runs" / f"site{suffix}").expanduser().resolve()
    summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").is_file() else {}
    profile = summary.get("profile")
    failed = [n["notebook"] for n in summary.get("notebooks", []) if n.get("status") == "failed"]
    if failed:
        print(f"[labkit] warning: {', '.join(failed)} failed in {run}; their pages stop at the error.")
    _clear(out)
    with tempfile.TemporaryDirectory(prefix="labkit-site-") as tmp:
        src = Path(tmp) / "src"
        for folder in ("labs", "downloads", "_static/cards"):
            (src / folder).mkdir(parents=True)
        students: dict[str, Path] = {}
        if audience == "student":
            from course.grading.assignments import make_student_copies

            made = make_student_copies(run / "notebooks", Path(tmp) / "student", [p.stem for p in executed])
            students = {p.stem: p for p in made}
        labs = []
        for path in executed:
            nb, download = page(path, students.get(path.stem), profile)
            if audience == "student":
                text = nbformat.writes(nb) + nbformat.writes(download)
                leaked = [m for m in LEAKS if m in text]
                if leaked:  # nbgrader left a marker: better no site than a published answer
                    raise LabError(f"{path.name}: the student page would show {leaked}; not building.")
            nbformat.write(nb, src / "labs" / path.name)
            nbformat.write(download, src / "downloads" / path.name)
            figure = _card_figure(run, path.stem)
            image = None
            if figure is not None:
                shutil.copyfile(figure, src / "_static" / "cards" / f"{path.stem}.png")
                image = f"_static/cards/{path.stem}.png"
            title = nb.cells[0].source.splitlines()[0].lstrip("# ").strip()
            labs.append((path.stem, title, image))
        (src / "index.md").write_text(front_page(labs, audience, profile))
        (src / "_static" / "site.css").write_text(CSS)
        (src / "_static" / "favicon.svg").write_text(FAVICON)
        _mathjax(src / "_static")
        warnings = io.StringIO()
        app = Sphinx(
            str(src),
            None,  # no conf.py: sphinx_config() is the whole configuration
            str(out),
            str(Path(tmp) / "doctrees"),
            "html",
            confoverrides=sphinx_config(audience),
            status=None,
            warning=warnings,
            freshenv=True,
        )
        app.build()
        if warnings.getvalue().strip():
            print(warnings.getvalue().strip(), file=sys.stderr)
        if app.statuscode:
            raise LabError(f"Sphinx failed building the site from {run}.")
    for source_map in (out / "_static").rglob("*.map"):  # the theme's, for developer tools only: 3 MiB
        source_map.unlink()
    return out / "index.html"


def size_of(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course site", description="build the course site")
    parser.add_argument("--run", default=str(project_root() / "runs" / "full"), help="run folder (runs/full)")
    parser.add_argument("--audience", default="student", choices=AUDIENCES)
    parser.add_argument("--out", default=None, help="site folder (runs/site, runs/site-instructor)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        index = build(args.run, args.out, args.audience)
    except LabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    pages = len(list(index.parent.glob("labs/*.html"))) + 1
    print(
        f"[labkit] site ({args.audience}): {pages} pages, {size_of(index.parent) / 2**20:.1f} MiB, "
        f"built in {time.perf_counter() - start:.0f} s: {index}"
    )
    return 0
