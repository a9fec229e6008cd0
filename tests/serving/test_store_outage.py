"""A gateway restarted while its store is down serves from its routing cache (issue 16, row 9).

These tests stop and start a PostgreSQL server of their own (`own_postgres.py`), never the shared one.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from helpers import fit_regression_artifact, one_line_error, write_regression_csv
from pitstop.config import ServingSettings
from pitstop.errors import StoreUnavailableError
from pitstop.http.app import create_app
from pitstop.rollout import routes
from pitstop.serving import routing_cache
from pitstop.serving.gateway import Gateway
from pitstop.workspace import Workspace
from serving.conftest import MODEL, free_port, running, wait_until
from serving.own_postgres import OwnPostgres
from traffic import Traffic

pytestmark = pytest.mark.postgres


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    server = OwnPostgres()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def split_workspace(own_postgres: OwnPostgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A workspace on the test's own server: `eta` with champion v1 and v2 serving half the users."""
    monkeypatch.setenv("PITSTOP_DATABASE_URL", own_postgres.url)
    monkeypatch.delenv("PITSTOP_WORKSPACE", raising=False)
    folder = tmp_path / "ws"
    with Workspace.init(folder) as ws:
        csv = write_regression_csv(tmp_path / "train.csv")
        ws.add_dataset("train", csv, time_column="time")
        ws.create_model(
            MODEL, task="regression", target="y", features="all", time_column="time", id_columns=["user_id"]
        )
        ws.register(MODEL, fit_regression_artifact(csv, tmp_path / "v1.joblib"), train_data="train")
        csv2 = write_regression_csv(tmp_path / "train2.csv", seed=1)
        ws.register(MODEL, fit_regression_artifact(csv2, tmp_path / "v2.joblib"), train_data="train")
        ws.set_champion(MODEL, 1, reason="bootstrap")
        routes.route(ws, MODEL, mode="split", challenger=2, share=0.5, reason="a test split")
    return folder


def quick(ws: Workspace) -> ServingSettings:
    return ws.config.serving.model_copy(
        update={
            "poll_interval": timedelta(milliseconds=200),
            "log_flush_interval": timedelta(milliseconds=50),
            "shadow_process": False,
        }
    )


def predict(base: str, user: str, request_id: str) -> httpx.Response:
    body = {"features": {"a": 0.5, "b": -1.0}, "user_id": user, "request_id": request_id}
    return httpx.post(f"{base}/v1/models/{MODEL}/predict", json=body, timeout=30)


def serve_once(folder: Path) -> None:
    """A gateway that serves a little while the store is up, leaving its routing cache behind."""
    with Workspace(folder, service=True) as ws:
        gateway = Gateway(ws, settings=quick(ws))
        with running(create_app(gateway)) as base:
            served = {predict(base, f"u{i}", f"before-{i}").json()["model_version"] for i in range(20)}
        assert served == {1, 2}  # the split is in force
    assert (folder / ".pitstop" / "serving-cache" / routing_cache.CACHE_FILE).exists()


def logged(url: str, prefix: str) -> list[tuple[int, int]]:
    """(version, routing_version) of the records whose request_id starts with `prefix`."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT version, routing_version FROM predictions WHERE request_id LIKE :p"),
                {"p": f"{prefix}%"},
            )
            return [(int(v), int(r)) for v, r in rows]
    except sa.exc.OperationalError:
        return []
    finally:
        engine.dispose()


def test_a_gateway_started_while_the_store_is_down_serves_the_cached_champion_and_recovers(
    own_postgres: OwnPostgres, split_workspace: Path
) -> None:
    serve_once(split_workspace)
    own_postgres.stop()
    with Workspace(split_workspace, service=True) as ws:
        assert ws.store_problem is not None
        gateway = Gateway(ws, settings=quick(ws))
        with running(create_app(gateway)) as base:
            assert gateway.degraded is not None and "routing cache" in gateway.degraded
            answers = [predict(base, f"u{i}", f"outage-{i}") for i in range(20)]
            assert [a.status_code for a in answers] == [200] * 20
            assert {a.json()["model_version"] for a in answers} == {1}  # champion only: no split
            assert gateway.routing(MODEL).version == 0
            assert httpx.get(f"{base}/readyz").status_code == 200  # the champion serves: in rotation
            health = httpx.get(f"{base}/v1/health").json()
            assert health["status"] == "degraded" and "routing cache" in health["degraded"]

            own_postgres.start()
            wait_until(lambda: gateway.degraded is None, timeout=60)
            assert gateway.routing(MODEL).challenger_share == 0.5  # the store's table again
            wait_until(lambda: len(logged(own_postgres.url, "outage-")) == 20, timeout=60)
            assert set(logged(own_postgres.url, "outage-")) == {(1, 0)}  # never a phase's evidence
            after = {predict(base, f"u{i}", f"after-{i}").json()["model_version"] for i in range(20)}
            assert after == {1, 2}


def test_without_a_routing_cache_a_gateway_still_refuses_to_start(
    own_postgres: OwnPostgres, split_workspace: Path, cli: Any
) -> None:
    own_postgres.stop()
    with Workspace(split_workspace, service=True) as ws:
        gateway = Gateway(ws, settings=quick(ws))
        with pytest.raises(StoreUnavailableError, match="no routing cache to start from"):
            asyncio.run(gateway.start())
    message = one_line_error(cli("serve", "-w", split_workspace))
    assert message.startswith("error: cannot reach the store at postgresql+psycopg://postgres@127.0.0.1")


def test_a_tampered_cached_artifact_is_not_served(own_postgres: OwnPostgres, split_workspace: Path) -> None:
    serve_once(split_workspace)
    cache = routing_cache.read(split_workspace / ".pitstop" / "serving-cache")
    assert cache is not None
    artifact = split_workspace / ".pitstop" / "artifacts" / cache.models[0].champion.artifact_uri
    own_postgres.stop()
    artifact.write_bytes(artifact.read_bytes() + b"tampered")
    refused = pytest.raises(StoreUnavailableError, match="no cached champion could be loaded")
    with Workspace(split_workspace, service=True) as ws, refused:
        asyncio.run(Gateway(ws, settings=quick(ws)).start())


def test_pitstop_serve_starts_from_the_cache_while_the_store_is_down(
    own_postgres: OwnPostgres, split_workspace: Path
) -> None:
    serve_once(split_workspace)
    own_postgres.stop()
    port = free_port()
    command = [sys.executable, "-m", "pitstop", "serve", "-w", str(split_workspace), "--port", str(port)]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen(command, env=environment, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        try:
            return predict(base, "u1", "serve-1").status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(answers, timeout=60, interval=0.2)
        body = predict(base, "u2", "serve-2").json()
        assert body["model_version"] == 1
        ready = httpx.get(f"{base}/readyz", timeout=10).json()
        assert ready["models"] == [MODEL]
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=60)
    assert "starting from the routing cache" in stderr
    assert json.loads((split_workspace / ".pitstop" / "serving-cache" / "routing.json").read_text())["models"]


def served_counts(url: str) -> dict[str, int]:
    """How many served records the store holds per request id of the steady stream."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT request_id, count(*) FROM predictions"
                    " WHERE request_id LIKE 'steady-%' AND role = 'served' GROUP BY request_id"
                )
            )
            return {str(request_id): int(n) for request_id, n in rows}
    finally:
        engine.dispose()


def test_an_outage_under_load_loses_no_prediction_record(
    own_postgres: OwnPostgres, split_workspace: Path
) -> None:
    """The store stops for ~10 s under a steady stream: every request is answered, the records wait in
    the spool, and once the store is back each answered request is stored exactly once."""
    with Workspace(split_workspace, service=True) as ws:
        gateway = Gateway(ws, settings=quick(ws).model_copy(update={"log_batch_size": 100}))
        with running(create_app(gateway, api_token="s3cret")) as base:
            traffic = Traffic([base], MODEL, prefix="steady")
            wait_until(lambda: len(traffic.predictions) >= 50, timeout=30)
            own_postgres.stop()
            stopped = time.monotonic()
            wait_until(lambda: gateway.log.spool_size.files >= 2, timeout=30)

            ready = httpx.get(f"{base}/readyz", timeout=10)
            assert ready.status_code == 200  # the champion serves: stays in rotation
            assert ready.json()["status"] == "degraded"
            assert any("spooled on disk" in reason for reason in ready.json()["degraded"])
            health = httpx.get(f"{base}/v1/health", timeout=10).json()
            assert (
                health["store"]["status"] == "unreachable" or health["prediction_log"]["status"] == "failing"
            )
            assert health["prediction_log"]["spool"]["files"] >= 2
            labels = httpx.post(
                f"{base}/v1/models/{MODEL}/labels",
                json={"labels": [{"request_id": "steady-1", "label": 1.0}]},
                headers={"Authorization": "Bearer s3cret"},
                timeout=30,
            )
            assert labels.status_code == 503 and labels.headers["Retry-After"] == "5"
            assert labels.json()["error"] == "store_unavailable"

            time.sleep(max(0.0, 10 - (time.monotonic() - stopped)))  # an outage of about ten seconds
            own_postgres.start()
            wait_until(lambda: gateway.log.healthy and gateway.log.spool_size.files == 0, timeout=60)
            answers = traffic.stop()
            wait_until(lambda: len(served_counts(own_postgres.url)) >= len(answers), timeout=60)
            metrics = httpx.get(f"{base}/metrics", timeout=10).text

    assert [status for _, status in answers] == [200] * len(answers)
    counts = served_counts(own_postgres.url)
    assert set(counts) == {request_id for request_id, _ in answers}
    assert set(counts.values()) == {1}  # exactly once: nothing lost, nothing written twice
    assert not list((split_workspace / ".pitstop" / "spool" / "predictions").glob("*.jsonl"))
    spooled = next(line for line in metrics.splitlines() if line.startswith("pitstop_predlog_spooled_total"))
    assert float(spooled.split()[-1]) > 0


def test_records_a_gateway_spooled_before_it_stopped_are_written_by_the_next_one(
    own_postgres: OwnPostgres, split_workspace: Path
) -> None:
    spool = split_workspace / ".pitstop" / "spool" / "predictions"
    with Workspace(split_workspace, service=True) as ws:
        gateway = Gateway(ws, settings=quick(ws))
        with running(create_app(gateway)) as base:
            own_postgres.stop()
            answers = [predict(base, f"u{i}", f"spooled-{i}") for i in range(30)]
        # stopped while the store is down: what it could not write is on disk
    assert [a.status_code for a in answers] == [200] * 30
    assert list(spool.glob("*.jsonl"))
    own_postgres.start()
    with Workspace(split_workspace, service=True) as ws:
        gateway = Gateway(ws, settings=quick(ws))
        with running(create_app(gateway)):
            wait_until(lambda: len(logged(own_postgres.url, "spooled-")) >= 30, timeout=60)
            wait_until(lambda: not list(spool.glob("*.jsonl")), timeout=30)
    assert len(logged(own_postgres.url, "spooled-")) == 30  # each once
