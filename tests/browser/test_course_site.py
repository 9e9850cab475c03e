"""The course site in a real browser: built from a smoke run of the eight labs, served from this machine,
opened in Debian's Chromium through Playwright (as test_jupyterlab.py does).

Every page loads with no console error and no request that leaves the machine, every image shows,
every internal link (and its #anchor) resolves, search finds Grad-CAM in lab 07, the dark theme keeps
figures on white, and no solution or hidden test of the masters is on the student site. Screenshots go
to runs/browser/site/ (LABKIT_SCREENSHOTS moves runs/browser). LABKIT_SITE_RUN=runs/smoke builds from
that run instead of running the labs here first (.ci/run does, after `make smoke`).
"""

from __future__ import annotations

import functools
import html
import http.server
import json
import os
import re
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from course import run as runner
from course import site
from labkit.core import project_root

pytestmark = [
    pytest.mark.browser,
    pytest.mark.filterwarnings("ignore:.*Check CHANGES for Sphinx API"),  # the theme's, on Sphinx 9
]

SHOTS = Path(os.environ.get("LABKIT_SCREENSHOTS") or project_root() / "runs" / "browser") / "site"


@pytest.fixture(scope="module")
def built(tmp_path_factory, chromium_path):
    """(run folder, site folder): the student site of a smoke run of every lab."""
    run = Path(os.environ.get("LABKIT_SITE_RUN") or tmp_path_factory.mktemp("runs"))
    if not os.environ.get("LABKIT_SITE_RUN"):
        outcomes = runner.run(None, profile="smoke", out=run, keep_going=True)
        assert all(o.status == "ok" for o in outcomes), [o.error for o in outcomes if o.error]
    start = time.perf_counter()
    folder = site.build(run, tmp_path_factory.mktemp("site") / "site").parent
    print(f"site: {site.size_of(folder) / 2**20:.1f} MiB in {time.perf_counter() - start:.0f} s")
    return run, folder


@pytest.fixture(scope="module")
def server(built):
    """The site served over HTTP on this machine (search and downloads as a host would serve them)."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=built[1]))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()


def _page(browser, problems: list[str], scheme: str = "light"):
    """A page that records console errors, uncaught exceptions, failed loads and any request that
    would leave this machine (refused: the site must work offline)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme=scheme)
    page = context.new_page()
    page.on(
        "console", lambda m: problems.append(f"console.{m.type}: {m.text}") if m.type == "error" else None
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)

    def offline(route):
        if route.request.url.startswith(("http://127.0.0.1", "data:", "blob:")):
            route.continue_()
        else:
            problems.append(f"network: {route.request.url}")
            route.abort()

    context.route("**/*", offline)
    return context, page


def _pages(folder: Path) -> list[str]:
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*.html")
        if "_static" not in p.relative_to(folder).parts  # the theme keeps a template there
    )


BROKEN_IMAGES_JS = (
    "() => [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
)
LINKS_JS = "() => [...document.querySelectorAll('a[href]')].map(a => a.href)"


def test_every_page_loads_with_its_images_and_links_and_no_console_error(built, server, browser):
    _, folder = built
    pages = _pages(folder)
    assert "index.html" in pages and len([p for p in pages if p.startswith("labs/")]) == 8, pages
    problems: list[str] = []
    links: set[str] = set()
    context, page = _page(browser, problems)
    for path in pages:
        page.goto(f"{server}/{path}", wait_until="networkidle")
        broken = page.evaluate(BROKEN_IMAGES_JS)
        assert not broken, f"{path}: images that did not load: {broken}"
        links |= {(path, href) for href in page.evaluate(LINKS_JS) if href.startswith(server)}
        if path in ("index.html", "labs/07_gradcam.html"):
            page.screenshot(path=str(SHOTS / f"{Path(path).stem}_light.png"))
    context.close()
    assert not problems, problems
    ids: dict[Path, set[str]] = {}
    for path, href in sorted(links):
        parts = urlsplit(href)
        target = folder / unquote(parts.path).lstrip("/")
        target = target / "index.html" if target.is_dir() else target
        assert target.is_file(), f"{path}: link to {href} resolves to nothing"
        if parts.fragment and target.suffix == ".html":
            if target not in ids:
                ids[target] = set(re.findall(r'\bid="([^"]+)"', target.read_text()))
            assert unquote(parts.fragment) in ids[target], f"{path}: no #{parts.fragment} in {target.name}"


def test_search_finds_grad_cam_in_lab_07(server, browser):
    problems: list[str] = []
    context, page = _page(browser, problems)
    page.goto(f"{server}/search.html?q=Grad-CAM", wait_until="networkidle")
    page.wait_for_selector("#search-results ul.search li a", timeout=30_000)
    hrefs = page.eval_on_selector_all("#search-results ul.search li a", "els => els.map(a => a.href)")
    page.screenshot(path=str(SHOTS / "search_grad-cam.png"))
    context.close()
    assert any("labs/07_gradcam.html" in h for h in hrefs), hrefs
    assert not problems, problems


def test_dark_theme_keeps_figures_on_white(server, browser):
    problems: list[str] = []
    context, page = _page(browser, problems, scheme="dark")
    page.goto(f"{server}/labs/07_gradcam.html", wait_until="networkidle")
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    figure = page.locator(".bd-content .cell_output img").first
    figure.scroll_into_view_if_needed()
    assert figure.evaluate("i => getComputedStyle(i).backgroundColor") == "rgb(255, 255, 255)"
    page.screenshot(path=str(SHOTS / "gradcam_dark.png"))
    note = page.locator(".admonition.note", has_text="static figure").first
    note.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "gradcam_explorer_note_dark.png"))
    page.goto(f"{server}/index.html", wait_until="networkidle")
    page.screenshot(path=str(SHOTS / "index_dark.png"))
    context.close()
    assert not problems, problems


def _secret_lines(notebooks: list[Path]) -> set[str]:
    """Lines of the masters' solutions, hidden tests and model answers that their other text (the
    exercises' prose quotes some) does not contain."""
    inside, outside = set(), []
    for path in notebooks:
        for cell in json.loads(path.read_text())["cells"]:
            answer = cell["cell_type"] == "markdown" and cell["metadata"].get("nbgrader", {}).get("solution")
            hidden = False
            for line in "".join(cell["source"]).splitlines():
                if re.search(r"BEGIN (SOLUTION|HIDDEN TESTS)", line):
                    hidden = True
                elif re.search(r"END (SOLUTION|HIDDEN TESTS)", line):
                    hidden = False
                elif hidden or answer:
                    inside.add(line.strip())
                else:
                    outside.append(line)
    elsewhere = "\n".join(outside)
    return {line for line in inside if len(line) >= 30 and line not in elsewhere}


def test_the_student_site_shows_no_solution_nor_hidden_test(built):
    run, folder = built
    text = "\n".join(
        p.read_text(errors="replace") for p in folder.rglob("*") if p.suffix in (".html", ".js", ".ipynb")
    )
    text += html.unescape(re.sub(r"<[^>]+>", "", text))  # code as the page shows it, without its markup
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS"):
        assert marker not in text
    secrets = _secret_lines(sorted((run / "notebooks").glob("[0-9][0-9]_*.ipynb")))
    assert secrets, "the masters have solutions and hidden tests to look for"
    assert not [line for line in secrets if line in text]
