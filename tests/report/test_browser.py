"""The report file in a real headless Chromium: every chart drawn, no console errors, nothing fetched."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from plotly.offline import get_plotlyjs_version

from browser import CHART_MARKS, PageWatch
from pitstop.report import write_report
from pitstop.report.data import report_data
from pitstop.report.figures import build_figures
from pitstop.report.html import plotly_js_path
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
    assert path.stat().st_size <= 1_500_000  # plotly.js's basic bundle inline once: 1.2 MB (issue 24)
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


def test_the_shipped_plotly_js_is_the_one_plotly_writes_figures_for(story: Story) -> None:
    """The report inlines pitstop's copy of plotly.js's basic bundle, not the installed package's full
    one: it must be the same major version, and draw every trace type the figures use."""
    header = plotly_js_path().read_text(encoding="utf-8")[:200]
    found = re.search(r"plotly\.js \(basic - minified\) v(\d+)\.(\d+)\.(\d+)", header)
    assert found, header
    assert found.group(1) == get_plotlyjs_version().split(".")[0]
    figures = build_figures(report_data(story.ws, MODEL)).values()
    drawn = {trace.type for figure in figures for trace in figure.data}
    assert drawn and drawn <= {"scatter", "bar", "pie"}  # the basic bundle's trace types
