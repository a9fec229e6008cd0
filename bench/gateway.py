"""Gateway benchmark: throughput and latency of pitstop serving against a minimal Starlette endpoint.

    .venv/bin/python bench/gateway.py [--seconds 5] [--connections 32] [--rounds 3]

Each scenario runs a real server process (uvicorn, uvloop, httptools, one worker) on loopback and a
bounded asyncio load generator (keep-alive HTTP/1.1 connections, one request in flight each) in this
process. All scenarios serve the same scikit-learn model:

    (a) a minimal Starlette endpoint calling `predict` per request (on the event loop, as most do);
    (n) a FastAPI endpoint on the same server stack that reads the body and answers a fixed JSON, no
        model: what HTTP and the web framework alone cost, the floor for any endpoint;
    (m) MLServer (its scikit-learn runtime, inference in its server process) with adaptive batching
        (`max_batch_size` 64, `max_batch_time` 2 ms, as pitstop's micro-batching), the model's 8
        features as one Open Inference Protocol tensor; from `--mlserver` (`make install-peers`),
        skipped without it;
    (b) pitstop, champion only;
    (c) pitstop with an equally fast challenger in shadow;
    (d) pitstop with a challenger that sleeps 50 ms in shadow;
    (e) pitstop with a challenger that raises in shadow;
    (s) pitstop, champion only, again: a second server identical to (b), whose ratio to (b) is the
        run's own noise (what a 10 % target has to be told apart from);
    (o) pitstop, champion only, from the source folder `--before` names (an earlier commit's `src`,
        e.g. from `git archive`): before and after a change in the same run; skipped without it.

Every scenario's server runs throughout; each round measures one short window per scenario (flat
out, then at a steady rate), in an order that rotates between rounds, so a slower or faster spell of
a shared machine falls on all scenarios alike. The median per scenario is reported, and ratios to (a)
and (b) are the median over rounds of each round's ratio. Then the prediction log's write throughput
(records/s) is measured on SQLite and, when PITSTOP_BENCH_DATABASE_URL or PITSTOP_TEST_DATABASE_URL
names a PostgreSQL server, on PostgreSQL.

The challenger classes below are pickled under this module's name (`gateway`), so the server processes
get this folder on their PYTHONPATH.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import math
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
MODEL = "bench"
FEATURES = [f"x{i}" for i in range(8)]


# -- challengers (pickled by reference to this module) --------------------------------------------


class SleepyModel:
    """Sleeps before predicting: a slow model (I/O bound, or native code that releases the GIL)."""

    def __init__(self, base: Any, delay: float) -> None:
        self.base, self.delay = base, delay
        self.feature_names_in_ = base.feature_names_in_

    def predict(self, frame: Any) -> Any:
        time.sleep(self.delay)
        return self.base.predict(frame)


class NoopModel:
    """Answers 0 at once: what the shadow machinery costs when the model costs nothing."""

    def __init__(self, base: Any) -> None:
        self.feature_names_in_ = base.feature_names_in_

    def predict(self, frame: Any) -> Any:
        return np.zeros(len(frame))


class FailingModel:
    def __init__(self, base: Any) -> None:
        self.base = base
        self.feature_names_in_ = base.feature_names_in_

    def predict(self, frame: Any) -> Any:
        raise RuntimeError("the challenger is broken")


# -- the servers -------------------------------------------------------------------------------------

BASELINE = """
import sys, joblib, pandas as pd, uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

model = joblib.load(sys.argv[1])
features = list(model.feature_names_in_)

async def predict(request):
    body = await request.json()
    frame = pd.DataFrame([body["features"]], columns=features)
    return JSONResponse({"prediction": float(model.predict(frame)[0])})

app = Starlette(routes=[Route("/v1/models/bench/predict", predict, methods=["POST"])])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), loop="uvloop", http="httptools",
            ws="none", log_level="warning", access_log=False)
"""

NO_MODEL = """
import sys, uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI()

@app.post("/v1/models/bench/predict")
async def predict(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"request_id": "r", "model": "bench", "model_version": 1, "prediction": 0.5})

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), loop="uvloop", http="httptools",
            ws="none", log_level="warning", access_log=False)
"""

PITSTOP = """
import sys
from pathlib import Path
from pitstop.http.server import run
run(Path(sys.argv[1]), port=int(sys.argv[2]), workers=1, log_level="warning")
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A server process on a free port; waits until it answers, stops it with SIGTERM.

    `code` is a Python program, run with `arg` and the port; or `argv` is the whole command line, of
    a server already told its `port`. `bodies` are the raw requests the load generator sends it.
    """

    def __init__(
        self,
        code: str,
        arg: str,
        env: dict[str, str],
        cpus: set[int] | None,
        start_timeout: float = 60.0,
        *,
        argv: list[str] | None = None,
        port: int | None = None,
        bodies: list[bytes] | None = None,
        cwd: Path | None = None,
        source: Path | None = None,
    ) -> None:
        self.port, self.start_timeout = port or free_port(), start_timeout
        self.bodies = bodies or request_bodies()
        self.process = subprocess.Popen(
            argv or [sys.executable, "-c", code, arg, str(self.port)],
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
            env={
                **os.environ,
                **env,
                "PYTHONPATH": f"{HERE}{os.pathsep}{source or os.environ.get('PYTHONPATH', '')}",
            },
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
        )

    def __enter__(self) -> Server:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"server exited: {self.process.stderr.read() if self.process.stderr else ''}"
                )
            try:
                status = asyncio.run(_one_request(self.port, self.bodies[0]))
                if status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        self.__exit__()
        raise RuntimeError("server did not start")

    def cpu_seconds(self, tree: bool = False) -> float:
        """CPU time (user + system, all threads) the server process has used so far; with `tree`, its
        child processes' too (MLServer's inference worker)."""
        return sum(_cpu_seconds(pid) for pid in (_tree(self.process.pid) if tree else [self.process.pid]))

    def __exit__(self, *_: object) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # it ended meanwhile
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tree(root: int) -> list[int]:
    """`root` and every process descended from it."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    found, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        found += frontier
    return found


# -- the load generator ------------------------------------------------------------------------------

STALL_SECONDS = 5.0  # an answer later than this counts as an error (MLServer once left one unanswered)


def _request(body: bytes, path: str = f"/v1/models/{MODEL}/predict") -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = next(int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length"))
    await reader.readexactly(length)
    return status


async def _one_request(port: int, request: bytes) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        return await _read_response(reader)
    finally:
        writer.close()


@dataclass
class Load:
    requests: int
    errors: int
    seconds: float
    latencies: list[float]
    cpu_seconds: float = 0.0  # the server's CPU time over the measured seconds
    batch_rows: float | None = None
    shadow_skipped: float = 0.0  # shadow requests skipped (saturated, backlog, circuit open) ...
    shadow_scored: float = 0.0  # ... and scored, over the measurement and its warm-up

    @property
    def shadow_share(self) -> float | None:
        """The share of shadow requests that were scored (None without a shadow)."""
        offered = self.shadow_scored + self.shadow_skipped
        return self.shadow_scored / offered if offered else None

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_us(self) -> float:
        """Server CPU time per request, in microseconds: its cost, whatever share of a core it got."""
        return self.cpu_seconds / max(1, self.requests) * 1e6

    def percentile(self, q: float) -> float:
        if not self.latencies:  # not one answer in the window (a server that stalled)
            return math.nan
        return float(np.percentile(self.latencies, q)) * 1000.0


async def generate(
    server: Server,
    connections: int,
    seconds: float,
    warmup: float,
    rate: float | None = None,
    tree: bool = False,
) -> Load:
    """`connections` keep-alive connections with one request in flight each, for `seconds`.

    Without `rate`, each connection sends its next request as soon as the answer arrives (closed
    loop: the server runs flat out; throughput). With `rate` (requests/s in total), each connection
    sends on a fixed schedule (open loop: latency under a steady load below capacity); a request
    delayed by a late answer is timed from its scheduled slot, so a stall is charged to every
    request it holds up. The server's CPU time is read at the start and end of the measurement.
    """
    port, bodies = server.port, server.bodies
    latencies: list[float] = []
    errors = 0
    done = 0
    measuring = False
    stop = False
    interval = connections / rate if rate else 0.0

    async def connection(k: int) -> None:
        nonlocal errors, done
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = k
        scheduled = time.perf_counter() + interval * k / connections
        answered = 0.0
        try:
            while not stop:
                if rate and answered < scheduled:  # on time: wait for the slot, time from the real send
                    await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
                    started = time.perf_counter()
                else:  # closed loop, or behind because the server was slow: that wait counts too
                    started = scheduled if rate else time.perf_counter()
                scheduled += interval
                payload = bodies[i % len(bodies)]
                i += connections
                writer.write(payload)
                try:
                    status = await asyncio.wait_for(_read_response(reader), STALL_SECONDS)
                except TimeoutError:  # an answer that never comes: an error, on a new connection
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    status = 0
                answered = time.perf_counter()
                if measuring:
                    latencies.append(time.perf_counter() - started)
                    done += 1
                    errors += status != 200
        finally:
            writer.close()

    tasks = [asyncio.create_task(connection(k)) for k in range(connections)]
    await asyncio.sleep(warmup)
    measuring = True
    started, cpu_started = time.perf_counter(), server.cpu_seconds(tree)
    await asyncio.sleep(seconds)
    measuring = False
    elapsed, cpu = time.perf_counter() - started, server.cpu_seconds(tree) - cpu_started
    stop = True
    await asyncio.gather(*tasks)
    return Load(done, errors, elapsed, latencies, cpu)


def request_bodies(n: int = 2000, seed: int = 0) -> list[bytes]:
    rng = random.Random(seed)
    bodies = []
    for i in range(n):
        features = {name: round(rng.gauss(0, 1), 4) for name in FEATURES}
        body = {
            "features": features,
            "user_id": f"user-{rng.randrange(10_000)}",
            "request_id": f"r{i}-{uuid.uuid4().hex[:8]}",
        }
        bodies.append(_request(json.dumps(body).encode()))
    return bodies


def oip_bodies(n: int = 2000, seed: int = 0) -> list[bytes]:
    """The same features as `request_bodies`, as MLServer takes them: one FP64 tensor of [1, 8]."""
    rng = random.Random(seed)
    bodies = []
    for _ in range(n):
        row = [round(rng.gauss(0, 1), 4) for _ in FEATURES]
        rng.randrange(10_000)  # the user id of `request_bodies`: the same draws, the same rows
        tensor = {"name": "input-0", "shape": [1, len(FEATURES)], "datatype": "FP64", "data": row}
        bodies.append(_request(json.dumps({"inputs": [tensor]}).encode(), f"/v2/models/{MODEL}/infer"))
    return bodies


def mlserver_folder(folder: Path, artifact: Path, port: int) -> Path:
    """MLServer's settings (HTTP on `port`) and the champion's model-settings, adaptive batching on."""
    home = folder / "mlserver"
    (home / MODEL).mkdir(parents=True)
    shutil.copy(artifact, home / MODEL / "model.joblib")
    settings = {
        "name": MODEL,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib"},
        "max_batch_size": 64,
        "max_batch_time": 0.002,
    }
    (home / MODEL / "model-settings.json").write_text(json.dumps(settings))
    # parallel_workers 0: inference in the server's process (MLServer 1.7.1's worker processes do not
    # start under uvloop here: "There is no current event loop"), as the peer tests run it
    server = {
        "host": "127.0.0.1",
        "http_port": port,
        "grpc_port": free_port(),
        "metrics_endpoint": None,
        "parallel_workers": 0,
    }
    (home / "settings.json").write_text(json.dumps(server))
    return home


# -- the workspace -----------------------------------------------------------------------------------


def build_workspace(folder: Path, shadow_concurrency: int = 1024, extra: str = "") -> dict[str, Any]:
    """A SQLite workspace with the model, an equal challenger, a 50 ms sleeper, a raiser and a no-op."""
    from sklearn.ensemble import GradientBoostingRegressor

    from pitstop.workspace import Workspace

    this = importlib.import_module("gateway")  # pickle the challengers as gateway.<Class>
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(2000, len(FEATURES))), columns=FEATURES)
    frame["y"] = frame @ np.linspace(1, 2, len(FEATURES)) + rng.normal(scale=0.1, size=len(frame))
    frame["time"] = pd.date_range("2026-01-01", periods=len(frame), freq="min", tz="UTC")
    frame.to_csv(folder / "train.csv", index=False)
    os.environ.pop("PITSTOP_DATABASE_URL", None)
    (folder / "ws").mkdir()
    # Every shadow call scored at this rate: calls in flight ~ rate x (batch wait + predict time).
    (folder / "ws" / "pitstop.yaml").write_text(
        f"serving:\n  shadow_concurrency: {shadow_concurrency}\n{extra}"
    )
    ws = Workspace.init(folder / "ws")
    ws.add_dataset("train", folder / "train.csv", time_column="time")
    ws.create_model(MODEL, task="regression", target="y", time_column="time", features=FEATURES)

    def fit(seed: int) -> Any:
        return GradientBoostingRegressor(n_estimators=50, max_depth=3, random_state=seed).fit(
            frame[FEATURES], frame["y"]
        )

    champion = fit(0)
    models = {
        "champion": champion,
        "equal": fit(1),
        "sleepy": this.SleepyModel(champion, 0.05),
        "failing": this.FailingModel(champion),
        "noop": this.NoopModel(champion),
    }
    versions = {}
    import joblib

    for name, model in models.items():
        path = folder / f"{name}.joblib"
        joblib.dump(model, path)
        broken = "it fails on purpose: the benchmark measures a failing shadow" if name == "failing" else None
        versions[name] = ws.register(MODEL, path, train_data="train", skip_check=broken).version
    ws.set_champion(MODEL, versions["champion"], reason="benchmark")
    ws.close()
    return {"path": folder / "ws", "artifact": folder / "champion.joblib", "versions": versions}


def set_shadow(path: Path, version: int | None) -> None:
    from pitstop.rollout.routes import route
    from pitstop.workspace import Workspace

    with Workspace(path) as ws:
        if version is None:
            route(ws, MODEL, mode="off", reason="benchmark")
        else:
            route(ws, MODEL, mode="shadow", challenger=version, reason="benchmark")


def count_errors(path: Path) -> dict[str, int]:
    import sqlalchemy as sa

    from pitstop.store.tables import predictions
    from pitstop.workspace import Workspace

    with Workspace(path) as ws, ws.reading() as conn:
        rows = conn.execute(
            sa.select(predictions.c.role, sa.func.count())
            .where(predictions.c.error.is_not(None))
            .group_by(predictions.c.role)
        )
        return {role: int(n) for role, n in rows}


# -- prediction log throughput -----------------------------------------------------------------------


def log_throughput(url: str, records: int = 500_000, batch: int = 1000) -> tuple[float, float]:
    """Records/s written by the prediction log's writer (`write_records`, one transaction per batch):
    over the first 100,000 records into an empty table, and over the last 100,000 of `records`.

    Request ids are random, as a gateway's are, so an index keyed by them would show here as a rate
    that falls as the table grows.
    """
    from pitstop.serving.predlog import write_records
    from pitstop.store.engine import make_engine
    from pitstop.store.migrate import upgrade
    from pitstop.store.predictions.write import PredictionRecord

    engine = make_engine(url)
    upgrade(engine)
    now, rng, span = time.time(), random.Random(1), 100_000
    rows = [
        PredictionRecord(
            1, f"r{rng.getrandbits(64):016x}", f"u{i % 5000}", now + i / 1000, 1, "champion", "served", 3,
            "user", 0.5, 1.2, None,
        )
        for i in range(records)
    ]  # fmt: skip
    rates = []
    for part in range(0, records, span):
        started = time.perf_counter()
        for i in range(part, min(records, part + span), batch):
            write_records(engine, rows[i : i + batch])
        rates.append(min(span, records - part) / (time.perf_counter() - started))
    engine.dispose()
    return rates[0], rates[-1]


def postgres_log_throughput(records: int) -> tuple[float, float] | None:
    base = os.environ.get("PITSTOP_BENCH_DATABASE_URL") or os.environ.get("PITSTOP_TEST_DATABASE_URL")
    if not base:
        return None
    import sqlalchemy as sa

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        separator = "&" if "?" in base else "?"
        return log_throughput(f"{base}{separator}options=-csearch_path%3D{schema}", records)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


# -- main --------------------------------------------------------------------------------------------

SCENARIOS = {
    "a": "minimal Starlette, predict per request",
    "n": "FastAPI endpoint, no model (HTTP and framework only)",
    "m": "MLServer, adaptive batching",
    "b": "pitstop, champion only",
    "c": "pitstop, equally fast challenger in shadow",
    "d": "pitstop, 50 ms challenger in shadow",
    "e": "pitstop, raising challenger in shadow",
    "s": "pitstop, champion only, a second server (the run's noise)",
    "o": "pitstop, champion only, before (--before)",
}


def start_server(key: str, setup: dict[str, Any], args: argparse.Namespace) -> Server:
    """The server of one scenario; each pitstop scenario has its own copy of the workspace and routing."""
    if key == "a":
        return Server(BASELINE, str(setup["artifact"]), {}, args.server_cpus)
    if key == "n":
        return Server(NO_MODEL, "", {}, args.server_cpus)
    if key == "m":
        port = free_port()
        home = mlserver_folder(setup["path"].parent, setup["artifact"], port)
        argv = [str(args.mlserver), "start", str(home)]
        env = {"PYTHONDONTWRITEBYTECODE": "1"}  # its virtualenv is left as it is
        return Server(
            "", "", env, args.server_cpus, 120.0, argv=argv, port=port, bodies=oip_bodies(), cwd=home
        )
    versions = setup["versions"]
    challenger = {"c": "equal", "d": "sleepy", "e": "failing"}.get(key)  # (b), (s) and (o): none
    shadow = versions[challenger] if challenger else None
    path = setup["path"].with_name(f"ws-{key}")
    shutil.copytree(setup["path"], path)
    set_shadow(path, shadow)
    source = args.before if key == "o" else None
    return Server(PITSTOP, str(path), {"PITSTOP_DATABASE_URL": ""}, args.server_cpus, source=source)


PEERS = "anm"  # the scenarios that are not pitstop


def measure(key: str, server: Server, args: argparse.Namespace, rate: float | None = None) -> Load:
    """One window on a running server: flat out, or at `rate`; with its batches and shadow counts."""
    if key in PEERS:
        tree = key == "m"  # MLServer's worker processes, if it had any
        return asyncio.run(generate(server, args.connections, args.seconds, args.warmup, rate, tree))
    before = gateway_counts(server.port)
    load = asyncio.run(generate(server, args.connections, args.seconds, args.warmup, rate))
    after = gateway_counts(server.port)  # over the window and its warm-up
    load.batch_rows = (after.rows - before.rows) / max(1.0, after.batches - before.batches)
    load.shadow_skipped, load.shadow_scored = after.skipped - before.skipped, after.scored - before.scored
    return load


class Counts(NamedTuple):
    """A pitstop server's counters so far, from its /metrics."""

    rows: float  # rows in champion predict calls
    batches: float  # champion predict calls
    skipped: float  # shadow requests skipped (saturated, backlog, circuit open, starved)
    scored: float  # shadow requests scored


def gateway_counts(port: int) -> Counts:
    import re
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()

    def total(pattern: str) -> float:
        return sum(float(v) for v in re.findall(pattern, text))

    return Counts(
        total(r'pitstop_batch_rows_sum\{model="bench",version="1"\} ([0-9.e+]+)'),
        total(r'pitstop_batch_rows_count\{model="bench",version="1"\} ([0-9.e+]+)'),
        total(r"pitstop_shadow_skipped_total\{[^}]*\} ([0-9.e+]+)"),
        total(r'pitstop_predictions_total\{[^}]*role="shadow"[^}]*\} ([0-9.e+]+)'),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per scenario and round")
    parser.add_argument(
        "--warmup", type=float, default=1.0, help="unmeasured seconds before each measurement"
    )
    parser.add_argument("--connections", type=int, default=32, help="concurrent keep-alive connections")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported")
    parser.add_argument(
        "--log-records", type=int, default=500_000, help="records for the log write benchmark"
    )
    parser.add_argument("--only", default="".join(SCENARIOS), help="scenarios to run, e.g. ab (default: all)")
    parser.add_argument(
        "--serving", default="", help="more serving settings, YAML lines indented by two spaces"
    )
    parser.add_argument(
        "--shadow-concurrency", type=int, default=1024, help="serving.shadow_concurrency of the gateway"
    )
    parser.add_argument(
        "--rate", type=float, default=None, help="paced req/s (default: a third of (b) flat out, first round)"
    )
    parser.add_argument(
        "--pin", action="store_true", help="servers on the first CPU, the load generator on the others"
    )
    parser.add_argument(
        "--mlserver",
        type=Path,
        default=HERE.parent / ".venv-peers" / "mlserver" / "bin" / "mlserver",
        help="the mlserver program of (m) (default: make install-peers' own); (m) is skipped without it",
    )
    parser.add_argument("--before", type=Path, default=None, help="the src folder of (o), pitstop before")
    args = parser.parse_args()
    args.server_cpus = None
    if args.pin and len(os.sched_getaffinity(0)) > 1:
        cpus = sorted(os.sched_getaffinity(0))
        args.server_cpus = {cpus[0]}
        os.sched_setaffinity(0, set(cpus[1:]))
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    keys = [k for k in SCENARIOS if k in args.only]
    if "m" in keys and not args.mlserver.exists():
        print(f"(m) skipped: no {args.mlserver} (make install-peers, or --mlserver)", file=sys.stderr)
        keys.remove("m")
    if "o" in keys and args.before is None:
        keys.remove("o")
    results: dict[str, list[Load]] = {key: [] for key in keys}
    paced: dict[str, list[Load]] = {key: [] for key in keys if key not in PEERS}
    with tempfile.TemporaryDirectory(prefix="pitstop-bench-") as folder, ExitStack() as servers:
        setup = build_workspace(Path(folder), args.shadow_concurrency, args.serving)
        running = {key: servers.enter_context(start_server(key, setup, args)) for key in keys}
        for round_ in range(args.rounds):
            order = keys[round_ % len(keys) :] + keys[: round_ % len(keys)]  # each first in turn
            for key in order:
                results[key].append(measure(key, running[key], args))
                print(
                    f"round {round_ + 1} ({key}) {SCENARIOS[key]}: {describe(results[key][-1])}",
                    file=sys.stderr,
                )
            if args.rate is None and "b" in keys:  # a third of what pitstop served flat out in round 1
                args.rate = round(results["b"][0].rps / 3, -2)
            for key in [k for k in order if k in paced and args.rate]:
                paced[key].append(measure(key, running[key], args, args.rate))
                print(
                    f"round {round_ + 1} ({key}) at {args.rate:,.0f} req/s: {describe(paced[key][-1])}",
                    file=sys.stderr,
                )
        servers.close()
        logged_errors = {
            key: sum(count_errors(setup["path"].with_name(f"ws-{key}")).values()) for key in paced
        }
        sqlite_rate = log_throughput(f"sqlite:///{Path(folder) / 'log-bench.db'}", args.log_records)
    postgres_rate = postgres_log_throughput(args.log_records)
    if "b" in keys:
        report(results, paced, args, logged_errors, sqlite_rate, postgres_rate)


def scored_share(loads: list[Load]) -> str:
    """The median share of shadow requests scored, as a percentage ('-' without a shadow)."""
    shares = [share for load in loads if (share := load.shadow_share) is not None]
    return f"{statistics.median(shares) * 100:.0f} %" if shares else "-"


def describe(load: Load) -> str:
    text = f"{load.rps:,.0f} req/s, p50 {load.percentile(50):.2f} ms, p99 {load.percentile(99):.2f} ms"
    text += f", errors {load.errors}, server CPU {load.cpu_us:.0f} µs/request"
    if load.batch_rows is not None:
        text += f", rows/batch {load.batch_rows:.1f}"
    if load.shadow_share is not None:
        text += f", shadow scored {load.shadow_scored:.0f} skipped {load.shadow_skipped:.0f}"
    return text


def report(
    results: dict[str, list[Load]],
    paced: dict[str, list[Load]],
    args: argparse.Namespace,
    logged_errors: dict[str, int],
    sqlite_rate: tuple[float, float],
    postgres_rate: tuple[float, float] | None,
) -> None:
    def value(load: Load, metric: str) -> float:
        return float(getattr(load, metric)) if metric in ("rps", "cpu_us") else load.percentile(float(metric))

    def median(loads: list[Load], metric: str) -> float:
        return statistics.median(value(load, metric) for load in loads)

    def ratio(loads: list[Load], baseline: list[Load], metric: str) -> float:
        """The median over rounds of each round's ratio: windows of one round are seconds apart, so
        the machine's slower and faster spells cancel out."""
        return statistics.median(
            value(x, metric) / value(b, metric) for x, b in zip(loads, baseline, strict=True)
        )

    def versus(loads: list[Load], key: str, metric: str) -> str:
        """The ratio to scenario `key`, or '-' when it did not run."""
        return f"{ratio(loads, results[key], metric):.2f}" if key in results else "-"

    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    pinned = "server pinned to one CPU, load generator on the other" if args.server_cpus else "unpinned"
    print(
        f"\n{machine}; {pinned}; {args.connections} connections; {args.rounds} interleaved rounds of "
        f"{args.seconds:g} s per scenario (every server running throughout, windows interleaved), "
        "medians (range over rounds); ratios are medians of each round's ratio\n"
    )
    print("Flat out (closed loop):\n")
    columns = [
        "req/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "rows/batch",
        "req/s vs (a)",
        "req/s vs (n)",
        "req/s vs (m)",
        "req/s vs (b)",
        "p99 vs (a)",
        "p99 vs (m)",
        "p99 vs (b)",
        "CPU µs/req",
        "CPU/req vs (m)",
        "CPU/req vs (b)",
        "shadow scored",
    ]
    print(f"| scenario | {' | '.join(columns)} |\n|---|{'---:|' * len(columns)}")
    for key, loads in results.items():
        title = SCENARIOS[key]
        rps, p50, p99 = median(loads, "rps"), median(loads, "50"), median(loads, "99")
        cpu = median(loads, "cpu_us")
        spread = f"{min(x.rps for x in loads):,.0f}-{max(x.rps for x in loads):,.0f}"
        batches = [x.batch_rows for x in loads if x.batch_rows is not None]
        rows = f"{statistics.median(batches):.1f}" if batches else "-"  # read from pitstop's /metrics
        errors = sum(x.errors for x in loads)
        print(
            f"| ({key}) {title} | {rps:,.0f} ({spread}) | {p50:.2f} | {p99:.2f} | {errors} | {rows} | "
            f"{versus(loads, 'a', 'rps')} | {versus(loads, 'n', 'rps')} | {versus(loads, 'm', 'rps')} | "
            f"{versus(loads, 'b', 'rps')} | {versus(loads, 'a', '99')} | {versus(loads, 'm', '99')} | "
            f"{versus(loads, 'b', '99')} | {cpu:.0f} | {versus(loads, 'm', 'cpu_us')} | "
            f"{versus(loads, 'b', 'cpu_us')} | {scored_share(loads)} |"
        )
    print(f"\nSteady {args.rate:,.0f} req/s (open loop, latency from the scheduled send time):\n")
    print(
        "| scenario | p50 ms | p99 ms | p99 range | errors | p99 vs (b) | CPU µs/req | CPU/req vs (b) "
        "| shadow scored |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    for key, loads in paced.items():
        p50, p99, cpu = median(loads, "50"), median(loads, "99"), median(loads, "cpu_us")
        spread = f"{min(x.percentile(99) for x in loads):.2f}-{max(x.percentile(99) for x in loads):.2f}"
        errors = sum(x.errors for x in loads)
        print(
            f"| ({key}) {SCENARIOS[key]} | {p50:.2f} | {p99:.2f} | {spread} | {errors} | "
            f"{ratio(loads, paced['b'], '99'):.2f} | {cpu:.0f} | {ratio(loads, paced['b'], 'cpu_us'):.2f} | "
            f"{scored_share(loads)} |"
        )
    print(f"\nshadow failures recorded in the prediction log (never user-facing): {logged_errors}")
    grown = f"last 100,000 of {args.log_records:,}"
    print(f"\n| prediction log store | records/s, first 100,000 | records/s, {grown} |\n|---|---:|---:|")
    print(f"| SQLite (WAL, synchronous=NORMAL) | {sqlite_rate[0]:,.0f} | {sqlite_rate[1]:,.0f} |")
    if postgres_rate:
        print(f"| PostgreSQL | {postgres_rate[0]:,.0f} | {postgres_rate[1]:,.0f} |")
    else:
        print("| PostgreSQL | not configured | |")


if __name__ == "__main__":
    main()
