"""What both browser suites share: Debian's Chromium, started by Playwright (which downloads no browser of
its own here), and a fixture that fails early, naming the fix, when it is missing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# As the machine's own probe starts it: no sandbox (root in CI), and no calls home, which a closed
# network refuses loudly.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]  # fmt: skip


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """/usr/bin/chromium, or LABKIT_CHROMIUM; asked for before any long setup, so a missing browser fails
    first."""
    path = os.environ.get("LABKIT_CHROMIUM", "/usr/bin/chromium")
    if not Path(path).is_file():
        pytest.fail(
            f"no Chromium at {path}: install Debian's package (apt-get install chromium) or set "
            "LABKIT_CHROMIUM; these tests never download a browser."
        )
    return path


@pytest.fixture(scope="module")
def browser(request, chromium_path):
    """A headless Chromium for the module; its screenshot folder (the module's SHOTS) is made first."""
    from playwright.sync_api import sync_playwright

    Path(request.module.SHOTS).mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
