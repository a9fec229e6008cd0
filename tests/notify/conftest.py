"""A real receiver on loopback (`http.server` on a thread), and a workspace whose pitstop.yaml sends to it."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import joblib
import pandas as pd
import pytest
import yaml
from sklearn.linear_model import LinearRegression

from helpers import write_regression_csv
from pitstop.clock import ManualClock
from pitstop.workspace import Workspace

START = datetime(2026, 3, 1, tzinfo=UTC)
SECRET = "whsec-test-0123456789"
SECRET_ENV = "PITSTOP_TEST_WEBHOOK_SECRET"


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1: records every request; answers `statuses` in turn, then 200."""

    port: int
    statuses: list[int] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)  # sent with every answer
    requests: list[Received] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None
    arrived: threading.Condition = field(default_factory=threading.Condition)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.arrived:
                    receiver.requests.append(Received(self.path, dict(self.headers.items()), body))
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.arrived.notify_all()
                self.send_response(status)
                for name, value in receiver.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok" if status < 300 else b"no")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        """The requests once at least `count` have arrived (bounded: fails after `timeout` seconds)."""
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.requests) >= count, timeout), (
                f"{len(self.requests)} request(s) arrived, {count} expected"
            )
            return list(self.requests)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A receiver that is up."""
    up = Receiver(free_port())
    up.start()
    yield up
    up.stop()


@pytest.fixture
def down_receiver() -> Iterator[Receiver]:
    """A receiver whose port is closed until the test calls `start()`."""
    down = Receiver(free_port())
    yield down
    down.stop()


def cloudevents_receiver(receiver: Receiver, **extra: Any) -> dict[str, Any]:
    return {"name": "hooks", "url": receiver.url, "secret_env": SECRET_ENV, **extra}


NotifyWorkspace = Callable[..., Workspace]


@pytest.fixture
def notify_ws(
    workspace_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[NotifyWorkspace]:
    """`make(receivers, **settings)`: model `eta` with v1 champion and v2, notifications as given, a
    manual clock, the webhook secret in the environment."""
    monkeypatch.setenv(SECRET_ENV, SECRET)
    opened: list[Workspace] = []

    def make(receivers: list[dict[str, Any]], **settings: Any) -> Workspace:
        config = {"notifications": {"receivers": receivers, **settings}}
        (workspace_dir / "pitstop.yaml").write_text(yaml.safe_dump(config))
        ws = Workspace(workspace_dir, clock=ManualClock(START))
        opened.append(ws)
        csv = write_regression_csv(tmp_path / "train.csv", rows=100)
        ws.add_dataset("train", csv, time_column="time")
        ws.create_model("eta", task="regression", target="y", features="all", time_column="time")
        frame = pd.read_csv(csv)
        for version, intercept in ((1, False), (2, True)):
            path = tmp_path / f"v{version}.joblib"
            joblib.dump(LinearRegression(fit_intercept=intercept).fit(frame[["a", "b"]], frame["y"]), path)
            ws.register("eta", path, train_data="train", skip_check="no need to load it in a fresh process")
        ws.set_champion("eta", 1, reason="bootstrap")
        return ws

    yield make
    for ws in opened:
        ws.close()
