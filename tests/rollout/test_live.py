"""End to end, live: real processes on loopback, traffic and labels over HTTP, a policy whose durations
are seconds. One run (`pitstop serve --controller`, the controller inside the gateway) is promoted;
another (`pitstop serve` and `pitstop controller`, two processes sharing the store) is rolled back
automatically. No request fails in either."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pitstop.http.auth import ALLOW_ENV, LABELS_ENV, LEGACY_ENV, OPERATOR_ENV, PREDICT_ENV
from pitstop.workspace import Workspace

pytestmark = pytest.mark.slow

LIVE_POLICY = """
shadow: {min_duration: 2s, max_duration: 2m, min_labeled: 60}
ab_test: {share: 0.5, min_duration: 2s, max_duration: 2m, label_maturation: 0s, tau: 0.2}
guardrails: {min_samples: 40}
ramp: {steps: [50, 100], dwell: 2s, min_labeled_per_arm: 40, standby: 1h}
controller: {interval: 300ms, lease_ttl: 5s}
serving: {poll_interval: 200ms}
"""
TESTS = Path(__file__).resolve().parents[1]
TOKEN_PREFIXES = (ALLOW_ENV, LABELS_ENV, LEGACY_ENV, OPERATOR_ENV, PREDICT_ENV)  # the caller's own: not ours
LABELS_TOKEN = "live-labels-token"
LABELS_AUTH = {"Authorization": f"Bearer {LABELS_TOKEN}"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pitstop(ws: Workspace, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pitstop", *args, "-w", str(ws.path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.fixture(params=["in_gateway"])
def live(
    rollout_ws: Workspace, database_url: str, request: pytest.FixtureRequest
) -> Iterator[tuple[Workspace, str]]:
    """The gateway with its controller (inside it, or `separate`: a process of its own), serving
    `rollout_ws`."""
    policy = rollout_ws.path / "pitstop.yaml"
    policy.write_text(LIVE_POLICY)
    ws = Workspace(rollout_ws.path)  # the real clock, like the server's
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(TOKEN_PREFIXES)}
    # the servers run the code under test (this checkout's src), not whichever pitstop the venv installed
    path = os.pathsep.join((str(TESTS.parent / "src"), str(TESTS)))
    env.update({"PITSTOP_DATABASE_URL": database_url, "PYTHONPATH": path, LABELS_ENV: LABELS_TOKEN})
    separate = request.param == "separate"
    serve = ["serve", "--port", str(port), "--log-level", "warning"]
    processes = [_pitstop(ws, env, *serve, *([] if separate else ["--controller"]))]
    if separate:
        processes.append(_pitstop(ws, env, "controller"))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            for process in processes:
                assert process.poll() is None, process.stdout.read() if process.stdout else ""
            time.sleep(0.2)
        else:
            pytest.fail("the gateway did not become ready within 60 s")
        yield ws, base
        for process in processes:  # both lived through the whole run
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
    finally:
        for process in processes:
            process.terminate()
            process.communicate(timeout=30)  # reaps the process and closes its output pipe
        ws.close()


def _drive(ws: Workspace, base: str, *, seconds: float) -> tuple[list[int], set[int]]:
    """Send predictions and their labels until the rollout ends (or `seconds` pass)."""
    rng = random.Random(0)
    statuses: list[int] = []
    versions: set[int] = set()
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=base, timeout=10) as client:
        while time.monotonic() < deadline:
            batch = []
            for _ in range(20):
                a, b = rng.gauss(0, 1), rng.gauss(0, 1)
                reply = client.post(
                    "/v1/models/eta/predict",
                    json={"features": {"a": a, "b": b}, "user_id": f"u{rng.randrange(300)}"},
                )
                statuses.append(reply.status_code)
                if reply.status_code == 200:
                    body = reply.json()
                    versions.add(body["model_version"])
                    batch.append(
                        {"request_id": body["request_id"], "label": 3 * a - 2 * b + rng.gauss(0, 0.5)}
                    )
            labelled = client.post("/v1/models/eta/labels", json={"labels": batch}, headers=LABELS_AUTH)
            assert labelled.status_code == 200, labelled.text
            if ws.rollouts("eta")[-1].state.outcome is not None:
                break
    return statuses, versions


def test_a_good_challenger_is_promoted_live(live: tuple[Workspace, str]) -> None:
    ws, base = live
    ws.start_rollout("eta", 2, skip_gate=True, reason="live test")
    statuses, versions = _drive(ws, base, seconds=120)
    final = ws.rollouts("eta")[-1].state
    assert final.outcome is not None and final.outcome.value == "promoted", ws.rollout_status("eta").to_dict()
    assert set(statuses) == {200}
    assert versions == {1, 2}
    with httpx.Client(base_url=base) as client:  # the gateway follows within its poll interval
        deadline = time.monotonic() + 10
        while client.get("/v1/models/eta/routing").json()["champion"] != 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        answer = client.post(
            "/v1/models/eta/predict", json={"features": {"a": 0.0, "b": 0.0}, "user_id": "x"}
        )
    assert answer.json()["model_version"] == 2


@pytest.mark.parametrize("live", ["separate"], indirect=True)
def test_a_harmful_challenger_is_rolled_back_automatically_live(live: tuple[Workspace, str]) -> None:
    ws, base = live
    ws.start_rollout("eta", 3, skip_gate=True, reason="live test")
    for _ in range(2):  # straight to the ramp: only the guardrails stand between users and this model
        ws.promote(
            "eta", reason="skip shadow and A/B on purpose: the guardrails must catch it", actor="tester"
        )
    assert ws.rollouts("eta")[-1].state.phase.value == "ramp"
    statuses, _ = _drive(ws, base, seconds=120)
    final = ws.rollouts("eta")[-1].state
    assert final.outcome is not None and final.outcome.value == "rolled_back", ws.rollout_status(
        "eta"
    ).to_dict()
    last = [e for e in ws.events("eta") if e.kind == "rollout_transition"][-1]
    assert (last.actor, last.rule) == ("controller", "guardrail.error_ratio")
    assert set(statuses) == {200}
    assert ws.model("eta").aliases["champion"] == 1
