"""Debian's Chromium driven by Playwright (``executable_path``: nothing is downloaded), for the page tests.

:func:`chromium_page` opens one page that may load only URLs under ``allowed`` (anything else is aborted and
recorded: an offline page must fetch nothing) and records console errors and uncaught page errors.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


@dataclass
class BrowserPage:
    page: Any  # playwright.sync_api.Page
    errors: list[str] = field(default_factory=list)  # console errors and uncaught exceptions
    external: list[str] = field(default_factory=list)  # URLs outside ``allowed`` that the page tried to load


@contextlib.contextmanager
def chromium_page(allowed: str) -> Iterator[BrowserPage]:
    """One headless page that may only load URLs starting with ``allowed``; skips when Chromium is missing."""
    if not CHROMIUM.exists():
        pytest.skip("Chromium not installed at /usr/bin/chromium (apt-get install -y chromium)")
    playwright = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        seen = BrowserPage(page)
        page.on("console", lambda m: seen.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: seen.errors.append(str(e)))
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(allowed)
                   else (seen.external.append(route.request.url), route.abort()))  # fmt: skip
        try:
            yield seen
        finally:
            browser.close()
