"""How fast `pitstop simulate` replays traffic, against the traffic's length (issue 24).

    PYTHONPATH=src .venv/bin/python bench/replay_speed.py [--sizes 10000,100000,1000000] [--rate R]
        [--gateway-size 10000] [--markdown]

One workspace on SQLite (made once, in a temporary folder): the demo's delivery data, model `eta`
with two gradient-boosting versions (50 and 100 iterations), the first crowned champion. Each size is
a traffic table of that many requests from the demo's generator at one fixed rate (`--rate`, by
default the issue's 200,000 requests over 12 hours, 4.6 a second), each label known 10 minutes after
its request, replayed with the default policy and 5-minute looks (`replay.simulate`, exactly what
`pitstop simulate` runs). Every size runs in a process of its own, so its peak resident memory is its
own. The table gives, per size: the simulated hours, the outcome, the wall time, requests per second,
the peak memory, and the wall time per request as a ratio to the smallest size's, measured in the same
run: 1.0 at every size is linear in the traffic's length; growing ratios are a cost per request that
grows with the replay.

Each size is replayed the default way, batched (`replay.batched`). The baseline of the same run is
`--gateway-size` requests (the first of that many of the same traffic) replayed through the gateway
(`simulate(..., through_gateway=True)`, `pitstop simulate --through-gateway`): every request one call
and every look the prediction log's SQL, the only way before issue 24. Its row gives the batched
replay's speed as a multiple of it (0 leaves it out).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

FEATURES = ["distance_km", "items", "prep_minutes", "traffic", "rain_mm", "hour", "is_weekend"]
LABEL_DELAY_MINUTES = 10


def build_workspace(folder: Path) -> Path:
    """The workspace every size replays against: model `eta`, champion v1, challenger v2."""
    from pitstop.demo.data import generate_deliveries
    from pitstop.workspace import Workspace

    train = folder / "train.csv"
    generate_deliveries(20_000).to_csv(train, index=False)
    ws = Workspace.init(folder / "ws")
    ws.add_dataset("deliveries", train, time_column="time")
    ws.create_model(
        "eta", task="regression", target="delivery_minutes", features=FEATURES, time_column="time",
        id_columns=["user_id"],
    )  # fmt: skip
    for iterations in (50, 100):
        ws.train(
            "eta", trainer="pitstop.demo.trainers:gradient_boosting", data="deliveries",
            params={"max_iter": iterations},
        )  # fmt: skip
    ws.set_champion("eta", 1, reason="benchmark")
    ws.close()
    return folder / "ws"


@dataclass(frozen=True)
class Replayed:
    """What one replay said of its outcome and speed (`pitstop simulate --json`'s numbers)."""

    requests: int
    simulated_hours: float
    outcome: str
    stage: str | None
    wall_seconds: float
    requests_per_second: float
    peak_rss_bytes: int


def traffic(requests: int, rate: float) -> pd.DataFrame:
    """`requests` deliveries at `rate` a second, as a traffic table (label known after a delay)."""
    import pandas as pd

    from pitstop.demo.data import Scenario, generate_deliveries

    frame = generate_deliveries(requests, Scenario(days=requests / rate / 86400), seed=11)
    frame = frame.rename(columns={"delivery_minutes": "label"})
    frame["label_time"] = frame["time"] + pd.Timedelta(minutes=LABEL_DELAY_MINUTES)
    return frame


def replay_one(workspace: Path, requests: int, rate: float, through_gateway: bool) -> Replayed:
    """One replay of `requests`; what `pitstop simulate --json` says of its speed and outcome."""
    from pitstop.replay import simulate
    from pitstop.workspace import Workspace

    frame = traffic(requests, rate)
    with tempfile.TemporaryDirectory(prefix="pitstop-replay-bench-") as workdir:
        result = simulate(
            Workspace(workspace),
            "eta",
            champion=1,
            challenger=2,
            traffic=frame,
            workdir=Path(workdir),
            through_gateway=through_gateway,
        )
    return Replayed(
        requests=result.requests,
        simulated_hours=result.simulated_hours,
        outcome=result.outcome,
        stage=result.stage,
        wall_seconds=result.wall_seconds,
        requests_per_second=result.requests_per_second,
        peak_rss_bytes=result.peak_rss_bytes,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", default="10000,100000,1000000", help="requests per replay, comma-separated"
    )
    parser.add_argument("--rate", type=float, default=200_000 / (12 * 3600), help="requests a second")
    parser.add_argument("--gateway-size", type=int, default=10_000, help="baseline through the gateway")
    parser.add_argument("--markdown", action="store_true", help="print the table for bench/RESULTS.md")
    parser.add_argument("--through-gateway", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a size, in its own process
    parser.add_argument("--workspace", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(asdict(replay_one(args.workspace, args.one, args.rate, args.through_gateway))))
        return
    sizes = [int(size) for size in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="pitstop-replay-bench-") as folder:
        workspace = build_workspace(Path(folder))
        rows = [_replay_in_process(workspace, size, args.rate, False) for size in sizes]
        gateway = (
            _replay_in_process(workspace, args.gateway_size, args.rate, True) if args.gateway_size else None
        )
    base = rows[0].wall_seconds / rows[0].requests
    lines = [
        "| requests | simulated hours | outcome | wall | requests/s | peak memory "
        "| wall per request vs the first |",
        "|---:|---:|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row.requests:,} | {row.simulated_hours:.1f} | {row.outcome} at {row.stage} "
            f"| {row.wall_seconds:.1f} s | {row.requests_per_second:,.0f} "
            f"| {row.peak_rss_bytes / 2**20:,.0f} MiB | {row.wall_seconds / row.requests / base:.2f} |"
        )
    if gateway is not None:
        same = next((row for row in rows if row.requests == gateway.requests), None)
        speedup = f"; batched: {same.requests_per_second / gateway.requests_per_second:.0f}x" if same else ""
        lines.append(
            f"| {gateway.requests:,} through the gateway | {gateway.simulated_hours:.1f} "
            f"| {gateway.outcome} at {gateway.stage} | {gateway.wall_seconds:.1f} s "
            f"| {gateway.requests_per_second:,.0f}{speedup} | {gateway.peak_rss_bytes / 2**20:,.0f} MiB | |"
        )
    print("\n".join(lines) if args.markdown else json.dumps([asdict(row) for row in rows], indent=2))


def _replay_in_process(workspace: Path, size: int, rate: float, through_gateway: bool) -> Replayed:
    """One replay in a process of its own (its peak memory its own)."""
    done = subprocess.run(
        [sys.executable, __file__, "--one", str(size), "--rate", str(rate), "--workspace", str(workspace),
         *(["--through-gateway"] if through_gateway else [])],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    row = Replayed(**json.loads(done.stdout.strip().splitlines()[-1]))
    way = "through the gateway" if through_gateway else "batched"
    print(f"{size:,} requests {way}: {asdict(row)}", file=sys.stderr)
    return row


if __name__ == "__main__":
    main()
