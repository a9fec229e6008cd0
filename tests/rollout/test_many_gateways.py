"""End to end with many processes (issue 21): 4 `pitstop serve` gateways and 2 `pitstop controller`
processes on a PostgreSQL server the test starts itself, traffic and labels over HTTP. Mid-ramp the
controller holding the lease is killed with SIGKILL and the store is restarted; the rollout still ends
promoted, each transition recorded once, no prediction failed, every answered request logged exactly
once, and every logged record agrees with the routing table of the version that served it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import joblib
import pandas as pd
import pytest
import sqlalchemy as sa
from sklearn.linear_model import LinearRegression

from helpers import OffsetModel, write_regression_csv
from pitstop import registry
from pitstop.http.auth import ALLOW_ENV, LABELS_ENV, LEGACY_ENV, OPERATOR_ENV, PREDICT_ENV
from pitstop.rollout import lease
from pitstop.store.tables import predictions
from pitstop.workspace import Workspace
from routing_consistency import assert_served_as_routed
from serving.conftest import free_port
from serving.own_postgres import OwnPostgres
from traffic import Traffic

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

MODEL = "eta"
GATEWAYS = 4
POLICY = """
shadow: {min_duration: 2s, max_duration: 10m, min_labeled: 60}
ab_test: {share: 0.5, min_duration: 2s, max_duration: 10m, label_maturation: 0s, tau: 0.2}
guardrails: {min_samples: 40}
ramp: {steps: [75, 100], dwell: 2s, min_labeled_per_arm: 40, standby: 1h}
controller: {interval: 300ms, lease_ttl: 2s}
serving: {poll_interval: 200ms, heartbeat_interval: 500ms, log_flush_interval: 100ms, shadow_process: false}
"""
TESTS = Path(__file__).resolve().parents[1]
TOKEN_PREFIXES = (ALLOW_ENV, LABELS_ENV, LEGACY_ENV, OPERATOR_ENV, PREDICT_ENV)  # the caller's own: not ours
LABELS_TOKEN = "many-gateways-labels"


class NotYet(Exception):
    """A predicate's reason it is not true yet, shown if the wait runs out."""


def wait_for(what: str, predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> None:
    """Poll `predicate` until true; fail naming `what` after `timeout` seconds (a bound, not a timing
    assertion). A predicate raising (the store restarting under it) counts as not yet."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        try:
            if predicate():
                return
        except (NotYet, sa.exc.SQLAlchemyError, httpx.HTTPError, OSError) as error:
            last = f" (last: {type(error).__name__}: {error})"
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:g}s{last}")
        time.sleep(interval)


@dataclass
class Fleet:
    """The test's processes, each logging to a file of its own; `close()` ends every one, even on failure."""

    folder: Path
    env: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with (self.folder / f"{name}.log").open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "pitstop", *args], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        self.processes[name] = process
        return process

    def check_alive(self, *names: str) -> None:
        for name in names:
            code = self.processes[name].poll()
            assert code is None, f"{name} exited ({code}): {self.log(name)}"

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")[-3000:]

    def close(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)


def make_workspace(folder: Path) -> Workspace:
    """`eta` with a stale champion v1 (every prediction off by 1) and an exact challenger v2, the short
    policy."""
    data = folder / "data"
    data.mkdir()
    Workspace.init(folder / "ws").close()
    (folder / "ws" / "pitstop.yaml").write_text(POLICY)
    ws = Workspace(folder / "ws")
    csv = write_regression_csv(data / "train.csv", rows=300)
    ws.add_dataset("train", csv, time_column="time")
    ws.create_model(
        MODEL, task="regression", target="y", features="all", time_column="time", id_columns=["user_id"]
    )
    frame = pd.read_csv(csv)
    base = LinearRegression().fit(frame[["a", "b"]], frame["y"])
    for offset in (1.0, 0.0):
        joblib.dump(OffsetModel(base, offset), data / f"m{offset}.joblib")
        ws.register(MODEL, data / f"m{offset}.joblib", train_data="train")
    ws.set_champion(MODEL, 1, reason="bootstrap")
    return ws


def served_per_request(ws: Workspace, model: str) -> Counter[str]:
    """How many served records each request id of `model` has in the log."""
    with ws.reading() as conn:
        info = registry.get_model(conn, model)
        ids = conn.execute(
            sa.select(predictions.c.request_id).where(
                predictions.c.model_id == info.id, predictions.c.role == "served"
            )
        ).scalars()
        return Counter(ids)


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    server = OwnPostgres()
    try:
        server.start()
        yield server
    finally:
        server.close()


# Six processes import pitstop at once: 3-5 minutes in all on the shared 2-core machine at load 17-21.
@pytest.mark.timeout(900)
def test_a_rollout_survives_a_killed_leader_and_a_store_restart_across_four_gateways(
    own_postgres: OwnPostgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Any
) -> None:
    monkeypatch.setenv("PITSTOP_DATABASE_URL", own_postgres.url)
    monkeypatch.delenv("PITSTOP_WORKSPACE", raising=False)
    ws = make_workspace(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(TOKEN_PREFIXES)}
    # the processes run this checkout's src, and unpickle the test's OffsetModel from tests/helpers.py
    env.update(
        {
            "PITSTOP_DATABASE_URL": own_postgres.url,
            "PYTHONPATH": os.pathsep.join((str(TESTS.parent / "src"), str(TESTS))),
            LABELS_ENV: LABELS_TOKEN,
        }
    )
    fleet = Fleet(tmp_path, env)
    ports = [free_port() for _ in range(GATEWAYS)]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    gateways = [f"gateway-{i}" for i in range(GATEWAYS)]
    controllers = ["controller-0", "controller-1"]
    traffic: Traffic | None = None
    try:
        for name, port in zip(gateways, ports, strict=True):
            fleet.start(name, "serve", "-w", str(ws.path), "--port", str(port), "--log-level", "warning")
        pids = {fleet.start(name, "controller", "-w", str(ws.path)).pid: name for name in controllers}

        def all_ready() -> bool:
            fleet.check_alive(*gateways, *controllers)
            answers = [httpx.get(f"{base}/readyz", timeout=2) for base in bases]
            if any(a.status_code != 200 for a in answers):
                raise NotYet([a.text for a in answers])
            return True

        wait_for("every gateway ready", all_ready, timeout=240, interval=0.3)
        started = ws.start_rollout(MODEL, 2, skip_gate=True, reason="many gateways")

        def all_shadowing() -> bool:  # from here on every request has a routing table to agree with
            routing = [httpx.get(f"{base}/v1/models/{MODEL}/routing", timeout=5).json() for base in bases]
            return all(r["version"] == started.state.phase_routing_version for r in routing)

        wait_for("every gateway serving the rollout's routing", all_shadowing, timeout=60)
        traffic = Traffic(bases, MODEL, prefix="e2e", users=300, labels_token=LABELS_TOKEN)

        def state() -> Any:
            return ws.rollouts(MODEL)[-1].state

        wait_for("the ramp reached", lambda: state().phase.value == "ramp", timeout=90)
        assert state().outcome is None
        with ws.reading() as conn:
            holder = lease.current_holder(conn, ws.clock.now())
        assert holder is not None
        leader = pids[int(holder.split(":")[1])]
        fleet.processes[leader].send_signal(signal.SIGKILL)
        fleet.processes[leader].wait(timeout=30)
        survivor = next(name for name in controllers if name != leader)

        def survivor_leads() -> bool:
            with ws.reading() as conn:
                now_holder = lease.current_holder(conn, ws.clock.now())
            return now_holder is not None and pids[int(now_holder.split(":")[1])] == survivor

        wait_for("the other controller taking the lease", survivor_leads, timeout=30)
        assert state().outcome is None  # still mid-rollout: the store restarts under it
        own_postgres.stop()
        time.sleep(3)
        own_postgres.start()
        wait_for("the rollout ending", lambda: state().outcome is not None, timeout=120, interval=0.2)
        traffic.stop()
        fleet.check_alive(*gateways, survivor)

        final = state()
        assert final.outcome is not None and final.outcome.value == "promoted", ws.rollout_status(
            MODEL
        ).to_dict()
        answered = [request_id for request_id, status in traffic.predictions if status == 200]
        assert [status for _, status in traffic.predictions] == [200] * len(traffic.predictions)
        # labels are refused only while the store is down (503), and each refused batch is sent again
        assert set(traffic.label_statuses) <= {200, 503}
        wait_for(
            "every answered request logged",
            lambda: len(served_per_request(ws, MODEL)) >= len(answered),
            timeout=60,
            interval=0.5,
        )
        assert_served_as_routed(ws, MODEL)  # every record as its routing version's table assigns
        served = served_per_request(ws, MODEL)
        assert set(served) == set(answered) and set(served.values()) == {1}  # exactly once

        history = cli("rollout", "history", MODEL, "-w", ws.path, "--json")
        assert history.exit_code == 0, history.stderr
        rollout_id = final.id
        moves = [
            (event["from_state"], event["to_state"])
            for event in json.loads(history.stdout)
            if event["kind"] == "rollout_transition" and event["rollout_id"] == rollout_id
        ]
        assert moves == [  # each transition once: none lost, none applied twice by the two controllers
            ("gate", "shadow"),
            ("shadow", "ab_test 50%"),
            ("ab_test 50%", "ramp 75%"),
            ("ramp 75%", "ramp 100%"),
            ("ramp 100%", "promoted"),
        ]
    finally:
        if traffic is not None:
            traffic.stop()
        fleet.close()
        ws.close()
