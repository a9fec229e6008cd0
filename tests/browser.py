"""A headless Chromium for the tests that look at pages (reports, the dashboard): Debian's package driven
over CDP by Playwright, never a downloaded browser; what a page did wrong; the charts it drew."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@contextmanager
def headless_chromium() -> Iterator[Any]:
    """Debian's headless Chromium driven over CDP by Playwright (no browser download; Playwright gives it
    a fresh temporary profile). Skips without one, fails in CI (`PITSTOP_REQUIRE_BROWSER=1`). While it
    is open, this thread runs Playwright's event loop: `asyncio.run` must wait until it closes."""
    if not CHROMIUM.exists():
        message = f"browser tests need Chromium at {CHROMIUM} (Debian: apt-get install chromium)"
        if os.environ.get("PITSTOP_REQUIRE_BROWSER") == "1":  # CI: a missing browser is a failure, not a skip
            pytest.fail(message)
        pytest.skip(message)
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="browser tests need `pip install playwright`"
    )
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS
        )
        try:
            yield browser
        finally:
            browser.close()


class PageWatch:
    """What a page did wrong: console errors, uncaught exceptions, and requests that left `allowed`."""

    def __init__(self, page: Any, allowed: tuple[str, ...]) -> None:
        self.errors: list[str] = []
        self.outside: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        page.on("request", lambda r: None if r.url.startswith(allowed) else self.outside.append(r.url))


# Per chart: its name, how many traces plotly holds, and how many drawn marks (non-empty SVG paths).
CHART_MARKS = """() => [...document.querySelectorAll('.js-plotly-plot')].map(div => ({
    chart: div.closest('[data-chart]')?.dataset.chart || div.id,
    traces: (div.data || []).length,
    svg: div.querySelectorAll('.main-svg').length,
    marks: [...div.querySelectorAll('.main-svg .trace path')]
        .filter(p => (p.getAttribute('d') || '').length > 4).length,
}))"""
