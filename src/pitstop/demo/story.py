"""The story `pitstop demo` tells, on a throwaway workspace whose clock is fixed so every run is the same."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console

from pitstop.clock import ManualClock
from pitstop.demo.data import FEATURES, TARGET, TIME, USER, generate_deliveries
from pitstop.gating import GateReport
from pitstop.workspace import Workspace

MODEL = "delivery-eta"
TRAINERS = "pitstop.demo.trainers"
# The demo world: eight months of deliveries ending 2026-10-26; "today" is two days later.
DEMO_NOW = datetime(2026, 10, 28, tzinfo=UTC)
TEST_START = pd.Timestamp("2026-10-06", tz="UTC")
CHAMPION_AS_OF = pd.Timestamp("2026-07-01", tz="UTC")
STALE_TEST = (pd.Timestamp("2026-06-01", tz="UTC"), pd.Timestamp("2026-06-22", tz="UTC"))


@dataclass
class DemoResult:
    workspace: Path
    champion_version: int | None = None
    gates: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "workspace": str(self.workspace),
            "champion_version": self.champion_version,
            "gates": self.gates,
        }


def run_demo(workspace_dir: Path | None, console: Console) -> DemoResult:
    """Build the demo workspace and walk challengers through the offline gate."""
    folder = workspace_dir or Path(tempfile.mkdtemp(prefix="pitstop-demo-"))
    ws = Workspace.init(folder, clock=ManualClock(DEMO_NOW))
    result = DemoResult(workspace=ws.path)
    console.rule("[bold]pitstop demo: delivery-eta")
    console.print(f"workspace {ws.path} (demo clock fixed at {DEMO_NOW:%Y-%m-%d})\n")

    with console.status("generating eight months of deliveries…"):
        snapshots = _register_datasets(ws, generate_deliveries(40_000, seed=7))
    for ref, snapshot in snapshots.items():
        console.print(
            f"  dataset {snapshot.ref:<22} {snapshot.rows:>6} rows  "
            f"{snapshot.time_min:%Y-%m-%d} .. {snapshot.time_max:%Y-%m-%d}  ({_DESCRIPTIONS[ref]})"
        )

    ws.create_model(
        MODEL, task="regression", target=TARGET, time_column=TIME, features=FEATURES, id_columns=[USER]
    )
    with console.status("training the champion…"):
        champion = ws.train(
            MODEL,
            trainer=f"{TRAINERS}:gradient_boosting",
            data="deliveries",
            as_of=CHAMPION_AS_OF,
            params={"max_iter": 200},
        )
    ws.set_champion(MODEL, champion.version, reason="demo: the model in production today")
    result.champion_version = champion.version
    console.print(
        f"\nchampion: version {champion.version}, trained on data before {CHAMPION_AS_OF:%Y-%m-%d} "
        f"({champion.lineage['training_window']['rows']} rows)\n"
    )

    console.rule("stage 1 + 2: train challengers, then the offline gate")
    for story in _CHALLENGERS:
        with console.status(f"training and gating: {story['title']}…"):
            version = ws.train(
                MODEL,
                trainer=f"{TRAINERS}:{story['trainer']}",
                data=story["data"],
                params=story["params"],
                feature_pipeline_version=story.get("pipeline"),
            )
            report = ws.gate(MODEL, version.version, test_set=story["test_set"])
        result.gates.append(_gate_row(story["title"], report))
        verdict = "[green]passed[/]" if report.passed else f"[red]rejected by {report.decided_by}[/]"
        console.print(f"  v{version.version} {story['title']:<26} {verdict}")

    console.print()
    console.print(_summary_table(result.gates))
    return result


_DESCRIPTIONS = {
    "deliveries": "history before the test period",
    "deliveries-test": "the last three weeks, held out",
    "deliveries-june": "an old test set nobody refreshed",
    "deliveries-fp2": "feature pipeline fp-2, with a bug",
    "deliveries-test-fp2": "test set from pipeline fp-2",
}

_CHALLENGERS: list[dict[str, Any]] = [
    {
        "title": "fresh retrain",
        "trainer": "gradient_boosting",
        "data": "deliveries",
        "params": {"max_iter": 200},
        "test_set": "deliveries-test",
    },
    {
        "title": "leaky feature pipeline",
        "trainer": "gradient_boosting",
        "data": "deliveries-fp2",
        "params": {"max_iter": 200},
        "pipeline": "fp-2",
        "test_set": "deliveries-test-fp2",
    },
    {
        "title": "simpler linear model",
        "trainer": "linear_on",
        "data": "deliveries",
        "params": {"columns": "distance_km,prep_minutes"},
        "test_set": "deliveries-test",
    },
    {
        "title": "retrain, stale test set",
        "trainer": "gradient_boosting",
        "data": "deliveries",
        "params": {"max_iter": 200},
        "test_set": "deliveries-june",
    },
]


def _register_datasets(ws: Workspace, frame: pd.DataFrame) -> dict[str, Any]:
    history = frame[frame[TIME] < TEST_START]
    test = frame[frame[TIME] >= TEST_START]
    june = frame[(frame[TIME] >= STALE_TEST[0]) & (frame[TIME] < STALE_TEST[1])]
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


def _gate_row(title: str, report: GateReport) -> dict[str, Any]:
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


def _summary_table(rows: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    out = Table(title="offline gate verdicts", title_justify="left", header_style="bold")
    for column in ("challenger", "version", "verdict", "check that decided", "observed", "threshold"):
        out.add_column(column)
    for row in rows:
        style = "green" if row["verdict"] == "passed" else "red"
        out.add_row(
            row["challenger"],
            str(row["version"]),
            f"[{style}]{row['verdict']}[/]",
            row["decided_by"] or "-",
            _fmt(row["observed"]),
            _fmt(row["threshold"]),
        )
    return out


def _fmt(value: Any) -> str:
    return "-" if value is None else (f"{value:.3g}" if isinstance(value, float) else str(value))
