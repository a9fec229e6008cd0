"""Rollback reach across gateway processes: the time from a routing change's commit until the last of
N `pitstop serve` processes on PostgreSQL serves it, under load, with push and with the poll fallback.

    PITSTOP_TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        .venv/bin/python bench/fleet_reach.py [--gateways 8] [--cycles 5] [--rate 200] [--poll-interval 1s]

Each mode (push: LISTEN/NOTIFY with the poll every 30 s, so only a push moves a gateway in time;
poll: `serving.push: false`, polling every `--poll-interval`) starts its own fleet of `--gateways`
processes on one workspace and a load generator process sending `--rate` predictions a second,
spread evenly over the gateways (one request in flight per gateway). Each cycle takes a challenger
through a rollout by hand: start (shadow), promote (A/B split), promote (ramp step), rollback, four
routing changes; the next change waits until every gateway's `/routing` answers the last one.

The reach of a change is read from the served answers, not from any gateway's clock: each request's
routing version comes from the prediction log (every record carries the one that served it), its
send and answer times from the load generator's `time.monotonic()`, a clock shared by every process
on one machine, as is the driver's stamp taken when the change's transaction has committed. A
gateway switched after it began the last request it answered under an older table and before it
answered the first under the new one; the reach is the latest such switch over the gateways, given
as the interval [from, to] after the commit (its width is one request's gap at that gateway).
Requests that did not get a 200 are counted, per mode and within each change's reach.
"""

from __future__ import annotations

import argparse
import csv
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import sqlalchemy as sa
from routing_reach import MODEL, workspace

from pitstop.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]
LOAD = Path(__file__).with_name("reach_load.py")
READY_WITHIN = 600.0  # seconds: a bound for a loaded machine, where 8 processes import for minutes
REACH_WITHIN = 60.0  # seconds: a change not served everywhere by then is a failure of the run
SETTLE = 0.5  # seconds of load after every gateway serves a change, before the next one


@dataclass(frozen=True)
class Change:
    kind: str  # start, split, ramp, rollback
    version: int  # the routing table's
    committed: float  # time.monotonic() once the change's transaction committed


@dataclass(frozen=True)
class Answer:
    gateway: int
    sent: float
    answered: float
    status: int  # 0: no HTTP answer at all


# -- the driver --------------------------------------------------------------------------------------


class Fleet:
    """`n` gateway processes serving the workspace at `folder`, each logging to a file of its own."""

    def __init__(self, folder: Path, env: dict[str, str], n: int) -> None:
        self.ports = [free_port() for _ in range(n)]
        self.processes = []
        for i, port in enumerate(self.ports):
            with (folder / f"gateway-{i}.log").open("wb") as log:
                command = ["serve", "-w", str(folder / "ws"), "--port", str(port), "--log-level", "warning"]
                self.processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "pitstop", *command],
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )

    def versions(self) -> list[int]:
        """The routing version each gateway serves now, by its own `/routing`."""
        return [
            int(httpx.get(f"http://127.0.0.1:{port}/v1/models/{MODEL}/routing", timeout=10).json()["version"])
            for port in self.ports
        ]

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_WITHIN
        while True:
            for process in self.processes:
                if process.poll() is not None:
                    sys.exit(f"a gateway exited ({process.returncode}): see its log")
            try:
                if all(
                    httpx.get(f"http://127.0.0.1:{p}/readyz", timeout=5).status_code == 200
                    for p in self.ports
                ):
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                sys.exit(f"the gateways were not ready within {READY_WITHIN:g}s")
            time.sleep(0.5)

    def wait_serving(self, version: int) -> None:
        deadline = time.monotonic() + REACH_WITHIN
        while min(self.versions()) < version:
            if time.monotonic() > deadline:
                sys.exit(f"routing v{version} not served by every gateway within {REACH_WITHIN:g}s")
            time.sleep(0.02)

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(timeout=120)


def wait_for_file(path: Path, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_WITHIN
    while not path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"the load generator did not start ({process.returncode})")
        time.sleep(0.2)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def drive(ws: Workspace, fleet: Fleet, cycles: int) -> list[Change]:
    """`cycles` rollouts by hand, each ending in a rollback; every change's commit time."""
    changes: list[Change] = []

    def changed(kind: str) -> None:
        committed = time.monotonic()
        version = ws.routing(MODEL).version  # type: ignore[union-attr]
        changes.append(Change(kind, version, committed))
        fleet.wait_serving(version)
        time.sleep(SETTLE)

    for _ in range(cycles):
        ws.start_rollout(MODEL, 2, skip_gate=True, reason="bench")
        changed("start")
        ws.promote(MODEL, reason="bench", actor="bench")
        changed("split")
        ws.promote(MODEL, reason="bench", actor="bench")
        changed("ramp")
        ws.rollback(MODEL, reason="bench", actor="bench")
        changed("rollback")
    return changes


def served_versions(url: str, tag: str) -> dict[str, int]:
    """The routing version that served each of this run's requests, from the prediction log."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT request_id, routing_version FROM predictions "
                    "WHERE role = 'served' AND request_id LIKE :tag"
                ),
                {"tag": f"{tag}-%"},
            )
            return {str(request_id): int(version) for request_id, version in rows}
    finally:
        engine.dispose()


def reach(
    change: Change, answers: dict[str, Answer], versions: dict[str, int], gateways: int
) -> tuple[float, float]:
    """[from, to] seconds after the commit within which the last gateway switched to the change."""
    lower, upper = 0.0, 0.0
    for g in range(gateways):
        mine = sorted(
            (a.sent, a.answered, versions[r]) for r, a in answers.items() if a.gateway == g and r in versions
        )
        old = [sent for sent, _, v in mine if v < change.version]
        new = [answered for _, answered, v in mine if v >= change.version and answered >= change.committed]
        if not new:
            raise SystemExit(f"gateway {g} answered nothing under routing v{change.version}: raise --rate")
        lower = max(
            lower, max([s for s in old if s <= min(new)], default=change.committed) - change.committed
        )
        upper = max(upper, min(new) - change.committed)
    return max(0.0, lower), upper


def run_mode(folder: Path, url: str, name: str, args: argparse.Namespace) -> None:
    push = name == "push"
    poll = "30s" if push else args.poll_interval
    (folder / "ws" / "pitstop.yaml").write_text(
        f"serving: {{push: {str(push).lower()}, poll_interval: {poll}, shadow_process: false}}\n"
    )
    env = {**os.environ, "PITSTOP_DATABASE_URL": url, "PYTHONPATH": str(ROOT / "src")}
    fleet = Fleet(folder, env, args.gateways)
    tag = f"{name}-{uuid.uuid4().hex[:6]}"
    out = folder / f"{tag}.csv"
    generator: subprocess.Popen[bytes] | None = None
    ws = Workspace(folder / "ws")
    try:
        fleet.wait_ready()
        ports = ",".join(map(str, fleet.ports))
        command = [sys.executable, str(LOAD), ports, str(args.rate), str(out), tag]
        generator = subprocess.Popen(command, env=env)
        wait_for_file(out.with_suffix(".ready"), generator)
        started = time.monotonic()
        changes = drive(ws, fleet, args.cycles)
        seconds = time.monotonic() - started
    finally:
        if generator is not None:
            generator.terminate()
            generator.wait(timeout=120)
        fleet.stop()  # each gateway writes its queued records before it exits
        ws.close()
    answers = {}
    with out.open() as file:
        for request_id, g, sent, answered, status in csv.reader(file):
            answers[request_id] = Answer(int(g), float(sent), float(answered), int(status))
    versions = served_versions(url, tag)
    failed = [a for a in answers.values() if a.status != 200]
    report(name, changes, answers, versions, args.gateways, failed, seconds)


def report(
    name: str,
    changes: list[Change],
    answers: dict[str, Answer],
    versions: dict[str, int],
    gateways: int,
    failed: list[Answer],
    seconds: float,
) -> None:
    spans = {change: reach(change, answers, versions, gateways) for change in changes}
    during = sum(
        1 for a in failed for c, (_, to) in spans.items() if c.committed <= a.sent <= c.committed + to
    )
    print(
        f"{name}: {len(answers)} requests ({len(answers) / seconds:.0f}/s while driving), "
        f"{len(failed)} failed ({during} during a switch), {len(versions)} logged"
    )
    for kind in ("rollback", "all"):
        chosen = [span for change, span in spans.items() if kind in ("all", change.kind)]
        lows = sorted(low * 1000 for low, _ in chosen)
        highs = sorted(high * 1000 for _, high in chosen)
        print(
            f"  {kind:>8} ({len(chosen):2d} changes): "
            f"p50 {statistics.median(lows):6.0f}-{statistics.median(highs):.0f} ms  "
            f"p100 {lows[-1]:6.0f}-{highs[-1]:.0f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateways", type=int, default=8)
    parser.add_argument("--cycles", type=int, default=5, help="rollouts, each 4 routing changes")
    parser.add_argument("--rate", type=float, default=200.0, help="predictions a second, over all gateways")
    parser.add_argument("--poll-interval", default="1s")
    parser.add_argument("--modes", default="push,poll")
    args = parser.parse_args()
    base = os.environ.get("PITSTOP_BENCH_DATABASE_URL") or os.environ.get("PITSTOP_TEST_DATABASE_URL")
    if not base:
        sys.exit("set PITSTOP_TEST_DATABASE_URL to a PostgreSQL server: push needs one")
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            url = f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"
            workspace(folder, url).close()
            for name in args.modes.split(","):
                run_mode(folder, url, name, args)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


if __name__ == "__main__":
    main()
