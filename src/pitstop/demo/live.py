"""`pitstop demo --live`: the story over real HTTP, on the real clock, in a few minutes.

A gateway with its controller runs as a real process on 127.0.0.1 (a free port) with a policy whose
durations are seconds. A bounded load generator sends predictions and, a few seconds later, their labels;
a progress bar per challenger shows its phase, its share of users and the requests sent. One challenger
goes through shadow, A/B test and ramp to promotion; then one whose feature service cannot keep up with
more than a sliver of traffic is rolled back automatically. Every process started here is stopped; the
reports are written. The workspace is a normal one (see `pitstop.demo.folder`): `pitstop … -w DIR`
opens it afterwards.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import socket
import subprocess
import sys
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from pitstop.demo.data import FEATURES
from pitstop.demo.folder import DATABASE_ENV, demo_workspace, show_workspace
from pitstop.demo.story import MODEL, Challenger, World, build_world, train_and_gate
from pitstop.demo.traffic import live_traffic
from pitstop.errors import PitstopError
from pitstop.events import EventKind
from pitstop.http.auth import ALLOW_ENV, FILE_SUFFIX, LABELS_ENV, LEGACY_ENV, OPERATOR_ENV, PREDICT_ENV
from pitstop.rollout.state import challenger_share
from pitstop.serving.remote import KEEPALIVE_SECONDS
from pitstop.workspace import Workspace

LIVE_POLICY = """\
# pitstop demo --live: the shipped thresholds, durations in seconds.
shadow: {min_duration: 15s, max_duration: 3m, min_labeled: 200}
# start_unwinnable: the rate-limited challenger predicts exactly as the fresh retrain it follows, so no
# A/B test could show it better (ab.unwinnable would keep it from users); the demo starts it anyway to
# show what only users' traffic reveals: its feature service cannot keep up, and the guardrail acts.
# label_maturation: each label arrives 2-4 s after its answer and is posted within 0.5 s, so at 5 s every
# label is in (at 3 s the label-coverage health check warned at the start of every rollout).
ab_test: {share: 0.25, min_duration: 15s, max_duration: 3m, label_maturation: 5s, start_unwinnable: true}
guardrails: {min_samples: 100, latency_slack: 20ms}  # one machine serves and loads itself: noisy timings
ramp: {dwell: 15s, min_labeled_per_arm: 100, standby: 10m}
controller: {interval: 1s, lease_ttl: 10s}
serving: {poll_interval: 500ms, shadow_sample: 0.05}
"""
CLIENTS = 8  # concurrent connections of the load generator
# The load aims at this rate; a busy machine may reach less. The rate-limited lookup is sized from the
# rate the first rollout actually reached (see `throttled`), so the story does not depend on how fast
# the machine is.
REQUEST_RATE = 200.0
CATCH_UP_SECONDS = 0.05  # after a stall the load resumes at the rate instead of bursting to catch up
LABEL_DELAY_SECONDS = (2.0, 4.0)  # the delivery finishes, then its real duration arrives
ROLLOUT_TIME_LIMIT = 240.0  # seconds of traffic per rollout at most (the policy ends them sooner)
# The throttled feature service keeps up with this share of the traffic: twice the 5 % shadow sample
# (never waits in shadow) and half the 25 % A/B share (queues at once in the A/B test).
LOOKUP_SHARE = 0.125

FRESH = Challenger("fresh retrain", {"max_iter": 200}, expect="better on recent data")


def throttled(requests_per_second: float) -> Challenger:
    """The challenger whose feature service allows `LOOKUP_SHARE` of the traffic's lookups per second."""
    limit = round(LOOKUP_SHARE * requests_per_second, 1)
    return Challenger(
        "rate-limited feature lookup",
        {"max_iter": 200, "lookup_rate": limit},
        expect=f"fast at a sliver of traffic, slow once its feature service is asked for more than "
        f"{limit:g} lookups/s (an eighth of the traffic)",
    )


@dataclass
class LiveResult:
    workspace: Path
    url: str
    rollouts: list[dict[str, Any]] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)
    requests: int = 0
    failed: int = 0
    failures: Counter[str] = field(default_factory=Counter)  # why: "HTTP 500 prediction_failed", …

    def to_dict(self) -> dict[str, Any]:
        return {
            "workspace": str(self.workspace),
            "url": self.url,
            "rollouts": self.rollouts,
            "reports": self.reports,
            "requests": self.requests,
            "failed_requests": self.failed,
            "failures": dict(self.failures),
        }


def run_live_demo(workspace_dir: Path | None, console: Console, out: Path) -> LiveResult:
    ws = demo_workspace(workspace_dir, LIVE_POLICY, temp_prefix="pitstop-live-")
    world = World(datetime.now(UTC).replace(second=0, microsecond=0))
    console.rule("[bold]pitstop demo --live: delivery-eta over real HTTP")
    build_world(ws, world, console)
    with console.status("training and gating the fresh retrain…"):
        fresh, report = train_and_gate(ws, world, FRESH)
    console.print(f"  v{fresh.version} {FRESH.title}: offline gate {'passed' if report.passed else 'failed'}")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    result = LiveResult(workspace=ws.path, url=url)
    traffic = live_traffic(pd.Timestamp(world.now), 1.0, 40_000, seed=21, scenario=world.scenario())
    token = secrets.token_urlsafe(32)  # the load generator's labels token, for this gateway only
    server = _start_gateway(ws, port, token)
    try:
        _wait_ready(url, server)
        console.print(f"gateway with its controller on {url}   dashboard: [bold]{url}/[/]\n")
        first = _live_rollout(ws, url, fresh.version, FRESH, traffic, result, console, token)
        result.rollouts.append(first)
        slow = throttled(first["requests"] / first["seconds"])
        with console.status("training and gating a challenger against the new champion…"):
            version, report = train_and_gate(ws, world, slow)
        verdict = "passed" if report.passed else "failed"
        limit = slow.params["lookup_rate"]
        console.print(
            f"  v{version.version} {slow.title}: offline gate {verdict}; its feature service allows "
            f"{limit:g} lookups/s, an eighth of the traffic"
        )
        result.rollouts.append(_live_rollout(ws, url, version.version, slow, traffic, result, console, token))
    finally:
        _stop(server)
    out.mkdir(parents=True, exist_ok=True)
    from pitstop.report import write_report

    for row in result.rollouts:
        path = out / f"live-rollout-{row['rollout_id']}-v{row['version']}.html"
        result.reports.append(str(write_report(ws, MODEL, path, rollout_id=row["rollout_id"])))
    console.print(f"\n{result.requests} requests over HTTP, {result.failed} failed{_why(result.failures)}")
    for written in result.reports:
        console.print(f"report: {written}")
    show_workspace(console, ws, MODEL)
    ws.close()
    return result


# the caller's own tokens are not the demo gateway's business
TOKEN_VARIABLES = frozenset(
    {ALLOW_ENV}
    | {
        name + suffix
        for name in (LABELS_ENV, LEGACY_ENV, OPERATOR_ENV, PREDICT_ENV)
        for suffix in ("", FILE_SUFFIX)
    }
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_gateway(ws: Workspace, port: int, labels_token: str) -> subprocess.Popen[bytes]:
    """A gateway whose only token is `labels_token`: the demo's load generator writes labels, and
    overrides stay refused (nobody needs them here)."""
    log = (ws.path / "gateway.log").open("wb")
    env = {k: v for k, v in os.environ.items() if k not in TOKEN_VARIABLES}
    env[DATABASE_ENV] = ws.database_url  # the gateway serves the demo's store
    env[LABELS_ENV] = labels_token
    command = [
        sys.executable,
        "-m",
        "pitstop",
        "serve",
        "-w",
        str(ws.path),
        "--port",
        str(port),
        "--controller",
        "--log-level",
        "warning",
    ]
    try:
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    finally:
        log.close()


def _wait_ready(url: str, server: subprocess.Popen[bytes], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise PitstopError(f"the gateway exited with code {server.returncode}; see gateway.log")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise PitstopError(f"the gateway was not ready within {seconds:g} s; see gateway.log")


def _stop(server: subprocess.Popen[bytes]) -> None:
    """SIGTERM (the gateway flushes its prediction log), then wait; kill only if it hangs."""
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def _live_rollout(
    ws: Workspace,
    url: str,
    version: int,
    challenger: Challenger,
    traffic: pd.DataFrame,
    result: LiveResult,
    console: Console,
    labels_token: str,
) -> dict[str, Any]:
    stored = ws.start_rollout(MODEL, version, reason=f"demo --live: {challenger.title}")
    name = f"v{version} {challenger.title}"
    with _progress(console) as progress:
        task = progress.add_task(f"{name}: shadow", total=ROLLOUT_TIME_LIMIT, requests=0, failed=0)
        load = _Load(ws, url, traffic, stored.state.id, _Shown(progress, task, name).update, labels_token)
        asyncio.run(load.run())
    result.requests += load.sent
    result.failed += load.failed
    result.failures.update(load.failures)
    final = ws.rollouts(MODEL)[-1].state
    if final.outcome is None:
        ws.abort(MODEL, reason="demo --live: time limit reached before a decision", actor="demo")
        final = ws.rollouts(MODEL)[-1].state
    last = [
        e
        for e in ws.events(MODEL)
        if e.kind is EventKind.ROLLOUT_TRANSITION and e.rollout_id == stored.state.id
    ][-1]
    outcome = final.outcome.value if final.outcome else "undecided"
    style = "green" if outcome == "promoted" else "red"
    console.print(
        f"  {name:<34} [{style}]{outcome}[/] at {final.stage} ({last.rule}): {final.reason}",
        soft_wrap=True,
    )
    return {
        "challenger": challenger.title,
        "version": version,
        "rollout_id": stored.state.id,
        "outcome": outcome,
        "stage": final.stage,
        "rule": last.rule,
        "reason": final.reason,
        "requests": load.sent,
        "seconds": load.elapsed,
    }


def _progress(console: Console) -> Progress:
    """One bar per rollout: time spent against the demo's limit (the policy usually decides sooner)."""
    limit = timedelta(seconds=int(ROLLOUT_TIME_LIMIT))
    return Progress(
        TextColumn("  {task.description}"),
        BarColumn(bar_width=20),
        TimeElapsedColumn(),
        TextColumn(f"/ {limit}  {{task.fields[requests]}} requests, {{task.fields[failed]}} failed"),
        console=console,
    )


@dataclass(frozen=True)
class _Status:
    """What the load generator sees once a second: the rollout's phase and share, its own counts."""

    elapsed: float
    phase: str  # the phase, or the outcome once decided
    share: float  # of users served by the challenger
    decided: bool
    sent: int
    failed: int

    def describe(self) -> str:
        if self.phase == "ab_test":
            return f"A/B test ({self.share:.0%} of users)"
        if self.phase == "ramp":
            return f"ramp ({self.share:.0%} of users)"
        return self.phase.replace("_", " ")


class _Shown:
    """Moves one rollout's bar and prints a line at each change of phase or share (a record that stays,
    in a terminal or a log file)."""

    def __init__(self, progress: Progress, task: TaskID, name: str) -> None:
        self.progress, self.task, self.name = progress, task, name
        self.last = "shadow"

    def update(self, status: _Status) -> None:
        where = status.describe()
        done = ROLLOUT_TIME_LIMIT if status.decided else status.elapsed
        self.progress.update(
            self.task,
            description=f"{self.name}: {where}",
            completed=done,
            requests=status.sent,
            failed=status.failed,
        )
        if where != self.last:
            self.progress.console.print(
                f"    {status.elapsed:>5.0f} s  {self.last} -> {where}  "
                f"({status.sent} requests, {status.failed} failed)"
            )
            self.last = where


class _Load:
    """A bounded load generator: `CLIENTS` connections holding `REQUEST_RATE`, labels posted a few
    seconds after each answer."""

    def __init__(
        self,
        ws: Workspace,
        url: str,
        traffic: pd.DataFrame,
        rollout_id: int,
        show: Callable[[_Status], None],
        labels_token: str,
    ) -> None:
        self.ws, self.url, self.rollout_id, self.show = ws, url, rollout_id, show
        self.labels_headers = {"Authorization": f"Bearer {labels_token}"}
        self.rows = list(
            zip(traffic[FEATURES].to_dict("records"), traffic["user_id"], traffic["label"], strict=True)
        )
        self.rng = random.Random(rollout_id)
        self.pending: deque[tuple[float, dict[str, Any]]] = deque()
        self.sent = self.failed = 0
        self.failures: Counter[str] = Counter()
        self.due = time.monotonic()  # when the next request is to be sent
        self.done = False
        self.elapsed = 0.0  # seconds the load ran

    async def run(self) -> None:
        deadline = time.monotonic() + ROLLOUT_TIME_LIMIT
        # idle connections closed before the gateway's keep-alive timeout can race a request on one
        limits = httpx.Limits(keepalive_expiry=KEEPALIVE_SECONDS)
        async with httpx.AsyncClient(base_url=self.url, timeout=10, limits=limits) as client:
            workers = [asyncio.create_task(self._client(client, deadline)) for _ in range(CLIENTS)]
            labels = asyncio.create_task(self._labels(client))
            await self._watch(deadline)
            self.done = True
            await asyncio.gather(*workers)
            labels.cancel()
            await asyncio.gather(labels, return_exceptions=True)

    async def _client(self, client: httpx.AsyncClient, deadline: float) -> None:
        while not self.done and time.monotonic() < deadline:
            await asyncio.sleep(self._wait())
            if self.done:
                return
            features, user, label = self.rows[self.sent % len(self.rows)]
            self.sent += 1
            try:
                reply = await client.post(
                    f"/v1/models/{MODEL}/predict", json={"features": features, "user_id": user}
                )
            except httpx.HTTPError as error:
                self._fail(type(error).__name__)
                continue
            if reply.status_code != 200:
                self._fail(f"HTTP {reply.status_code} {_error_code(reply)}")
                continue
            due = time.monotonic() + self.rng.uniform(*LABEL_DELAY_SECONDS)
            self.pending.append((due, {"request_id": reply.json()["request_id"], "label": float(label)}))

    def _fail(self, why: str) -> None:
        self.failed += 1
        self.failures[why] += 1

    def _wait(self) -> float:
        """Seconds until this client's next request: one every 1/`REQUEST_RATE` s over all clients."""
        now = time.monotonic()
        self.due = max(self.due, now - CATCH_UP_SECONDS) + 1 / REQUEST_RATE
        return max(0.0, self.due - now)

    async def _labels(self, client: httpx.AsyncClient) -> None:
        while True:
            await asyncio.sleep(0.5)
            now = time.monotonic()
            due = []
            while self.pending and self.pending[0][0] <= now:
                due.append(self.pending.popleft()[1])
            if due:
                await client.post(
                    f"/v1/models/{MODEL}/labels", json={"labels": due}, headers=self.labels_headers
                )

    async def _watch(self, deadline: float) -> None:
        began = time.monotonic()
        while time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            self.elapsed = time.monotonic() - began
            stored = (await asyncio.to_thread(self.ws.rollouts, MODEL))[-1]
            state, share = stored.state, challenger_share(stored.state, stored.policy)
            where = state.outcome.value if state.outcome else state.phase.value
            decided = state.outcome is not None
            self.show(_Status(time.monotonic() - began, where, share, decided, self.sent, self.failed))
            if decided:
                return


def _error_code(reply: httpx.Response) -> str:
    """The `error` code of a pitstop error body, or the start of whatever else came back."""
    try:
        return str(reply.json()["error"])
    except (ValueError, KeyError, TypeError):
        return reply.text[:80]


def _why(failures: Counter[str]) -> str:
    """` (HTTP 500 prediction_failed: 1, ReadTimeout: 2)`, or nothing when no request failed."""
    if not failures:
        return ""
    return " (" + ", ".join(f"{why}: {count}" for why, count in failures.most_common()) + ")"
