"""The prediction log at scale (issue 21): one controller look and one report's log reads at 1 M and
10 M logged predictions, bytes per row, and the log writer's rate, with the log by day (migration
0014) and as one table (migration 0012) on PostgreSQL.

    PYTHONPATH=src .venv/bin/python bench/log_scale.py [--store sqlite | --store URL]
        [--sizes 1000000,10000000] [--layouts by-day,one-table] [--write 200000]

The store holds what `bench/look_cost.py` builds: two models, each with an A/B test's window of
`--window` predictions (routing version 9, both arms, a label for 9 in 10); the measured model also
has older history at `--rate` requests a second before its test began, grown in place to each of
`--sizes` logged predictions (at 100 a second, 10 M rows are 28 hours). Rows and labels go in with
the store's bulk writers (COPY on PostgreSQL), not through a gateway. On PostgreSQL the log by day
has the day partitions of the history made before it is loaded (`partitions.keep_days_ahead`), as the
gateway's writer and the controller keep them in service. At each size:

- **look**: `gather_evidence` + `decide` of the A/B test, median of `--repeat` after one unmeasured;
- **report's log reads**: the prediction-log queries of `report.data.gather_report` for the rollout
  (error and latency series per bucket, the champion's calls, the error messages), the same scope;
- **bytes per row**: the log's tables and indexes over its rows (PostgreSQL: every partition;
  SQLite: `dbstat`), and the labels' likewise.

`--write N` also times the log writer (`serving.predlog.write_records`, batches of 1,000 random request
ids, one transaction each) writing N records of today into a fresh store of each layout, rounds
interleaved so a slow spell of the shared machine falls on both: records a second and the writer's
own CPU per record. `--markdown` prints the machine, date and command.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from look_cost import (
    AB_READS,
    BASELINE,
    MEASURED,
    PHASE_START,
    fill_window,
    grow_history,
    open_store,
    time_look,
    window,
)
from sqlalchemy import Engine, text

from pitstop.losses import Loss, Scoring
from pitstop.registry import Task
from pitstop.report import data as report
from pitstop.report import shaping
from pitstop.serving.predlog import write_records
from pitstop.store.predictions import partitions
from pitstop.store.predictions.error_messages import error_messages
from pitstop.store.predictions.write import PredictionRecord

LAYOUTS = {"by-day": "head", "one-table": "0012", "sqlite": "head"}  # SQLite has one layout


def make_days(engine: Engine, first: float, last: float) -> None:
    """The day partitions from `first` to `last` (epoch seconds), before their rows are loaded."""
    day = first
    while day <= last + partitions.DAY:
        partitions.keep_days_ahead(engine, day)
        day += partitions.AHEAD_DAYS * partitions.DAY


def report_reads(engine: Engine, now: datetime) -> float:
    """Seconds for the report's prediction-log queries over the rollout (the window's model)."""
    start = PHASE_START
    duration = (now - start).total_seconds()
    width = shaping.bucket_width(duration)
    scope = report.Scope(
        model_id=MEASURED,
        scoring=Scoring(Task.REGRESSION, Loss.parse(None, Task.REGRESSION)),
        start=start.timestamp(),
        until=now.timestamp(),
        width=width,
        count=shaping.bucket_count(duration, width),
        first_version=9,
        versions=(1, 2),
    )
    began = time.perf_counter()
    with engine.connect() as conn:
        report._error_cells(conn, scope)
        report._latency_cells(conn, scope)
        report._champion_calls(conn, scope)
        error_messages(conn, MEASURED, since_routing_version=9, until=now)
    return time.perf_counter() - began


def bytes_per_row(engine: Engine) -> tuple[float, float]:
    """Bytes on disk per prediction (tables and indexes), and per label."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT count(*) FROM predictions")).scalar_one()
        labels = conn.execute(text("SELECT count(*) FROM labels")).scalar_one()
        if engine.dialect.name == "postgresql":
            log = (
                conn.execute(
                    text(
                        "SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) FROM pg_inherits "
                        "WHERE inhparent = to_regclass('predictions')"
                    )
                ).scalar_one()
                or conn.execute(text("SELECT pg_total_relation_size('predictions')")).scalar_one()
            )
            label_bytes = conn.execute(text("SELECT pg_total_relation_size('labels')")).scalar_one()
        else:
            found = conn.execute(text("SELECT name, sum(pgsize) FROM dbstat GROUP BY name")).all()
            sizes: dict[str, int] = {name: int(size) for name, size in found}
            log = sum(v for k, v in sizes.items() if "predictions" in k)
            label_bytes = sum(v for k, v in sizes.items() if "labels" in k)
    return log / rows, label_bytes / labels


Row = tuple[int, float, float, float, float]  # size, look s, report s, bytes/row, bytes/label


def scale(args: argparse.Namespace, layout: str, folder: Path) -> list[Row]:
    """(size, look s, report s, bytes/row, bytes/label) at each size."""
    sizes = [int(s) for s in args.sizes.split(",")]
    now = PHASE_START + timedelta(seconds=args.window / args.rate + 1)
    engine, close = open_store(args.store, folder, LAYOUTS[layout])
    out = []
    try:
        if partitions_wanted(engine):
            oldest = PHASE_START.timestamp() - (max(sizes) - args.window) / args.rate
            make_days(engine, oldest - partitions.DAY, now.timestamp())
        for model_id in (BASELINE, MEASURED):
            fill_window(engine, model_id, args.window, args.rate)
        have = 0
        for size in sizes:
            built = time.perf_counter()
            grow_history(engine, have, size - args.window, args.rate)
            have = size - args.window
            build = time.perf_counter() - built
            looks = (window(BASELINE, now), window(MEASURED, now))
            _, look, _ = time_look(engine, looks, AB_READS, args.repeat)
            report_reads(engine, now)
            reads = statistics.median(report_reads(engine, now) for _ in range(args.repeat))
            per_row, per_label = bytes_per_row(engine)
            out.append((size, look, reads, per_row, per_label))
            print(
                f"{layout} {size:>11,} rows (built in {build:.0f} s): look {look:.3f} s, report's reads "
                f"{reads:.3f} s, {per_row:.0f} B/row, {per_label:.0f} B/label",
                file=sys.stderr,
                flush=True,
            )
    finally:
        close()
    return out


def partitions_wanted(engine: Engine) -> bool:
    with engine.connect() as conn:
        return bool(partitions.is_partitioned(conn))


def write_rate(args: argparse.Namespace, layout: str, folder: Path) -> tuple[float, float]:
    """Records a second written by `write_records`, and the writer thread's CPU µs per record."""
    engine, close = open_store(args.store, folder, LAYOUTS[layout])
    rng, now = random.Random(1), time.time()
    records = [
        PredictionRecord(
            1, f"r{rng.getrandbits(64):016x}", f"u{i % 5000}", now + i / 1000, 1, "champion", "served", 3,
            "user", 0.5, 1.2, None,
        )
        for i in range(args.write)
    ]  # fmt: skip
    try:
        wall, cpu = time.perf_counter(), time.thread_time()
        for i in range(0, len(records), 1000):
            write_records(engine, records[i : i + 1000])
        wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
    finally:
        close()
    return len(records) / wall, cpu / len(records) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="sqlite", help="sqlite, or a PostgreSQL URL")
    parser.add_argument("--sizes", default="1000000,10000000", help="the measured model's logged predictions")
    parser.add_argument("--layouts", default="by-day,one-table", help="PostgreSQL: by-day, one-table or both")
    parser.add_argument("--window", type=int, default=60_000, help="predictions in the A/B test's window")
    parser.add_argument("--rate", type=float, default=100.0, help="requests a second, window and history")
    parser.add_argument("--repeat", type=int, default=3, help="timed looks and report reads per size")
    parser.add_argument("--write", type=int, default=0, help="records per writer round (0: no writer rounds)")
    parser.add_argument("--write-rounds", type=int, default=3, help="interleaved writer rounds per layout")
    parser.add_argument("--markdown", action="store_true", help="also print the machine, date and command")
    args = parser.parse_args()
    layouts = ["sqlite"] if args.store == "sqlite" else args.layouts.split(",")
    with tempfile.TemporaryDirectory() as folder:
        rates: dict[str, list[tuple[float, float]]] = {layout: [] for layout in layouts}
        for _ in range(args.write_rounds if args.write else 0):
            for layout in layouts:
                rates[layout].append(write_rate(args, layout, Path(folder)))
                print(f"{layout} writer: {rates[layout][-1][0]:,.0f} records/s", file=sys.stderr, flush=True)
        results = {layout: scale(args, layout, Path(folder)) for layout in layouts} if args.sizes else {}
    print_tables(args, rates, results)


def print_tables(
    args: argparse.Namespace,
    rates: dict[str, list[tuple[float, float]]],
    results: dict[str, list[Row]],
) -> None:
    dialect = "SQLite" if args.store == "sqlite" else "PostgreSQL"
    if results:
        print(f"\n{dialect}, {args.window:,} predictions in the window; median seconds of {args.repeat}\n")
        print("| layout | logged predictions | look | report's log reads | bytes/prediction | bytes/label |")
        print("|---|---:|---:|---:|---:|---:|")
        for layout, rows in results.items():
            for size, look, reads, per_row, per_label in rows:
                cells = f"{look:.3f} s | {reads:.3f} s | {per_row:.0f} | {per_label:.0f}"
                print(f"| {layout} | {size:,} | {cells} |")
    if any(rates.values()):
        print(
            f"\n{dialect} log writer, {args.write:,} records a round, median of {args.write_rounds} rounds\n"
        )
        print("| layout | records/s | writer CPU µs/record |")
        print("|---|---:|---:|")
        for layout, measured in rates.items():
            rate = statistics.median(r for r, _ in measured)
            cpu = statistics.median(c for _, c in measured)
            print(f"| {layout} | {rate:,.0f} | {cpu:.1f} |")
    if args.markdown:
        print(
            f"\nMachine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {os.getloadavg()[0]:.1f}; "
            f"command: {' '.join(sys.argv)}"
        )


if __name__ == "__main__":
    main()
