"""Debian's chromium driven by Playwright, for the browser tests (tests/test_browser.py, tests/test_serve_browser.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import pytest

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def require_playwright() -> Any:
    """``playwright.sync_api``; skips the module where chromium is missing, except in CI (.ci/run installs it)."""
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs it with apt-get (package chromium)", pytrace=False)
        pytest.skip("no /usr/bin/chromium: apt-get install chromium to run the browser tests", allow_module_level=True)
    return pytest.importorskip("playwright.sync_api")


def chromium_browser() -> Iterator[Any]:
    """A headless chromium for a fixture to yield: ``yield from chromium_browser()``."""
    with require_playwright().sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS, headless=True)
        yield browser
        browser.close()
