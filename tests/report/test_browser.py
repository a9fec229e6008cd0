"""The report file in a real headless Chromium: every chart drawn, no console errors, nothing fetched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from browser import CHART_MARKS, PageWatch
from pitstop.report import write_report
from report.conftest import Story
from report.rollouts import MODEL

pytestmark = pytest.mark.browser

CHARTS = {"timeline", "share", "errors", "latency", "progress", "shadow", "ab"}


def open_report(chromium: Any, path: Path, width: int, charts: int) -> tuple[Any, PageWatch]:
    page = chromium.new_page(viewport={"width": width, "height": 900})
    watch = PageWatch(page, allowed=("file:", "data:"))
    page.goto(path.as_uri())
    page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {charts}")
    return page, watch


def test_report_draws_every_chart_offline_says_the_outcome_and_fits_a_phone(
    story: Story, chromium: Any, artifacts: Path, tmp_path: Path, store_url: str
) -> None:
    path = write_report(story.ws, MODEL, tmp_path / "report.html")
    assert path.stat().st_size < 8_000_000  # plotly.js inline once: about 5 MB
    page, watch = open_report(chromium, path, 1280, len(CHARTS))
    charts = page.evaluate(CHART_MARKS)
    assert {c["chart"] for c in charts} == CHARTS
    for chart in charts:
        assert chart["traces"] > 0 and chart["svg"] > 0 and chart["marks"] > 0, chart
    text = page.inner_text("body")
    assert "Promoted: version 2 replaced version 1" in text
    assert "ramp.completed" in text and "ab.win" in text and "shadow.passed" in text
    backend = "postgres" if store_url.startswith("postgresql") else "sqlite"
    page.screenshot(path=str(artifacts / f"report-{backend}.png"), full_page=True)
    page.set_viewport_size({"width": 375, "height": 800})  # a phone: the charts follow the width
    page.wait_for_function("document.querySelector('.js-plotly-plot .main-svg').clientWidth <= 375")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375  # tables scroll inside their box
    page.screenshot(path=str(artifacts / f"report-{backend}-375.png"), full_page=True)
    page.close()
    assert watch.errors == [] and watch.outside == []
