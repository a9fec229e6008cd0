"""Serving fixtures: a workspace with a served model, fake challengers, and a real uvicorn on loopback."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import joblib
import pandas as pd
import pytest
import uvicorn

from helpers import fit_regression_artifact, write_regression_csv
from pitstop.config import ServingSettings
from pitstop.http.app import create_app
from pitstop.http.auth import Access
from pitstop.serving import Gateway
from pitstop.workspace import Workspace
from serving import fake_models

MODEL = "eta"


class Served:
    """A workspace whose model `eta` has champion v1 and an equally good v2 to use as challenger."""

    def __init__(self, ws: Workspace, folder: Path) -> None:
        self.ws, self.folder = ws, folder
        self.csv = folder / "train.csv"
        self.base = joblib.load(folder / "v1.joblib")

    def register(self, model: Any, name: str, *, skip_check: str | None = None) -> int:
        """Register a model object (e.g. a fake) as the next version; returns its number."""
        path = self.folder / f"{name}.joblib"
        joblib.dump(model, path)
        return self.ws.register(MODEL, path, train_data="train", skip_check=skip_check).version

    def fake(self, kind: str, **kwargs: Any) -> int:
        """A misbehaving model (slow, raising, NaN…): registered without the door check, which would
        refuse most of them; these tests are about what serving does with them."""
        cls = getattr(fake_models, kind)
        return self.register(cls(self.base, **kwargs), kind, skip_check="a fake that misbehaves on purpose")

    def expected(self, rows: list[dict[str, float]]) -> list[float]:
        frame = pd.DataFrame(rows, columns=["a", "b"])
        return [float(v) for v in self.base.predict(frame)]


@pytest.fixture
def served(workspace: Workspace, tmp_path: Path) -> Served:
    csv = write_regression_csv(tmp_path / "train.csv")
    workspace.add_dataset("train", csv, time_column="time")
    workspace.create_model(
        MODEL, task="regression", target="y", features="all", time_column="time", id_columns=["user_id"]
    )
    workspace.register(MODEL, fit_regression_artifact(csv, tmp_path / "v1.joblib"), train_data="train")
    csv2 = write_regression_csv(tmp_path / "train2.csv", seed=1)
    workspace.register(MODEL, fit_regression_artifact(csv2, tmp_path / "v2.joblib"), train_data="train")
    workspace.set_champion(MODEL, 1, reason="bootstrap")
    return Served(workspace, tmp_path)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running(app: Any, *, timeout: float = 20.0, root_path: str = "") -> Iterator[str]:
    """Serve `app` with a real uvicorn on 127.0.0.1 in a thread (behind a proxy's `root_path`, if
    given: `uvicorn --root-path`); yields its base URL; always shuts down."""
    config = uvicorn.Config(
        app,
        root_path=root_path,
        host="127.0.0.1",
        port=free_port(),
        loop="asyncio",
        http="httptools",
        ws="none",
        lifespan="on",
        log_level="warning",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(timeout)
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout)


@contextmanager
def process_answering(
    command: list[str],
    *,
    log: Path,
    ready_url: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 90.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start `command` (output to `log`; this environment unless `env`) and wait, bounded, until
    `ready_url` answers 200; always stops it."""
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    try:
        wait_until(lambda: answers(ready_url) or process.poll() is not None, timeout=timeout, interval=0.25)
        assert process.poll() is None, log.read_text()[-2000:]
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until(predicate: Any, timeout: float = 10.0, interval: float = 0.02) -> None:
    """Poll `predicate` until true, failing after `timeout` seconds (a bound, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


async def async_wait_until(predicate: Any, timeout: float = 10.0, interval: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


ROW = {"a": 0.5, "b": -1.0}  # one row of the served model's features


def settings(**changes: Any) -> ServingSettings:
    base = {
        "poll_interval": "50ms",
        "shadow_timeout": "300ms",
        "log_flush_interval": "50ms",
        "batch_max_wait": "1ms",
    }
    return ServingSettings.model_validate({**base, **changes})


@contextmanager
def serving(
    served: Served, *, api_token: str | None = None, access: Access | None = None, **changes: Any
) -> Iterator[httpx.Client]:
    gateway = Gateway(served.ws, settings=settings(**changes))
    with (
        running(create_app(gateway, api_token=api_token, access=access)) as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        yield client
