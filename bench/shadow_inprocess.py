"""What a shadow costs the served path without HTTP: served latency at a steady rate, in one process.

    .venv/bin/python bench/shadow_inprocess.py [--rate 800] [--seconds 8] [--rounds 4]

The gateway of bench/gateway.py's workspace runs in this process (pinned to the first CPU, as the
benchmark's server is), and requests go straight to `Gateway.predict` on a fixed schedule, each timed
from its scheduled slot. No network, no HTTP parsing, no load generator beside it: what is left is the
gateway's own work, so the difference a shadow makes stands out. Scenarios, interleaved over rounds:

    (b) champion only;  (n) a no-op challenger in shadow (answers 0 at once);
    (c) an equally fast challenger;  (d) a 50 ms sleeper;  (e) a raiser.

(n) tells the shadow machinery's cost (calls, batches, records, a round trip to the shadow's process
per batch) from the shadow model's own. Each scenario also reports the share of requests its shadow
scored: a shadow at idle priority that got no CPU would cost nothing and prove nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gateway as bench  # the challengers are pickled under this name

from pitstop.http.payloads import Instance
from pitstop.http.server import tune_runtime
from pitstop.serving.gateway import Gateway
from pitstop.store.tables import predictions
from pitstop.workspace import Workspace

SCENARIOS = {
    "b": ("champion only", None),
    "n": ("no-op challenger in shadow", "noop"),
    "c": ("equally fast challenger in shadow", "equal"),
    "d": ("50 ms challenger in shadow", "sleepy"),
    "e": ("raising challenger in shadow", "failing"),
}


async def served_latencies(
    path: Path, rate: float, seconds: float, rows: list[dict[str, float]]
) -> tuple[list[float], float]:
    """Seconds from each request's scheduled slot to its answer, after one unmeasured second; and the
    share of requests the shadow scored (records with role `shadow` per served one; skips make none)."""
    ws = Workspace(path)
    gateway = Gateway(ws, poll=False)
    await gateway.start()
    loop = asyncio.get_running_loop()
    latencies: list[float] = []

    async def one(k: int, slot: float) -> None:
        await gateway.predict(bench.MODEL, [Instance(rows[k % len(rows)])])
        if k >= rate:
            latencies.append(loop.time() - slot)

    tasks = []
    start = loop.time() + 0.1
    for k in range(int(rate * (seconds + 1))):
        slot = start + k / rate
        if slot > loop.time():
            await asyncio.sleep(slot - loop.time())
        tasks.append(loop.create_task(one(k, slot)))
    await asyncio.gather(*tasks)
    routing = gateway.state(bench.MODEL).table.version
    await gateway.stop()
    with ws.reading() as conn:
        counts = dict(
            conn.execute(
                sa.select(predictions.c.role, sa.func.count())
                .where(predictions.c.routing_version == routing)
                .group_by(predictions.c.role)
            ).all()
        )
    ws.close()
    return latencies, counts.get("shadow", 0) / max(1, counts.get("served", 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=800.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds per scenario and round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--only", default="bncde")
    args = parser.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    rng = random.Random(0)
    rows = [{name: rng.gauss(0, 1) for name in bench.FEATURES} for _ in range(2000)]
    p99s: dict[str, list[float]] = {key: [] for key in args.only}
    scored: dict[str, list[float]] = {key: [] for key in args.only}
    with tempfile.TemporaryDirectory(prefix="pitstop-inprocess-") as folder:
        setup = bench.build_workspace(Path(folder))
        tune_runtime()
        for round_ in range(args.rounds):
            for key in args.only:
                title, challenger = SCENARIOS[key]
                bench.set_shadow(setup["path"], setup["versions"][challenger] if challenger else None)
                seconds, share = asyncio.run(served_latencies(setup["path"], args.rate, args.seconds, rows))
                ms = np.array(seconds) * 1e3
                p99s[key].append(float(np.percentile(ms, 99)))
                scored[key].append(share)
                print(
                    f"round {round_ + 1} ({key}) {title}: p50 {np.percentile(ms, 50):.2f} ms, "
                    f"p99 {p99s[key][-1]:.2f} ms, shadow scored {share:.0%} of requests",
                    file=sys.stderr,
                )
    print(f"\n{args.rate:,.0f} req/s in process, {args.rounds} rounds of {args.seconds:g} s\n")
    print("| scenario | p99 ms, median (range) | p99 vs (b) | shadow scored |\n|---|---:|---:|---:|")
    base = statistics.median(p99s["b"]) if "b" in p99s else None
    for key, values in p99s.items():
        median = statistics.median(values)
        ratio = f"{median / base:.2f}" if base else "-"
        spread = f"{min(values):.2f}-{max(values):.2f}"
        share = f"{statistics.median(scored[key]):.0%}" if SCENARIOS[key][1] else "-"
        print(f"| ({key}) {SCENARIOS[key][0]} | {median:.2f} ({spread}) | {ratio} | {share} |")


if __name__ == "__main__":
    main()
