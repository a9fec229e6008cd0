"""Running the offline gate against a workspace: score both models on one test set, check, record."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pitstop import registry
from pitstop.datasets import DatasetSnapshot, parse_times
from pitstop.errors import UsageError
from pitstop.events import record_event
from pitstop.gates import Check, GateInputs, TestSetFacts, decided_by, evaluate_gate
from pitstop.lineage import current_actor
from pitstop.metrics import offline_metrics
from pitstop.registry import Alias, ModelInfo, Task
from pitstop.scoring import (
    binary_target,
    check_target_complete,
    checked_predictions,
    missing_hint,
)
from pitstop.training import time_column_of

if TYPE_CHECKING:
    from pitstop.workspace import Workspace


@dataclass(frozen=True)
class GateReport:
    model: str
    version: int
    champion_version: int | None
    test_set: dict[str, Any]
    passed: bool
    checks: list[Check]
    metrics: dict[str, dict[str, float] | None]
    evaluated_at: datetime
    decided_by: str | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "champion_version": self.champion_version,
            "test_set": self.test_set,
            "passed": self.passed,
            "decided_by": self.decided_by,
            "checks": [
                {k: v for k, v in check.to_dict().items() if k != "skipped"} | {"skipped": check.skipped}
                for check in self.checks
            ],
            "metrics": self.metrics,
            "evaluated_at": self.evaluated_at.isoformat(),
        }


def _score(
    ws: Workspace, info: ModelInfo, version: int, X: pd.DataFrame, y: pd.Series, test_set: str
) -> dict[str, float]:
    """One model's metrics on the test set. Missing feature values go to the model as they are (some
    models handle them); when it fails on them, or returns no usable numbers, that is an input error."""
    who, on = f"{info.name} version {version}", f"test set {test_set}"
    predictions = checked_predictions(info.task, ws.load(info.name, version), X, who, on)
    if not np.isfinite(predictions).all():
        raise UsageError(f"{who} returned NaN or infinite predictions on {on}{missing_hint(X, on)}")
    return offline_metrics(info.task, y, predictions)


def _time_range(
    info: ModelInfo, snapshot: DatasetSnapshot, frame: pd.DataFrame
) -> tuple[datetime | None, datetime | None]:
    """The test set's time range on the model's time column (the snapshot's when the model has none)."""
    column = time_column_of(info, snapshot, frame.columns)
    if column is None or column == snapshot.time_column:
        return snapshot.time_min, snapshot.time_max
    times = parse_times(frame[column], column, f"test set {snapshot.ref}")
    return times.min().floor("us").to_pydatetime(), times.max().floor("us").to_pydatetime()


def run_gate(
    ws: Workspace, model: str, version: str | int, test_set: str, *, actor: str | None = None
) -> GateReport:
    """Evaluate `version` and the current champion on the same test set; store and record the result."""
    info = ws.model(model)
    challenger = ws.version(model, version)
    champion_version = info.aliases.get(Alias.CHAMPION.value)
    snapshot = ws.dataset(test_set)
    frame = ws.dataset_frame(snapshot.ref)
    features = info.features or challenger.lineage.get("features", [])
    if info.target not in frame.columns:
        raise UsageError(
            f"test set {snapshot.ref} has no target column {info.target!r}; it cannot score models"
        )
    if frame.empty:
        raise UsageError(f"test set {snapshot.ref} has no rows")
    source = f"test set {snapshot.ref}"
    check_target_complete(frame[info.target], source)
    time_min, time_max = _time_range(info, snapshot, frame)
    facts = TestSetFacts(
        name=snapshot.name,
        version=snapshot.version,
        sha256=snapshot.sha256,
        rows=snapshot.rows,
        time_min=time_min,
        time_max=time_max,
        registered_at=snapshot.created_at,
        missing_columns=[c for c in features if c not in frame.columns],
    )
    y = binary_target(frame[info.target], source) if info.task is Task.CLASSIFICATION else frame[info.target]
    challenger_metrics = champion_metrics = None
    if not facts.missing_columns:
        X = frame[features]
        challenger_metrics = _score(ws, info, challenger.version, X, y, snapshot.ref)
        if champion_version is not None:
            champion_metrics = _score(ws, info, champion_version, X, y, snapshot.ref)
    window_end = challenger.lineage.get("training_window", {}).get("end")
    now = ws.clock.now()
    checks = evaluate_gate(
        GateInputs(
            task=info.task,
            challenger=challenger_metrics,
            champion=champion_metrics,
            test_set=facts,
            training_end=pd.Timestamp(window_end).to_pydatetime() if window_end else None,
            now=now,
        ),
        ws.config.gate,
    )
    report = GateReport(
        model=model,
        version=challenger.version,
        champion_version=champion_version,
        test_set={
            "name": snapshot.name,
            "version": snapshot.version,
            "sha256": snapshot.sha256,
            "rows": snapshot.rows,
        },
        passed=all(check.passed for check in checks),
        checks=checks,
        metrics={"challenger": challenger_metrics, "champion": champion_metrics},
        evaluated_at=now,
        decided_by=decided_by(checks),
    )
    with ws.writing() as conn:
        locked = registry.get_model(conn, model, for_update=True)
        registry.store_gate_result(conn, locked, challenger.version, report.to_dict())
        record_event(
            conn,
            time=now,
            model_id=locked.id,
            kind="gate_evaluated",
            actor=actor or current_actor(),
            from_state=str(challenger.version),
            to_state="passed" if report.passed else "failed",
            rule=report.decided_by,
            reason=f"offline gate on {snapshot.ref}",
            data=report.to_dict(),
        )
    return report
