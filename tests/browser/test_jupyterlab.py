"""The labs in a real browser: JupyterLab, driven in Debian's Chromium through Playwright.

Labs 05, 06 and 07 run under smoke in JupyterLab (Run All, as a student would); every explorer
must render, each of its controls must change the image, and the page must log no error. The same
labs run once through the runner first, which trains the network they share and writes the HTML
index, shown in the browser too. Screenshots go to runs/browser/ (LABKIT_SCREENSHOTS moves them).

Needs Chromium at /usr/bin/chromium (`apt-get install chromium`; LABKIT_CHROMIUM names another):
Playwright is used with that browser and never downloads one. Run with `make test-browser`;
`make test` leaves it out (marker `browser`).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from course import run as runner
from labkit.core import project_root

pytestmark = pytest.mark.browser

LABS = ["05", "06", "07"]
SHOTS = Path(os.environ.get("LABKIT_SCREENSHOTS") or project_root() / "runs" / "browser")
RUN_TIMEOUT = 600  # seconds for one lab's Run All (smoke takes well under a minute on 2 cores)

# What JupyterLab's user settings say here: every cell in the page (no windowing), no news fetched.
SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}

STATE_JS = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const cells = panel.content.model.cells;
  let pending = 0; const errors = [];
  for (let i = 0; i < cells.length; i++) {
    const cell = cells.get(i);
    if (cell.type !== 'code') continue;
    for (const out of cell.outputs.toJSON()) {
      if (out.output_type === 'error') errors.push(`cell ${i}: ${out.ename}: ${out.evalue}`);
    }
    if (cell.executionCount === null) pending += 1;
  }
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  return {pending, errors, status: kernel ? kernel.status : 'none'};
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, chromium_path):
    """The three labs through the runner (headless): the shared network, figures and index.html."""
    out = tmp_path_factory.mktemp("runs")
    outcomes = runner.run(LABS, profile="smoke", out=out)
    assert all(o.status == "ok" for o in outcomes), [o.error for o in outcomes]
    return out


@pytest.fixture(scope="module")
def jupyterlab(run_dir, tmp_path_factory):
    """JupyterLab serving copies of the labs whose parameters say smoke and the run's out_dir;
    yields (base URL, token, folder, server log)."""
    home = tmp_path_factory.mktemp("jupyterlab")
    folder = home / "labs"
    folder.mkdir()
    for path in runner.resolve(LABS):
        nb = nbformat.read(path, as_version=4)
        params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        params.source += f'\nprofile = "smoke"\nout_dir = {str(run_dir)!r}'  # the student's own edit
        nbformat.write(nb, folder / path.name)
    settings = home / "settings"
    for name, value in SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(value))
    port, token = _free_port(), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if k != "LABKIT_HEADLESS"}  # as a student's: widgets live
    env.update(JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_RUNTIME_DIR=str(home / "runtime"))
    log = home / "server.log"
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "jupyter-lab"),
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={folder}",
            "--KernelManager.transport=ipc",
            "--LabApp.expose_app_in_browser=True",
            f"--LabApp.user_settings_dir={settings}",
            f"--LabApp.workspaces_dir={home / 'workspaces'}",
            *(["--allow-root"] if os.name == "posix" and os.geteuid() == 0 else []),
        ],  # CI runs as root
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        env=env,
        cwd=folder,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                request = urllib.request.Request(
                    f"{base}/api/status", headers={"Authorization": f"token {token}"}
                )
                urllib.request.urlopen(request, timeout=5)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
        yield base, token, folder, log
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def _page(browser, problems: list[str]):
    """A page that records console errors and uncaught exceptions, with everything outside this
    machine answered by an empty reply (the notebooks' Colab badge; the test runs offline)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.on(
        "console", lambda m: problems.append(f"console.{m.type}: {m.text}") if m.type == "error" else None
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))

    def offline(route):
        url = route.request.url
        if url.startswith(("http://127.0.0.1", "file://", "data:")):
            route.continue_()
        else:
            svg = url.split("?")[0].endswith(".svg")
            route.fulfill(
                status=200,
                body="<svg xmlns='http://www.w3.org/2000/svg'/>" if svg else "",
                content_type="image/svg+xml" if svg else "text/plain",
            )

    context.route("**/*", offline)
    return context, page


def _image(explorer) -> str | None:
    img = explorer.locator(".widget-output img")
    return img.first.get_attribute("src") if img.count() else None


def _wait_for_new_image(explorer, before: str | None, what: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = _image(explorer)
        if now and now != before:
            return now
        time.sleep(0.25)
    raise AssertionError(f"{what}: the image did not change within {timeout:.0f} s")


@pytest.mark.parametrize("number", LABS)
def test_lab_runs_in_jupyterlab_and_every_explorer_control_changes_the_image(number, jupyterlab, browser):
    base, token, folder, log = jupyterlab
    (path,) = runner.resolve([number])
    problems: list[str] = []
    context, page = _page(browser, problems)
    try:
        page.goto(f"{base}/lab/tree/{path.name}?token={token}&reset")
        page.wait_for_function(
            "() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
            " && window.jupyterapp.shell.currentWidget.sessionContext",
            timeout=120_000,
        )
        page.evaluate("""async () => {
            const panel = window.jupyterapp.shell.currentWidget;
            await panel.context.ready; await panel.sessionContext.ready;
            await window.jupyterapp.commands.execute('notebook:run-all-cells');
        }""")
        deadline = time.monotonic() + RUN_TIMEOUT
        while True:
            state = page.evaluate(STATE_JS)
            assert not state["errors"], f"{path.stem} failed in JupyterLab: {state['errors']}"
            if state["pending"] == 0 and state["status"] == "idle":
                break
            assert time.monotonic() < deadline, f"{path.stem} did not finish in {RUN_TIMEOUT} s: {state}"
            time.sleep(1)

        explorers = page.locator(".jp-OutputArea .widget-vbox:has(.widget-dropdown)")
        assert explorers.count() >= 1, f"{path.stem}: no explorer rendered"
        for k in range(explorers.count()):
            explorer = explorers.nth(k)
            explorer.scroll_into_view_if_needed()
            image = _wait_for_new_image(explorer, None, f"{path.stem} explorer {k}: first drawing")
            explorer.screenshot(path=str(SHOTS / f"{path.stem}_explorer{k}_start.png"))
            selects = explorer.locator("select")
            assert selects.count() >= 2, f"{path.stem} explorer {k} has {selects.count()} control(s)"
            for j in range(selects.count()):
                select = selects.nth(j)
                options = select.locator("option").count()
                assert options >= 2, f"{path.stem} explorer {k}, control {j}: only {options} option"
                label = select.evaluate(
                    "s => s.closest('.widget-dropdown').querySelector('label').textContent"
                )
                current = select.evaluate("s => s.selectedIndex")
                select.select_option(index=(current + 1) % options)
                image = _wait_for_new_image(explorer, image, f"{path.stem} explorer {k}, control {label!r}")
                explorer.screenshot(path=str(SHOTS / f"{path.stem}_explorer{k}_{j}_{label}.png"))
        page.screenshot(path=str(SHOTS / f"{path.stem}_jupyterlab.png"))
    finally:
        context.close()
    assert not problems, f"{path.stem}: the page logged errors:\n" + "\n".join(problems)
    assert "without encryption" not in log.read_text(), "a kernel of make jupyter's settings used TCP"


def test_the_runners_index_shows_every_lab_with_its_figures(run_dir, browser):
    problems: list[str] = []
    context, page = _page(browser, problems)
    try:
        page.goto((run_dir / "index.html").as_uri())
        page.wait_for_load_state("load")
        assert page.locator(".failures").count() == 0
        assert page.locator("section.card").count() == len(LABS)
        assert page.evaluate("() => [...document.images].every(i => i.complete && i.naturalWidth > 0)")
        assert page.locator(".tile").count() >= len(LABS)  # headline numbers for every lab
        page.screenshot(path=str(SHOTS / "index.png"), full_page=False)
        page.screenshot(path=str(SHOTS / "index_full.png"), full_page=True)
        with context.expect_page() as opened:
            page.locator(".thumbs a").first.click()
        assert opened.value.url.endswith(".png")  # a thumbnail opens the full-size figure
    finally:
        context.close()
    assert not problems, "\n".join(problems)
