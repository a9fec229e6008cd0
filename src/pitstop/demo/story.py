"""The story `pitstop demo` tells, chapter by chapter, on a throwaway workspace."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
from rich.console import Console
from sklearn.ensemble import HistGradientBoostingRegressor

from pitstop.demo.data import FEATURES, TARGET, TIME, USER, generate_deliveries
from pitstop.workspace import Workspace

MODEL = "delivery-eta"


@dataclass
class DemoResult:
    workspace: Path
    champion_version: int | None = None
    chapters: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "workspace": str(self.workspace),
            "champion_version": self.champion_version,
            "chapters": self.chapters,
        }


def run_demo(workspace_dir: Path | None, console: Console) -> DemoResult:
    folder = workspace_dir or Path(tempfile.mkdtemp(prefix="pitstop-demo-"))
    ws = Workspace.init(folder)
    result = DemoResult(workspace=ws.path)
    console.rule("[bold]pitstop demo: delivery-eta")
    console.print(f"workspace: {ws.path}")

    history = generate_deliveries(30_000, seed=7)
    data_file = ws.path / "deliveries.csv"
    history.to_csv(data_file, index=False)
    snapshot, _ = ws.add_dataset("deliveries", data_file, time_column=TIME)
    console.print(
        f"registered dataset {snapshot.ref}: {snapshot.rows} rows, "
        f"{snapshot.time_min:%Y-%m-%d} .. {snapshot.time_max:%Y-%m-%d}, sha256 {snapshot.sha256[:12]}…"
    )

    ws.create_model(
        MODEL, task="regression", target=TARGET, time_column=TIME, features=FEATURES, id_columns=[USER]
    )
    model = HistGradientBoostingRegressor(max_iter=200, random_state=0).fit(
        history[FEATURES], history[TARGET]
    )
    artifact = ws.path / "champion.joblib"
    joblib.dump(model, artifact)
    version = ws.register(MODEL, artifact, train_data=snapshot.ref, params={"max_iter": 200})
    aliases = ws.set_champion(MODEL, version.version, reason="demo: bootstrap the first champion")
    result.champion_version = aliases["champion"]
    console.print(
        f"registered {MODEL} version {version.version} (sha256 {version.sha256[:12]}…) and made it champion"
    )
    result.chapters.append({"chapter": "bootstrap", "version": version.version, "lineage": version.lineage})
    return result
