"""The dashboard on a real gateway (uvicorn on loopback) with a rollout in its A/B test: the JSON, the page
in a real headless Chromium at laptop and phone width, and live updates (new predictions; a rollout that
moves to its next phase)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from browser import CHART_MARKS, PageWatch
from pitstop.clock import ManualClock
from pitstop.http.app import create_app
from pitstop.report.html import plotly_js_path
from pitstop.report.words import status_words
from pitstop.serving.gateway import Gateway
from pitstop.workspace import Workspace
from report.rollouts import MODEL, rollout_workspace, send_traffic
from serving.conftest import running, wait_until

LIVE_CHARTS = {"timeline", "share", "errors", "latency", "progress", "shadow", "ab"}
EVERY = 0.5  # seconds between the page's polls: live updates show within the tests' patience
WAIT_MS = 30_000  # longest wait for the page to show a change (a loaded machine is slow, never this slow)


@dataclass
class Live:
    url: str
    ws: Workspace


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """A gateway serving `eta` with the dashboard mounted; its rollout passed shadow and is in the A/B
    test (1.5 simulated hours of traffic, the controller looking every 10 minutes)."""
    scratch = tmp_path_factory.mktemp("live")
    ws = rollout_workspace(scratch / "ws", scratch, f"sqlite:///{scratch / 'store.db'}")
    ws.start_rollout(MODEL, 2, skip_gate=True, reason="live dashboard test")
    send_traffic(ws, hours=1.5, requests=600)
    with running(create_app(Gateway(ws), dashboard_every=EVERY)) as url:
        yield Live(url, ws)
    ws.close()


def api_phase(ws: Workspace) -> str:
    phase: str = ws.rollout_status(MODEL).to_dict()["phase"]
    return phase


def test_dashboard_json_has_every_model_with_its_phase_series_and_health(live: Live) -> None:
    body = httpx.get(f"{live.url}/v1/dashboard").json()
    assert body["health"]["ready"] is True and body["health"]["reasons"] == []
    assert body["health"]["log"]["capacity"] > 0
    (model,) = body["models"]
    assert model["name"] == MODEL
    assert model["phase"] == api_phase(live.ws) == "ab_test"
    assert httpx.get(f"{live.url}/v1/models/{MODEL}/rollout").json()["phase"] == model["phase"]
    assert (model["champion"], model["challenger"], model["share"]) == (1, 2, 0.5)
    assert set(model["figures"]) == LIVE_CHARTS
    assert model["report"]["ab"]["final"] is False  # the A/B test is running: its last look
    assert len(model["report"]["times"]) == len(model["report"]["arms"]["champion"]["error_mean"])
    assert model["events"] and model["words"]["headline"].startswith("In progress (ab_test 50%)")

    # every gateway of the store, from its heartbeat: this one, live, serving the current routing
    def gateways() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = httpx.get(f"{live.url}/v1/dashboard").json()["gateways"]
        return found

    wait_until(lambda: len(gateways()) == 1)
    (gateway,) = gateways()
    (served,) = gateway["serving"]
    routing = live.ws.routing(MODEL)
    assert gateway["live"] and routing is not None
    assert (served["model"], served["routing_version"], served["loaded"]) == (MODEL, routing.version, [1, 2])


def test_the_glance_says_what_rollout_status_says(live: Live) -> None:
    (model,) = httpx.get(f"{live.url}/v1/dashboard").json()["models"]
    glance, words = model["glance"], status_words(live.ws.rollout_status(MODEL))
    assert words is not None  # the rollout is in progress
    assert (glance["verdict"], glance["next_check"], glance["latency"]) == (
        words.verdict,
        words.next_check,
        words.latency,
    )
    assert glance["phase"] == "ab_test 50%" and glance["since"] == "2026-03-01T00:00:00Z"
    arms = model["report"]["arms"]
    predictions = next(c for c in glance["counters"] if c["name"] == "predictions")
    assert (predictions["champion"], predictions["challenger"]) == tuple(
        f"{sum(arms[arm]['requests']):,}" for arm in ("champion", "challenger")
    )


def test_the_latency_chart_shows_the_cumulative_p99_and_the_rules_look_on_round_ticks(live: Live) -> None:
    (model,) = httpx.get(f"{live.url}/v1/dashboard").json()["models"]
    chart = model["figures"]["latency"]
    names = {trace.get("name") for trace in chart["data"]}
    assert {"challenger p99, cumulative in phase", "the rule's look now"} <= names
    check = model["report"]["latency_check"]
    assert (
        check["calls"] > 0 and f"challenger p99 {check['p99_ms']:.1f} ms" in chart["layout"]["title"]["text"]
    )
    ticks = chart["layout"]["yaxis"]["tickvals"]
    mantissas = {round(tick / 10 ** math.floor(math.log10(tick)), 6) for tick in ticks}
    assert ticks and mantissas <= {1, 2, 5}  # 1, 2, 5, 10 …: never 3.16


def test_dashboard_page_and_plotly_are_served_by_the_gateway_itself(live: Live) -> None:
    page = httpx.get(f"{live.url}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script src="static/plotly.min.js">' in page.text and "https://" not in page.text
    script = httpx.get(f"{live.url}/static/plotly.min.js")
    assert script.status_code == 200 and script.content == plotly_js_path().read_bytes()


def test_dashboard_page_polls_at_the_interval_the_app_was_given(live: Live) -> None:
    page = httpx.get(f"{live.url}/").text
    assert f'data-every="{EVERY:g}"' in page and f"refreshes every {EVERY:g} s" in page


def check_page(page: Any, live: Live, width: int) -> None:
    """Every chart drawn with marks, the phase the API has, nothing wider than the screen."""
    charts = page.evaluate(CHART_MARKS)
    assert {c["chart"] for c in charts} == LIVE_CHARTS
    for chart in charts:
        assert chart["traces"] > 0 and chart["svg"] > 0 and chart["marks"] > 0, chart
    badge = page.locator(f'[data-model="{MODEL}"] .phase')
    assert badge.get_attribute("data-phase") == api_phase(live.ws)
    assert badge.inner_text() == "ab_test 50%"
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # nothing runs off the screen


def check_glance(page: Any, glance: dict[str, Any]) -> None:
    """The facts an on-call engineer reads first are on the page as the JSON has them."""
    card = page.locator(f'[data-model="{MODEL}"]')
    assert "challenger v2 serves 50% of users" in card.locator(".share").inner_text()
    verdict = card.locator('[data-fact="verdict"]').inner_text()
    assert verdict == glance["verdict"] and verdict.startswith(("Better so far", "Worse so far", "Not yet"))
    assert "interval" in verdict  # the A/B test has run: its interval is in the sentence
    assert glance["next_check"] in card.locator('[data-fact="next"]').inner_text()
    decision = card.locator('[data-fact="decision"]').inner_text()
    last = glance["last_decision"]
    assert last["rule"] == "shadow.passed" and f"rule {last['rule']}" in decision
    assert last["numbers"] and all(f"{name} = {value}" in decision for name, value in last["numbers"])
    health = card.locator('[data-fact="rollout-health"]').inner_text()
    assert glance["since"] in health and "failed predictions" in health
    below = "document.getElementById('models').compareDocumentPosition(document.getElementById('health'))"
    assert page.evaluate(f"{below} & Node.DOCUMENT_POSITION_FOLLOWING")  # gateway health after the models


@pytest.mark.browser
def test_dashboard_reads_at_a_glance_on_a_laptop_and_a_phone(
    live: Live, chromium: Any, tmp_path: Path
) -> None:
    glance = httpx.get(f"{live.url}/v1/dashboard").json()["models"][0]["glance"]
    assert glance["next_check"] and glance["latency"] and glance["counters"]
    page = chromium.new_page(viewport={"width": 1400, "height": 900})
    watch = PageWatch(page, allowed=(live.url,))
    page.goto(f"{live.url}/")
    page.wait_for_function(
        f"document.querySelectorAll('[data-model] .js-plotly-plot .main-svg').length >= {len(LIVE_CHARTS)}"
        " && Number(document.body.dataset.polls) >= 2"  # drawn, then redrawn by a later poll
    )
    check_page(page, live, 1400)
    check_glance(page, glance)
    page.wait_for_function("document.querySelector('#gateways td')?.textContent.length > 0")
    assert "live, seen" in page.inner_text("#gateways")
    page.screenshot(path=str(tmp_path / "dashboard-1400.png"), full_page=True)
    page.screenshot(path=str(tmp_path / "dashboard-1400-top.png"))  # what shows without scrolling
    for chart in ("latency", "progress"):  # the charts the glance points at, at their drawn size
        page.locator(f'[data-model] [data-chart="{chart}"]').screenshot(path=str(tmp_path / f"{chart}.png"))
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    polls = int(page.evaluate("document.body.dataset.polls"))
    page.wait_for_function(f"Number(document.body.dataset.polls) >= {polls + 1}")
    page.wait_for_function("document.querySelector('.js-plotly-plot .main-svg').clientWidth <= 390")
    check_page(page, live, 390)
    check_glance(page, glance)
    page.screenshot(path=str(tmp_path / "dashboard-390.png"), full_page=True)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(tmp_path / "dashboard-390-top.png"))
    page.close()
    assert watch.errors == [] and watch.outside == []


@pytest.mark.browser
def test_dashboard_updates_live_from_the_gateway(live: Live, chromium: Any) -> None:
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    watch = PageWatch(page, allowed=(live.url,))
    page.goto(f"{live.url}/")
    page.wait_for_function("Number(document.body.dataset.polls) >= 1")
    before = int(page.locator("#health tr", has_text="predictions").first.locator("td").nth(1).inner_text())
    answer = httpx.post(
        f"{live.url}/v1/models/{MODEL}/predict", json={"features": {"a": 0.5, "b": 1.0}, "user_id": "u-live"}
    )
    assert answer.status_code == 200
    page.wait_for_function(
        """(before) => [...document.querySelectorAll('#health tr')].some(
            r => r.cells[0]?.textContent === 'predictions' && Number(r.cells[1].textContent) > before)""",
        arg=before,
    )
    page.close()
    assert watch.errors == [] and watch.outside == []


@pytest.fixture
def moving(tmp_path: Path) -> Iterator[Live]:
    """A gateway whose rollout has been in shadow for 15 minutes (no traffic): the test moves it on."""
    ws = rollout_workspace(tmp_path / "ws", tmp_path, f"sqlite:///{tmp_path / 'store.db'}")
    ws.start_rollout(MODEL, 2, skip_gate=True, reason="moved on by hand in a test")
    advance(ws, timedelta(minutes=15))  # a band is drawn once it has a width
    with running(create_app(Gateway(ws), dashboard_every=EVERY)) as url:
        yield Live(url, ws)
    ws.close()


def advance(ws: Workspace, delta: timedelta) -> None:
    clock = ws.clock
    assert isinstance(clock, ManualClock)
    clock.advance(delta)


# The names of the timeline's phase bands as drawn, and the challenger's latest share in the share chart.
DRAWN_STATE = """() => {
    const chart = name => document.querySelector(`[data-model] [data-chart="${name}"]`);
    const bands = (chart('timeline')?.data || []).filter(t => t.type === 'bar').map(t => t.name);
    const share = (chart('share')?.data || [])[0]?.y || [];
    return {bands: bands, share: share.length ? share[share.length - 1] : null};
}"""


@pytest.mark.browser
def test_dashboard_redraws_when_the_rollout_moves_to_its_next_phase(moving: Live, chromium: Any) -> None:
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    watch = PageWatch(page, allowed=(moving.url,))
    page.goto(f"{moving.url}/")
    badge = f'[data-model="{MODEL}"] .phase'
    page.wait_for_function(f"document.querySelector('{badge}')?.dataset.phase === 'shadow'", timeout=WAIT_MS)
    assert page.evaluate(DRAWN_STATE) == {"bands": ["shadow"], "share": 0}
    moving.ws.promote(MODEL, reason="enough seen in shadow")  # the Python API, as a pipeline would
    advance(moving.ws, timedelta(minutes=15))
    page.wait_for_function(f"document.querySelector('{badge}').dataset.phase === 'ab_test'", timeout=WAIT_MS)
    assert page.locator(badge).inner_text() == "ab_test 50%" and api_phase(moving.ws) == "ab_test"
    page.wait_for_function(f"({DRAWN_STATE})().bands.length === 2", timeout=WAIT_MS)
    assert page.evaluate(DRAWN_STATE) == {"bands": ["shadow", "ab_test 50%"], "share": 50}
    page.close()
    assert watch.errors == [] and watch.outside == []
