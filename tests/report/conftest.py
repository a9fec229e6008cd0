"""Report fixtures: rollouts that really ran (module-scoped: built once per store), a headless Chromium,
and the folder where screenshots are kept."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from helpers import fresh_postgres_schema
from pitstop.workspace import Workspace
from report.rollouts import MODEL, rollout_workspace, send_traffic

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
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@dataclass
class Story:
    """A workspace where rollout 1 (v3) was rejected in shadow and rollout 2 (v2) was promoted."""

    ws: Workspace
    rejected: int
    promoted: int


@pytest.fixture(scope="session", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh store for the session: a SQLite file, or a PostgreSQL schema of its own."""
    yield from fresh_store(request, tmp_path_factory, "store", prefix="r")


def fresh_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, folder: str, prefix: str
) -> Iterator[str]:
    """A store URL by the fixture's param: a SQLite file in a new `folder`, or a PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp(folder) / 'pitstop.db'}"
        return
    yield from fresh_postgres_schema(request.getfixturevalue("postgres_url"), prefix=prefix)


def _story(folder: Path, scratch: Path, url: str | None) -> Story:
    ws = rollout_workspace(folder, scratch, url)
    rejected = ws.start_rollout(MODEL, 3, skip_gate=True, reason="a bad model on purpose").state.id
    send_traffic(ws, hours=3, requests=700, seed=1)
    promoted = ws.start_rollout(MODEL, 2, skip_gate=True, reason="retrained on fresher data").state.id
    send_traffic(ws, hours=5, requests=1800, seed=2)
    return Story(ws, rejected, promoted)


@pytest.fixture(scope="session")
def story(store_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    """Both rollouts, built once per store and only read by the tests (they must not change it)."""
    scratch = tmp_path_factory.mktemp("story")
    result = _story(scratch / "ws", scratch, store_url)
    yield result
    result.ws.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots go (gitignored), for people and CI to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's headless Chromium driven over CDP by Playwright (no browser download; Playwright gives it
    a fresh temporary profile). Per module: Playwright's sync API keeps an event loop running on the
    test thread while it is open, and tests elsewhere need that thread's `asyncio.run`."""
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
