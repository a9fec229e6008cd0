"""Failures where people look: the report and the dashboard show a challenger that gateways cannot load
(from the store) and the failed calls' messages with counts and first and last times."""

from __future__ import annotations

import html
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import joblib
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from browser import PageWatch
from pitstop.http.app import create_app
from pitstop.report.html import write_report
from pitstop.serving.gateway import Gateway
from pitstop.store.load_failures import LoadFailure, replace_reported
from pitstop.workspace import Workspace
from report.rollouts import MODEL, rollout_workspace, send_traffic
from rollout.conftest import FailsAfter
from serving.conftest import running

OUT_OF_MEMORY = "MemoryError: out of memory after serving a while"
MISSING = "ModuleNotFoundError: No module named 'taxitrainers'"
CANNOT_LOAD = f"challenger v4 cannot be loaded: {MISSING}"


@pytest.fixture(scope="module")
def failing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """`eta` shadowing v4, which fails after its first calls; another gateway reports it cannot load v4."""
    scratch = tmp_path_factory.mktemp("failing")
    ws = rollout_workspace(scratch / "ws", scratch, f"sqlite:///{scratch / 'store.db'}")
    frame = pd.read_csv(scratch / "train.csv")
    joblib.dump(
        FailsAfter(LinearRegression().fit(frame[["a", "b"]], frame["y"]), 3), scratch / "fails.joblib"
    )
    assert ws.register(MODEL, scratch / "fails.joblib", train_data="train").version == 4
    ws.start_rollout(MODEL, 4, skip_gate=True, reason="a challenger that fails")
    send_traffic(ws, hours=0.5, requests=100, decide=False)
    now = ws.clock.now()
    with ws.writing() as conn:
        failure = LoadFailure(ws.model(MODEL).id, 4, "shadow", MISSING, now, now, 2)
        replace_reported(conn, "other-gateway:1:abc", [failure])
    yield ws
    ws.close()


def test_the_report_shows_what_cannot_load_and_the_failed_calls_by_message(
    failing: Workspace, tmp_path: Path
) -> None:
    page = html.unescape(
        write_report(failing, MODEL, tmp_path / "report.html").read_text()
    )  # rollout's clock
    section = page[page.index('id="failures"') :]
    assert CANNOT_LOAD in section and OUT_OF_MEMORY in section
    assert "first seen" in section and "last seen" in section


def test_the_dashboard_json_carries_the_failures(failing: Workspace) -> None:
    with running(create_app(Gateway(failing)), timeout=60) as url:
        (model,) = httpx.get(f"{url}/v1/dashboard").json()["models"]
    report = model["report"]
    assert report["unavailable"] == [CANNOT_LOAD]
    (message,) = report["errors"]["messages"]
    assert (message["version"], message["role"], message["error"]) == (4, "shadow", OUT_OF_MEMORY)


@pytest.mark.browser
def test_the_dashboard_page_shows_the_failures(failing: Workspace, chromium: Any) -> None:
    with running(create_app(Gateway(failing), dashboard_every=0.5), timeout=60) as url:
        page = chromium.new_page(viewport={"width": 1280, "height": 900})
        watch = PageWatch(page, allowed=(url,))
        page.goto(f"{url}/")
        page.wait_for_selector(f'[data-model="{MODEL}"] .failures .problem', timeout=30_000)
        text = page.locator(f'[data-model="{MODEL}"] .failures').inner_text()
        page.close()
    assert CANNOT_LOAD in text and OUT_OF_MEMORY in text
    assert watch.errors == [] and watch.outside == []
