"""The story `pitstop demo` tells, on a demo workspace with a simulated clock: every run is the same.

Chapter 1 trains challengers and puts them through the offline gate. Chapter 2 takes the ones that
pass through shadow, A/B test and ramp on replayed live traffic (the real gateway, prediction log,
label join and controller, with a simulated clock), each stage catching what the earlier ones miss.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pitstop.clock import ManualClock
from pitstop.demo.data import FEATURES, TARGET, TIME, USER, Scenario, generate_deliveries
from pitstop.demo.folder import DEMO_MARK, demo_workspace, show_workspace
from pitstop.demo.traffic import live_traffic
from pitstop.events import EventKind
from pitstop.records.gate_result import GateResult
from pitstop.registry import VersionInfo
from pitstop.replay import Replay, prepare_traffic, replay_salt
from pitstop.workspace import Workspace

MODEL = "delivery-eta"
TRAINERS = "pitstop.demo.trainers"
# The demo world: eight months of deliveries ending two days before "today" (2026-10-28 for `pitstop
# demo`, whose clock is simulated; the real today for `pitstop demo --live`).
DEMO_NOW = datetime(2026, 10, 28, tzinfo=UTC)


@dataclass(frozen=True)
class World:
    """The demo's calendar, relative to its `now`."""

    now: datetime

    @property
    def start(self) -> pd.Timestamp:
        return pd.Timestamp(self.now) - pd.Timedelta(days=241)

    @property
    def test_start(self) -> pd.Timestamp:  # the last three weeks are held out
        return pd.Timestamp(self.now) - pd.Timedelta(days=22)

    @property
    def champion_as_of(self) -> pd.Timestamp:  # the champion saw four months
        return pd.Timestamp(self.now) - pd.Timedelta(days=119)

    @property
    def stale_test(self) -> tuple[pd.Timestamp, pd.Timestamp]:  # a test set from five months ago
        return pd.Timestamp(self.now) - pd.Timedelta(days=149), pd.Timestamp(self.now) - pd.Timedelta(
            days=128
        )

    def scenario(self, *, rain_probability: float = 0.18, rain_mean_mm: float = 4.0) -> Scenario:
        return Scenario(
            start=self.start, days=240, rain_probability=rain_probability, rain_mean_mm=rain_mean_mm
        )


# The live period brings storms: far more rain than any training month.
STORM_RAIN_PROBABILITY, STORM_RAIN_MEAN_MM = 0.7, 12.0
LIVE_DAYS = 4.0  # the longest path (shadow, a two-day A/B test, the ramp's dwells) fits with room
LIVE_REQUESTS = 13_000

# Durations of hours so a rollout fits in four days of replayed traffic; thresholds as shipped.
DEMO_POLICY = """\
# pitstop demo: the shipped thresholds, with durations short enough for four days of traffic.
shadow: {min_duration: 12h, max_duration: 2d, min_labeled: 500}
ab_test: {share: 0.25, min_duration: 12h, max_duration: 2d, label_maturation: 2h}
ramp: {dwell: 6h, min_labeled_per_arm: 150, standby: 12h}
serving: {shadow_sample: 0.2}
"""
CONTROLLER_INTERVAL = timedelta(minutes=15)
CONCURRENCY_WINDOW = timedelta(minutes=3)


@dataclass(frozen=True)
class Challenger:
    title: str
    params: dict[str, Any]
    data: str = "deliveries"
    test_set: str = "deliveries-test"
    old_period: bool = False  # trained only on what the champion saw
    pipeline: str | None = None
    expect: str = ""  # what the story says this challenger shows


CHALLENGERS = [
    Challenger(
        "leaky feature pipeline",
        {"max_iter": 200},
        data="deliveries-fp2",
        test_set="deliveries-test-fp2",
        pipeline="fp-2",
        expect="target leakage: prep_minutes alone predicts the outcome",
    ),
    Challenger("training cut short", {"max_iter": 8}, expect="simply worse"),
    Challenger(
        "fresh retrain, stale test set",
        {"max_iter": 200},
        test_set="deliveries-june",
        expect="gated on a test set nobody refreshed",
    ),
    Challenger(
        "trained without rain",
        {"max_iter": 200, "drop": "rain_mm"},
        expect="fine on October's test set, worse in November's storms",
    ),
    Challenger(
        "retrain of the old period",
        {"max_iter": 150, "seed": 3},
        old_period=True,
        expect="no better than the champion",
    ),
    Challenger(
        "pooled feature lookup",
        {"max_iter": 200, "lookup_pool": 5, "lookup_wave_ms": 30.0},
        expect="slow only when batches outgrow its connection pool",
    ),
    Challenger("fresh retrain", {"max_iter": 200}, expect="better on recent data"),
]


@dataclass
class DemoResult:
    workspace: Path
    champion_version: int | None = None
    first_champion: dict[str, Any] | None = None  # the bootstrapped champion's lineage
    gates: list[dict[str, Any]] = field(default_factory=list)
    rollouts: list[dict[str, Any]] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "workspace": str(self.workspace),
            "champion_version": self.champion_version,
            "first_champion": self.first_champion,
            "gates": self.gates,
            "rollouts": self.rollouts,
            "reports": self.reports,
        }


def run_demo(workspace_dir: Path | None, console: Console, out: Path | None = None) -> DemoResult:
    """Build the demo workspace, gate every challenger, then roll out the ones that pass."""
    clock = ManualClock(DEMO_NOW)
    ws = demo_workspace(workspace_dir, DEMO_POLICY, clock=clock)
    result = DemoResult(workspace=ws.path)
    console.rule("[bold]pitstop demo: delivery-eta")
    console.print(f"workspace {ws.path} (simulated clock starts {DEMO_NOW:%Y-%m-%d})\n")
    world = World(DEMO_NOW)
    champion = build_world(ws, world, console)
    result.first_champion = lineage_summary(ws.version(MODEL, champion))
    console.print(f"\nchampion: version {champion}, trained on data before {world.champion_as_of:%Y-%m-%d}\n")

    console.rule("stages 1 and 2: train challengers, then the offline gate")
    passed: list[tuple[Challenger, int]] = []
    for challenger in CHALLENGERS:
        with console.status(f"training and gating: {challenger.title}…"):
            version, report = train_and_gate(ws, world, challenger)
        result.gates.append(_gate_row(challenger.title, report))
        verdict = "[green]passed[/]" if report.passed else f"[red]rejected by {report.decided_by}[/]"
        console.print(f"  v{version.version} {challenger.title:<30} {verdict}")
        if report.passed:
            passed.append((challenger, version.version))
        else:
            result.rollouts.append(
                _row(
                    challenger.title,
                    version.version,
                    "rejected",
                    "gate",
                    report.decided_by or "",
                    _gate_reason(report),
                )
            )

    console.rule("stages 3 to 5: shadow, A/B test and ramp on replayed live traffic")
    console.print(f"policy: {DEMO_POLICY.splitlines()[0].removeprefix(DEMO_MARK + ': ')}")
    for index, (challenger, number) in enumerate(passed):
        result.rollouts.append(_roll_out(ws, clock, world, challenger, number, index, console))
        if out is not None:
            result.reports.append(_report(ws, out, number, result.rollouts[-1]["rollout_id"]))
    result.champion_version = ws.model(MODEL).aliases.get("champion")
    console.print()
    console.print(_summary_table(result.rollouts))
    console.print("why:\n" + _reasons(result.rollouts), soft_wrap=True)
    console.print(f"\nchampion is now version {result.champion_version}")
    for path in result.reports:
        console.print(f"report: {path}")
    show_workspace(console, ws, MODEL)
    ws.close()
    return result


def _roll_out(
    ws: Workspace,
    clock: ManualClock,
    world: World,
    challenger: Challenger,
    version: int,
    index: int,
    console: Console,
) -> dict[str, Any]:
    """Start the rollout and replay live traffic until the controller ends it."""
    start = clock.now() + timedelta(minutes=1)
    clock.set(start)
    # A seeded salt: the same users meet the challenger on every run, so every run tells the same story.
    stored = ws.start_rollout(MODEL, version, reason=f"demo: {challenger.title}", salt=replay_salt(index))
    traffic = live_traffic(
        pd.Timestamp(start),
        LIVE_DAYS,
        LIVE_REQUESTS,
        seed=100 + index,
        scenario=world.scenario(rain_probability=STORM_RAIN_PROBABILITY, rain_mean_mm=STORM_RAIN_MEAN_MM),
    )
    frame = prepare_traffic(traffic, FEATURES)
    bar = Progress(
        TextColumn(f"  v{version} {challenger.title:<30}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    with bar:
        task = bar.add_task("replay", total=len(frame))
        replay = Replay(
            ws,
            MODEL,
            frame,
            FEATURES,
            clock,
            CONTROLLER_INTERVAL,
            CONCURRENCY_WINDOW,
            progress=lambda done, total: bar.update(task, completed=done),
        )
        asyncio.run(replay.run())
    final = ws.rollouts(MODEL)[-1].state
    if final.outcome is None:  # traffic ran out before a decision: doubt favours the champion
        ws.abort(MODEL, reason="demo: the replayed traffic ended before a decision", actor="demo")
        final = ws.rollouts(MODEL)[-1].state
    last = [
        e
        for e in ws.events(MODEL)
        if e.kind is EventKind.ROLLOUT_TRANSITION and e.rollout_id == stored.state.id
    ][-1]
    style = "green" if final.outcome and final.outcome.value == "promoted" else "red"
    console.print(
        f"  v{version} {challenger.title:<30} [{style}]{final.outcome.value if final.outcome else '?'}[/]"
        f" at {final.stage} ({last.rule})"
    )
    row = _row(
        challenger.title,
        version,
        final.outcome.value if final.outcome else "undecided",
        final.stage or "",
        last.rule or "",
        final.reason or "",
    )
    row["rollout_id"] = stored.state.id
    clock.set(max(clock.now(), frame["label_time"].max().to_pydatetime()) + timedelta(hours=1))
    return row


def _report(ws: Workspace, out: Path, version: int, rollout_id: int) -> str:
    from pitstop.report import write_report

    out.mkdir(parents=True, exist_ok=True)
    return str(write_report(ws, MODEL, out / f"rollout-{rollout_id}-v{version}.html", rollout_id=rollout_id))


_DESCRIPTIONS = {
    "deliveries": "history before the test period",
    "deliveries-test": "the last three weeks, held out",
    "deliveries-june": "an old test set nobody refreshed",
    "deliveries-fp2": "feature pipeline fp-2, with a bug",
    "deliveries-test-fp2": "test set from pipeline fp-2",
}


def build_world(ws: Workspace, world: World, console: Console) -> int:
    """Generate and register the datasets, create the model, train and crown the champion."""
    with console.status("generating eight months of deliveries…"):
        frame = generate_deliveries(40_000, world.scenario(), seed=7)
        snapshots = _register_datasets(ws, world, frame)
    for name, snapshot in snapshots.items():
        console.print(
            f"  dataset {snapshot.ref:<22} {snapshot.rows:>6} rows  "
            f"{snapshot.time_min:%Y-%m-%d} .. {snapshot.time_max:%Y-%m-%d}  ({_DESCRIPTIONS[name]})"
        )
    ws.create_model(
        MODEL, task="regression", target=TARGET, time_column=TIME, features=FEATURES, id_columns=[USER]
    )
    with console.status("training the champion…"):
        champion = ws.train(
            MODEL,
            trainer=f"{TRAINERS}:gradient_boosting",
            data="deliveries",
            as_of=world.champion_as_of,
            params={"max_iter": 200},
        )
    ws.set_champion(MODEL, champion.version, reason="demo: the model in production today")
    console.print(lineage_panel(ws.version(MODEL, champion.version)))
    return champion.version


def lineage_summary(version: VersionInfo) -> dict[str, Any]:
    """The lineage a reader checks first: data, window, cutoff, parameters, trainer, code, environment."""
    lineage = version.lineage.to_json()  # the demo's output is JSON: the lineage as the store holds it
    return {
        "version": version.version,
        "sha256": version.sha256,
        "datasets": lineage["datasets"],
        "training_window": lineage["training_window"],
        "as_of": lineage["as_of"],
        "params": lineage["params"],
        "trainer": lineage["trainer"],
        "code": lineage["code"],
        "environment": lineage["environment"],
        "packages": lineage.get("packages"),
    }


def lineage_panel(version: VersionInfo) -> Panel:
    """A compact panel of where a version came from (`pitstop models show` prints all of it)."""
    facts = lineage_summary(version)
    window, code, env = facts["training_window"] or {}, facts["code"] or {}, facts["environment"] or {}
    packages = facts["packages"] or env.get("packages", {})  # older versions: the registering process's
    rows = [
        (
            "data",
            ", ".join(f"{d['name']}:{d['version']} sha256 {d['sha256'][:12]}…" for d in facts["datasets"]),
        ),
        (
            "training window",
            f"{_day(window.get('start'))} .. {_day(window.get('end'))} ({window.get('rows')} rows)",
        ),
        ("as-of cutoff", _day(facts["as_of"])),
        ("parameters", ", ".join(f"{k}={v}" for k, v in facts["params"].items()) or "-"),
        ("trainer", facts["trainer"] or "-"),
        ("code commit", str(code.get("commit", "unknown"))[:12] + (" (dirty)" if code.get("dirty") else "")),
        (
            "environment",
            f"python {env.get('python')}, "
            + ", ".join(f"{name} {packages[name]}" for name in LINEAGE_PACKAGES if name in packages),
        ),
        ("artifact", f"sha256 {version.sha256[:12]}…"),
    ]
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    for key, value in rows:
        grid.add_row(key, value)
    return Panel(grid, title=f"champion v{version.version}: lineage", title_align="left", expand=False)


LINEAGE_PACKAGES = ("pitstop", "scikit-learn", "pandas", "numpy")


def _day(value: str | None) -> str:
    return "-" if not value else pd.Timestamp(value).strftime("%Y-%m-%d %H:%M")


def train_and_gate(ws: Workspace, world: World, challenger: Challenger) -> tuple[Any, GateResult]:
    """Stage 1 and 2 for one challenger: its version and its offline gate report."""
    version = ws.train(
        MODEL,
        trainer=f"{TRAINERS}:gradient_boosting",
        data=challenger.data,
        as_of=world.champion_as_of if challenger.old_period else None,
        params=challenger.params,
        feature_pipeline_version=challenger.pipeline,
    )
    return version, ws.gate(MODEL, version.version, test_set=challenger.test_set)


def _register_datasets(ws: Workspace, world: World, frame: pd.DataFrame) -> dict[str, Any]:
    history = frame[frame[TIME] < world.test_start]
    test = frame[frame[TIME] >= world.test_start]
    june = frame[(frame[TIME] >= world.stale_test[0]) & (frame[TIME] < world.stale_test[1])]
    tables = {
        "deliveries": history,
        "deliveries-test": test,
        "deliveries-june": june,
        "deliveries-fp2": leaky_pipeline(history),
        "deliveries-test-fp2": leaky_pipeline(test),
    }
    data_dir = ws.path / "data"
    data_dir.mkdir(exist_ok=True)
    snapshots = {}
    for name, table in tables.items():
        path = data_dir / f"{name}.csv"
        table.to_csv(path, index=False)
        snapshots[name], _ = ws.add_dataset(name, path, time_column=TIME)
    return snapshots


def leaky_pipeline(frame: pd.DataFrame) -> pd.DataFrame:
    """Pipeline fp-2's bug: `prep_minutes` is read from the finished order, so it contains the outcome."""
    leaked = frame.copy()
    leaked["prep_minutes"] = (0.5 * leaked[TARGET]).round(1)
    return leaked


def _row(title: str, version: int, outcome: str, stage: str, rule: str, reason: str) -> dict[str, Any]:
    return {
        "challenger": title,
        "version": version,
        "outcome": outcome,
        "stage": stage,
        "rule": rule,
        "reason": reason,
    }


def _gate_reason(report: GateResult) -> str:
    decisive = next((c for c in report.checks if c.name == report.decided_by), None)
    return decisive.detail if decisive else ""


def _gate_row(title: str, report: GateResult) -> dict[str, Any]:
    decisive = next((c for c in report.checks if c.name == report.decided_by), None)
    return {
        "challenger": title,
        "version": report.version,
        "verdict": "passed" if report.passed else "rejected",
        "decided_by": report.decided_by,
        "observed": decisive.observed if decisive else None,
        "threshold": decisive.threshold if decisive else None,
        "detail": decisive.detail if decisive else "every check passed",
        "failed_checks": [c.name for c in report.checks if not c.passed],
    }


def _summary_table(rows: list[dict[str, Any]]) -> Table:
    out = Table(title="where each challenger stopped", title_justify="left", header_style="bold")
    for column in ("version", "challenger", "outcome", "stage", "rule"):
        out.add_column(column, no_wrap=True)
    for row in sorted(rows, key=lambda r: r["version"]):
        style = "green" if row["outcome"] == "promoted" else "red"
        out.add_row(
            f"v{row['version']}",
            row["challenger"],
            f"[{style}]{row['outcome']}[/]",
            row["stage"],
            row["rule"],
        )
    return out


def _reasons(rows: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"  v{row['version']}: {row['reason']}" for row in sorted(rows, key=lambda r: r["version"])
    )
