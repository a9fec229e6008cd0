"""What rollout status calls cost the served path: served p99 with and without 8 status callers.

    .venv/bin/python bench/status_calls.py [--records 120000] [--rate 300] [--seconds 8] [--rounds 4]

A real pitstop server (bench/gateway.py's workspace, uvicorn, one worker, pinned to one CPU) runs a
rollout in its shadow phase whose prediction log holds `--records` served records, as many shadow
records and a label for each: what `GET /v1/models/{model}/rollout` aggregates. The load generator
(bench/gateway.py's, on the other CPU) sends predictions at a steady `--rate`, timed from their
scheduled slots. Two scenarios, alternating over rounds on the same server:

    (b) no status calls;
    (t) 8 status callers beside it, each sending its next call `--pause` seconds after an answer.

The ratio of (t)'s served p99 to (b)'s is the median over rounds of each round's ratio; (b) against
itself in the next round is the run's noise. The cost of one status built from scratch is measured
once before the rounds. Run it with PYTHONPATH naming another source tree to compare two versions.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gateway as bench

STATUS = f"GET /v1/models/{bench.MODEL}/rollout HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()


def fill_log(path: Path, challenger: int, records: int) -> None:
    """Start a rollout of `challenger` (shadow phase) and log `records` served and shadow records of
    its routing, each request labelled."""
    import sqlalchemy as sa

    from pitstop import registry
    from pitstop.routing.store import current_routing
    from pitstop.serving.predlog import write_records
    from pitstop.store.predictions.write import PredictionRecord
    from pitstop.store.tables import labels
    from pitstop.workspace import Workspace

    ws = Workspace(path)
    stored = ws.start_rollout(bench.MODEL, challenger, skip_gate=True, reason="benchmark")
    with ws.reading() as conn:
        model_id = registry.get_model(conn, bench.MODEL).id
        table = current_routing(conn, model_id)
    assert table is not None
    routing, champion = table.version, table.champion
    start, rng = stored.state.phase_started_at.timestamp(), random.Random(2)
    for part in range(0, records, 10_000):
        batch, answers = [], []
        for i in range(part, min(records, part + 10_000)):
            request, user, when = f"r{i:08d}", f"u{i % 5000}", start + i * 1e-5
            truth = rng.gauss(0, 2)
            batch.append(
                PredictionRecord(model_id, request, user, when, champion, "champion", "served", routing,
                                 "user", truth + rng.gauss(0, 0.3), 1.0, None)
            )  # fmt: skip
            batch.append(
                PredictionRecord(model_id, request, user, when, challenger, "challenger", "shadow", routing,
                                 "user", truth + rng.gauss(0, 0.3), 1.1, None)
            )  # fmt: skip
            answers.append({"model_id": model_id, "request_id": request, "value": truth, "time": when,
                            "received_at": when})  # fmt: skip
        write_records(ws.engine, batch)
        with ws.engine.begin() as conn:
            conn.execute(sa.insert(labels), answers)
    ws.close()


async def status_call(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> float:
    started = time.perf_counter()
    writer.write(STATUS)
    status = await bench._read_response(reader)
    if status != 200:
        raise RuntimeError(f"status answered {status}")
    return time.perf_counter() - started


async def scenario(
    server: bench.Server, args: argparse.Namespace, bodies: list[bytes], callers: int
) -> tuple[bench.Load, list[float]]:
    """Served load at `args.rate` for one window, with `callers` status callers throughout."""
    stop, seconds = False, []

    async def caller() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            while not stop:
                seconds.append(await status_call(reader, writer))
                await asyncio.sleep(args.pause)
        finally:
            writer.close()

    tasks = [asyncio.create_task(caller()) for _ in range(callers)]
    load = await bench.generate(server, args.connections, args.seconds, args.warmup, bodies, rate=args.rate)
    stop = True
    await asyncio.gather(*tasks)
    return load, seconds


async def one_status(port: int) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        return await status_call(reader, writer)
    finally:
        writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=120_000, help="served records in the window")
    parser.add_argument("--rate", type=float, default=300.0, help="predictions per second")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds per scenario and round")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--callers", type=int, default=8)
    parser.add_argument("--pause", type=float, default=0.25, help="a status caller's pause between calls")
    args = parser.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    server_cpus = {cpus[0]} if len(cpus) > 1 else None
    if server_cpus:
        os.sched_setaffinity(0, set(cpus[1:]))
    bodies = bench.request_bodies()
    p99s: dict[str, list[float]] = {"b": [], "t": []}
    status_seconds: list[float] = []
    with tempfile.TemporaryDirectory(prefix="pitstop-status-") as folder:
        setup = bench.build_workspace(Path(folder))
        started = time.perf_counter()
        fill_log(setup["path"], setup["versions"]["equal"], args.records)
        print(
            f"logged {args.records:,} x 2 records in {time.perf_counter() - started:.0f} s", file=sys.stderr
        )
        with bench.Server(
            bench.PITSTOP, str(setup["path"]), {"PITSTOP_DATABASE_URL": ""}, server_cpus
        ) as server:
            cold = asyncio.run(one_status(server.port))
            print(f"one status from scratch: {cold:.2f} s", file=sys.stderr)
            for round_ in range(args.rounds):
                for key in "bt" if round_ % 2 == 0 else "tb":
                    callers = args.callers if key == "t" else 0
                    load, seconds = asyncio.run(scenario(server, args, bodies, callers))
                    p99s[key].append(load.percentile(99))
                    status_seconds += seconds
                    print(
                        f"round {round_ + 1} ({key}): served p50 {load.percentile(50):.2f} ms, p99 "
                        f"{p99s[key][-1]:.2f} ms, {load.errors} errors; {len(seconds)} status calls",
                        file=sys.stderr,
                    )
    ratios = [t / b for b, t in zip(p99s["b"], p99s["t"], strict=True)]
    noise = [later / earlier for earlier, later in zip(p99s["b"], p99s["b"][1:], strict=False)]
    status_ms = np.array(status_seconds) * 1e3
    print(
        f"\n{args.records:,} served records (+ as many shadow records and labels), {args.rate:g} req/s, "
        f"{args.rounds} rounds of {args.seconds:g} s; one status from scratch: {cold:.2f} s\n"
    )
    print("| scenario | served p99 ms, median (range) | p99 vs (b) | status calls | status p50 / p99 ms |")
    print("|---|---:|---:|---:|---:|")
    for key, title in (("b", "no status calls"), ("t", f"{args.callers} status callers")):
        values = p99s[key]
        ratio = f"{statistics.median(ratios):.2f}" if key == "t" else "1.00"
        calls = f"{len(status_ms):,}" if key == "t" else "-"
        timing = (
            f"{np.percentile(status_ms, 50):.1f} / {np.percentile(status_ms, 99):.1f}" if key == "t" else "-"
        )
        spread = f"{min(values):.2f}-{max(values):.2f}"
        print(
            f"| ({key}) {title} | {statistics.median(values):.2f} ({spread}) | {ratio} | {calls} | {timing} |"
        )
    if noise:
        print(f"\n(b) round to round (noise): {', '.join(f'{n:.2f}' for n in noise)}")


if __name__ == "__main__":
    main()
