"""`pitstop serve` as a real process: SIGTERM flushes the log; every worker follows a routing change.

These start real server processes, so each runs once: on PostgreSQL when configured (the store
recommended for several processes), else on SQLite.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import yaml

from conftest import PG_ENV  # type: ignore[attr-defined]
from helpers import fresh_postgres_schema
from pitstop.http.auth import Access, describe_access, exposure_warnings
from pitstop.rollout.routes import route
from pitstop.store.tables import predictions
from serving.conftest import MODEL, Served, free_port, wait_until

# The real CLI with `serve` registered (a no-op once pitstop.cli wires it in itself).
CLI = """
import sys, typer.main
from pitstop.cli import app, main, serve
if "serve" not in typer.main.get_command(app).commands:
    serve.register(app)
main(sys.argv[1:])
"""
# What `pitstop serve` runs, without importing every CLI command first (a faster start for N workers).
RUN = """
import sys
from pathlib import Path
from pitstop.http.server import run
run(Path(sys.argv[1]), port=int(sys.argv[2]), workers=int(sys.argv[3]), log_level="warning")
"""


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """One store per test here: PostgreSQL when configured, else SQLite."""
    if os.environ.get(PG_ENV):
        yield from fresh_postgres_schema(os.environ[PG_ENV])
    else:
        yield f"sqlite:///{tmp_path / 'store' / 'pitstop.db'}"


def configure(served: Served, **serving: object) -> None:
    path = served.ws.path / "pitstop.yaml"
    config = yaml.safe_load(path.read_text()) or {}
    config.setdefault("serving", {}).update(serving)
    path.write_text(yaml.safe_dump(config))


@pytest.fixture
def start(served: Served) -> Iterator[object]:
    processes: list[subprocess.Popen[str]] = []

    def launch(workers: int = 0) -> tuple[subprocess.Popen[str], str]:
        port = free_port()
        command = [sys.executable, "-c", CLI, "serve", "-w", str(served.ws.path), "--port", str(port)]
        if workers:
            command = [sys.executable, "-c", RUN, str(served.ws.path), str(port), str(workers)]
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        processes.append(process)
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _ready(url) or process.poll() is not None, timeout=60, interval=0.1)
        assert process.poll() is None, process.communicate()[1]
        return process, url

    yield launch
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)  # the server and its workers
        process.communicate(timeout=30)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def served_records(served: Served) -> int:
    with served.ws.reading() as conn:
        query = sa.select(sa.func.count()).select_from(predictions).where(predictions.c.role == "served")
        return int(conn.execute(query).scalar_one())


def test_sigterm_flushes_the_prediction_log_before_exit(served: Served, start) -> None:  # type: ignore[no-untyped-def]
    configure(served, log_flush_interval="1h", log_batch_size=100_000)
    process, url = start()
    with httpx.Client(base_url=url) as client:
        for i in range(30):
            assert (
                client.post(f"/v1/models/{MODEL}/predict", json={"features": {"a": i, "b": 1}}).status_code
                == 200
            )
    assert served_records(served) == 0  # still queued: the next write is an hour away
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once done
    assert served_records(served) == 30


def test_the_server_log_says_when_it_switches_routing(served: Served, start) -> None:  # type: ignore[no-untyped-def]
    """pitstop's own log lines (routing switches, shadow circuits) went nowhere under uvicorn: only
    uvicorn's loggers had a handler, so a new user saw nothing when the routing changed."""
    configure(served, poll_interval="200ms")
    process, url = start()
    table = route(served.ws, MODEL, mode="shadow", challenger=2, reason="look at v2")

    def routing_version() -> int:
        return int(httpx.get(f"{url}/v1/models/{MODEL}/routing").json()["version"])

    # The shadow's idle-priority process must start and warm first: on a busy machine it waits for
    # spare CPU, so the bound is generous (not a timing assertion).
    wait_until(lambda: routing_version() == table.version, timeout=60)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert f"eta: routing #{table.version} shadow (champion v1)" in stderr, stderr


def test_every_worker_follows_a_routing_change_and_metrics_add_up(served: Served, start) -> None:  # type: ignore[no-untyped-def]
    configure(served, poll_interval="200ms")
    process, url = start(workers=2)
    body = {"features": {"a": 1, "b": 1}, "user_id": "u1"}

    def versions_by_worker() -> dict[str, float]:
        text = httpx.get(f"{url}/metrics").text
        found = re.findall(r'pitstop_routing_version\{model="eta",pid="(\d+)"\} ([0-9.]+)', text)
        return {pid: float(value) for pid, value in found}

    wait_until(lambda: len(versions_by_worker()) == 2, timeout=30, interval=0.1)
    table = route(served.ws, MODEL, mode="split", challenger=2, share=1.0, reason="all users to v2")
    wait_until(lambda: set(versions_by_worker().values()) == {float(table.version)}, timeout=10)
    answers = []
    for _ in range(20):  # fresh connections, so both workers answer some
        answers.append(httpx.post(f"{url}/v1/models/{MODEL}/predict", json=body).json()["model_version"])
    assert set(answers) == {2}
    text = httpx.get(f"{url}/metrics").text
    total = sum(
        float(v) for v in re.findall(r'pitstop_predictions_total\{[^}]*role="served"[^}]*\} ([0-9.]+)', text)
    )
    assert total == 20
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once done
    assert served_records(served) == 20


def test_serve_warns_when_predict_is_exposed_and_refuses_unconfigured_writes() -> None:
    tokens = Access(operator="s3cret")
    for host in ("127.0.0.1", "localhost", "::1"):
        assert exposure_warnings(tokens, host) == []
    for host in ("0.0.0.0", "gateway.internal"):
        (warning,) = exposure_warnings(tokens, host)
        assert "predict is open" in warning and "PITSTOP_PREDICT_TOKEN" in warning
    assert exposure_warnings(Access(operator="s3cret", predict="p"), "0.0.0.0") == []
    assert "refused (no token: set PITSTOP_OPERATOR_TOKEN)" in describe_access(Access())


def test_serve_refuses_the_local_opt_in_beyond_loopback(
    served: Served, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PITSTOP_ALLOW_UNAUTHENTICATED", "1")
    result = cli("serve", "-w", str(served.ws.path), "--host", "0.0.0.0", "--port", str(free_port()))
    assert result.exit_code == 2
    assert "loopback" in result.stderr
