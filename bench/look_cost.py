"""What one controller look costs as the model's prediction log grows (issue 21).

    PYTHONPATH=src .venv/bin/python bench/look_cost.py [--store sqlite | --store URL]
                                                       [--sizes 100000,1000000] [--window 60000]

Two models share one store, each with `--window` predictions of its current A/B test (routing
version 9, both arms served, `--window` / `--rate` seconds of traffic, a label for 9 in 10, 2,000
users). The baseline model has nothing else; the measured one also has older history at the same
rate before its test began (routing versions 1-8, a label for 9 in 10), grown in place to each of
`--sizes` logged predictions. Rows and labels go in through the store's bulk writers
(`insert_predictions`, `upsert_labels`). At each size one look, `gather_evidence` then `decide`, is
timed on the baseline model and then on the measured one, `--repeat` times after one unmeasured
pair (the controller looks every 10 s, so its pages are warm); the table gives medians and the
median of each measured look's ratio to the baseline look timed just before it, so a slow spell of
the shared machine falls on both. Three looks:

- **A/B look**: what the controller runs now: the phase's queries (`rollout.reads.phase_reads`),
  each window bounded on both sides in time;
- **with the paired query**: the same look with the paired-requests query, which an A/B look ran
  before the phase chose its queries (it finds nothing there, and no A/B rule reads it);
- **no lower time bound**: the phase's queries over a window reaching back to 1970, as every look
  read before the window had a lower bound in time (its rows are the same: the routing version
  decides which count).

The rollout began with the A/B test: the champion's latency baseline reads the served calls since
the rollout began (`gather.champion_history`), which a long shadow phase would add to every look.

On PostgreSQL the tables are analysed after each growth (autovacuum does so in service); pitstop never
analyses SQLite. A PostgreSQL run uses a schema of its own, dropped at the end. `--markdown` prints
the table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, text

from pitstop.config import Policy
from pitstop.registry import Task
from pitstop.rollout.decide import decide
from pitstop.rollout.gather import Window, gather_evidence
from pitstop.rollout.phases import Phase
from pitstop.rollout.reads import Reads, phase_reads
from pitstop.rollout.state import RolloutState
from pitstop.store import migrate
from pitstop.store.engine import make_engine
from pitstop.store.predictions.labels import LabelRow, upsert_labels
from pitstop.store.predictions.write import PredictionRecord, insert_predictions

BASELINE, MEASURED = 1, 2  # two models in one store: the window alone, and the window with history
ROUTING = 9  # the A/B test's routing version; history has 1-8
PHASE_START = datetime(2026, 12, 1, 12, tzinfo=UTC)
USERS = 2000
CHUNK = 100_000
POLICY = Policy.model_validate({"ab_test": {"label_maturation": "2m"}})


def _record(model_id: int, i: int, at: float, routing: int, arm: str) -> PredictionRecord:
    version = 2 if arm == "challenger" else 1
    error = (i * 7919 % 1000) / 1000
    latency = 2.0 + (i * 104729 % 997) / 100
    return PredictionRecord(
        model_id,
        f"r{i}",
        f"u{i % USERS}",
        at,
        version,
        arm,
        "served",
        routing,
        "user",
        10.0 + error,
        latency,
        None,
    )


def _write(engine: Engine, records: list[PredictionRecord]) -> None:
    labels = [
        LabelRow(r.model_id, r.request_id, 10.0 + (i % 13) / 10, r.time, r.time + 60)
        for i, r in enumerate(records)
        if i % 10
    ]
    with engine.begin() as conn:
        insert_predictions(conn, records)
        upsert_labels(conn, labels)


def fill_window(engine: Engine, model_id: int, rows: int, rate: float) -> None:
    start = PHASE_START.timestamp()
    for first in range(0, rows, CHUNK):
        records = []
        for i in range(first, min(first + CHUNK, rows)):
            arm = "challenger" if (i % USERS) % 2 else "champion"
            records.append(_record(model_id, i, start + i / rate, ROUTING, arm))
        _write(engine, records)


def grow_history(engine: Engine, have: int, want: int, rate: float) -> None:
    """Older rows `have`..`want` (counted back from the test's start), routing versions 1-8."""
    start = PHASE_START.timestamp()
    for first in range(have, want, CHUNK):
        records = []
        for k in range(first, min(first + CHUNK, want)):
            routing = max(ROUTING - 1 - k // 500_000, 1)  # older rows, older routing versions
            records.append(_record(MEASURED, 10**9 + k, start - (k + 1) / rate, routing, "champion"))
        _write(engine, records)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("ANALYZE predictions"))
            conn.execute(text("ANALYZE labels"))


def state() -> RolloutState:
    return RolloutState(
        id=1,
        model="bench",
        champion_version=1,
        challenger_version=2,
        phase=Phase.AB_TEST,
        step=None,
        phase_started_at=PHASE_START,
        started_at=PHASE_START,
        phase_routing_version=ROUTING,
        salt="bench",
    )


def window(model_id: int, now: datetime) -> Window:
    """The A/B test's window as the controller builds it (`controller.evidence_window`)."""
    return Window(
        model_id=model_id,
        task=Task.REGRESSION,
        since_routing_version=ROUTING,
        started_at=PHASE_START,
        now=now,
        matured_before=now - POLICY.ab_test.label_maturation,
        rollout_started_at=PHASE_START,
        coverage_before=now - POLICY.ab_test.label_maturation,
    )


AB_READS = phase_reads(Phase.AB_TEST, POLICY)
LOOKS: dict[str, tuple[Callable[[Window], Window], Reads]] = {
    "A/B look (its phase's queries, window bounded in time)": (lambda w: w, AB_READS),
    "with the paired query (before step 1)": (lambda w: w, replace(AB_READS, paired=True)),
    "no lower time bound (before step 2)": (
        lambda w: replace(w, started_at=datetime(1970, 1, 2, tzinfo=UTC)),
        AB_READS,
    ),
}


def time_look(engine: Engine, looks: tuple[Window, Window], reads: Reads, repeat: int) -> tuple[float, ...]:
    """The medians of the baseline's and the measured look's seconds, and of each measured look's
    ratio to the baseline look timed just before it (so a slow spell of the machine falls on both)."""
    rollout = state()

    def once(look: Window) -> float:
        began = time.perf_counter()
        with engine.connect() as conn:
            evidence = gather_evidence(conn, look, reads)
        decide(rollout, POLICY, evidence, look.now)
        return time.perf_counter() - began

    once(looks[0]), once(looks[1])
    pairs = [(once(looks[0]), once(looks[1])) for _ in range(repeat)]
    medians = (statistics.median(b for b, _ in pairs), statistics.median(m for _, m in pairs))
    return (*medians, statistics.median(m / b for b, m in pairs))


def open_store(store: str, folder: Path, revision: str = "head") -> tuple[Engine, Callable[[], None]]:
    """A fresh store at `revision`: a SQLite file in `folder`, or a schema of its own on PostgreSQL."""
    if store == "sqlite":
        engine = make_engine(f"sqlite:///{folder / f'look-{uuid.uuid4().hex[:8]}.db'}")
        migrate.upgrade(engine, revision)
        return engine, engine.dispose
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = make_engine(store)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in store else "?"
    engine = make_engine(f"{store}{separator}options=-csearch_path%3D{schema}")
    migrate.upgrade(engine, revision)

    def close() -> None:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return engine, close


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="sqlite", help="sqlite, or a PostgreSQL URL")
    parser.add_argument("--sizes", default="100000,1000000", help="the measured model's logged predictions")
    parser.add_argument("--window", type=int, default=60_000, help="predictions in the A/B test's window")
    parser.add_argument("--rate", type=float, default=100.0, help="requests a second, window and history")
    parser.add_argument("--repeat", type=int, default=5, help="timed pairs of looks per size and look")
    parser.add_argument("--markdown", action="store_true", help="also print the machine, date and command")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    now = PHASE_START + timedelta(seconds=args.window / args.rate + 1)
    results: dict[str, list[tuple[float, ...]]] = {name: [] for name in LOOKS}
    with tempfile.TemporaryDirectory() as folder:
        engine, close = open_store(args.store, Path(folder))
        try:
            for model_id in (BASELINE, MEASURED):
                fill_window(engine, model_id, args.window, args.rate)
            have = 0
            for size in sizes:
                built = time.perf_counter()
                grow_history(engine, have, size - args.window, args.rate)
                have = size - args.window
                line = f"{size:>10,} rows (built in {time.perf_counter() - built:.0f} s):"
                for name, (shape, reads) in LOOKS.items():
                    looks = (shape(window(BASELINE, now)), shape(window(MEASURED, now)))
                    results[name].append(time_look(engine, looks, reads, args.repeat))
                    line += "  {:.3f} s / {:.3f} s ({:.2f})".format(*results[name][-1])
                print(line, file=sys.stderr, flush=True)
        finally:
            close()
    print_table(args, sizes, results)


def print_table(
    args: argparse.Namespace, sizes: list[int], results: dict[str, list[tuple[float, ...]]]
) -> None:
    dialect = "SQLite" if args.store == "sqlite" else "PostgreSQL"
    print(f"\n{dialect}, {args.window:,} predictions in the window; median seconds of {args.repeat} looks")
    print("(the measured look's ratio to the baseline look timed beside it)\n")
    print("| look | " + " | ".join(f"{n:,} rows" for n in sizes) + " |")
    print("|---|" + "---:|" * len(sizes))
    for name, cells in results.items():
        row = [f"{measured:.3f} s ({ratio:.2f}; baseline {base:.3f} s)" for base, measured, ratio in cells]
        print(f"| {name} | " + " | ".join(row) + " |")
    if args.markdown:
        print(
            f"\nMachine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; command: {' '.join(sys.argv)}"
        )


if __name__ == "__main__":
    main()
