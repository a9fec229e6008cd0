"""The gateway's own CPU per request, without a network: pitstop's app against a no-model endpoint.

    PYTHONPATH=src .venv/bin/python bench/gateway_cpu.py [--requests 20000] [--rounds 5] [--profile FILE]

Both apps are called straight through ASGI (no server, no sockets) by `--clients` concurrent callers
on one uvloop event loop, as uvicorn would call them, with the bodies of `bench/gateway.py` (the same
model: `GradientBoostingRegressor`, 8 features, SQLite workspace, champion only):

    (n) a FastAPI app whose one POST endpoint reads the body and answers a fixed JSON: what any
        endpoint on this stack costs, the floor;
    (p) pitstop's app (`create_app`), `POST /v1/models/bench/predict`, every prediction logged.

The machine is shared, so this counts CPU, not wall time: `time.process_time()` (every thread of this
process: the event loop, the model's thread, the log writer) over a fixed number of requests, after
`--warmup` unmeasured ones; rounds alternate between (n) and (p). pitstop's own cost is (p) - (n),
the median over rounds of each round's difference (a busy spell of the machine falls on both). With
`--profile`, one more pass of (p) runs under cProfile and its stats are written to that file (read
them with `python -m pstats FILE`).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import gateway as bench  # noqa: E402  (this folder's gateway benchmark: workspace and bodies)
from fastapi import FastAPI, Request  # noqa: E402  (at the top: the endpoint's annotations name them)
from fastapi.responses import JSONResponse, Response  # noqa: E402

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
PATH = f"/v1/models/{bench.MODEL}/predict"


def no_model_app() -> Any:
    """(n): the same stack (FastAPI, its routing and exception middleware), no model, no pitstop."""
    app = FastAPI()

    @app.post(PATH)
    async def predict(request: Request) -> Response:
        await request.body()
        return JSONResponse({"request_id": "r", "model": "bench", "model_version": 1, "prediction": 0.5})

    return app


async def call(app: ASGIApp, body: bytes) -> int:
    """One POST through `app`, as uvicorn would make it; the response status."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": PATH,
        "raw_path": PATH.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # a disconnect never comes while the call runs
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


def thread_cpu() -> dict[str, float]:
    """CPU seconds (user + system) of each live thread of this process so far, by thread name."""
    tick = os.sysconf("SC_CLK_TCK")
    names = {str(thread.native_id): thread.name for thread in threading.enumerate()}
    used: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            name = names.get(task.name, "other")
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        used[name] = used.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return used


async def drive(app: ASGIApp, bodies: list[bytes], count: int, clients: int) -> float:
    """CPU seconds (this process, every thread) for `count` calls by `clients` concurrent callers."""
    next_index = 0
    failed = 0

    async def client() -> None:
        nonlocal next_index, failed
        while next_index < count:
            i = next_index
            next_index += 1
            failed += await call(app, bodies[i % len(bodies)]) != 200

    started, threads = time.process_time(), thread_cpu()
    await asyncio.gather(*(client() for _ in range(clients)))
    cpu = time.process_time() - started
    after = thread_cpu()
    split = {name: after[name] - threads.get(name, 0.0) for name in after}
    shown = ", ".join(
        f"{name} {seconds / count * 1e6:.0f}" for name, seconds in sorted(split.items()) if seconds
    )
    print(f"  µs CPU/request by thread: {shown}", file=sys.stderr)
    if failed:
        raise RuntimeError(f"{failed} of {count} calls failed")
    return cpu


async def lifespan(app: Any) -> Any:
    """Start `app`'s lifespan (the gateway loads its models); the returned coroutine stops it."""
    started, stopping = asyncio.Event(), asyncio.Event()

    async def receive() -> dict[str, Any]:
        if not started.is_set():
            return {"type": "lifespan.startup"}
        await stopping.wait()
        return {"type": "lifespan.shutdown"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"].startswith("lifespan.startup"):
            started.set()

    task = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    )
    await started.wait()

    async def stop() -> None:
        stopping.set()
        await task

    return stop


async def run(args: argparse.Namespace, workspace: Path) -> None:
    from pitstop.http.app import create_app
    from pitstop.serving.gateway import Gateway
    from pitstop.workspace import Workspace

    bodies = [raw.split(b"\r\n\r\n", 1)[1] for raw in bench.request_bodies()]
    ws = Workspace(workspace)
    pitstop = create_app(Gateway(ws, poll=False), tune_runtime=True)
    baseline = no_model_app()
    stop = await lifespan(pitstop)
    apps = {"n": baseline, "p": pitstop}
    measured: dict[str, list[float]] = {"n": [], "p": []}
    for app in apps.values():
        await drive(app, bodies, args.warmup, args.clients)
    for round_ in range(args.rounds):
        for key in ("n", "p") if round_ % 2 == 0 else ("p", "n"):
            cpu = await drive(apps[key], bodies, args.requests, args.clients)
            measured[key].append(cpu / args.requests * 1e6)
            print(f"round {round_ + 1} ({key}): {measured[key][-1]:.1f} µs CPU/request", file=sys.stderr)
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        await drive(pitstop, bodies, args.requests, args.clients)
        profiler.disable()
        profiler.dump_stats(args.profile)
    await stop()
    ws.close()
    n, p = measured["n"], measured["p"]
    own = statistics.median(b - a for a, b in zip(n, p, strict=True))
    ratio = statistics.median(b / a for a, b in zip(n, p, strict=True))
    print(
        f"{args.requests:,} requests x {args.rounds} rounds, {args.clients} concurrent callers; "
        "medians (range), and medians of each round's difference and ratio:\n"
        f"(n) no-model endpoint: {statistics.median(n):.1f} µs CPU/request ({min(n):.1f}-{max(n):.1f})\n"
        f"(p) pitstop predict:   {statistics.median(p):.1f} µs CPU/request ({min(p):.1f}-{max(p):.1f})\n"
        f"pitstop's own (p - n): {own:.1f} µs CPU/request; p / n = {ratio:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000, help="measured requests per round and app")
    parser.add_argument("--warmup", type=int, default=2_000, help="unmeasured requests per app first")
    parser.add_argument("--rounds", type=int, default=5, help="rounds, alternating the apps' order")
    parser.add_argument("--clients", type=int, default=32, help="concurrent callers")
    parser.add_argument("--profile", default=None, help="write cProfile stats of one more pass of (p)")
    args = parser.parse_args()
    import uvloop

    with tempfile.TemporaryDirectory(prefix="pitstop-cpu-") as folder:
        setup = bench.build_workspace(Path(folder))
        bench.set_shadow(setup["path"], None)
        uvloop.run(run(args, setup["path"]))


if __name__ == "__main__":
    main()
