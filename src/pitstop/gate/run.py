"""Running the offline gate against a workspace: score both models on one test set, check, record."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pitstop import leakage, loading, model_input, registry
from pitstop.config import GatePolicy
from pitstop.datasets import DatasetSnapshot, parse_times
from pitstop.errors import UsageError
from pitstop.events import EventKind, record_event
from pitstop.gate.checks import GateInputs, TestSetFacts, decided_by, evaluate_gate, verdict
from pitstop.gate.metrics import offline_metrics
from pitstop.lineage import current_actor
from pitstop.losses import Loss, LossKind, check_percentage_labels
from pitstop.records.gate_result import Acceptance, GateResult, Probes, TestSetRef
from pitstop.records.lineage import Lineage
from pitstop.registry import Alias, ModelInfo, Task
from pitstop.scoring import (
    binary_target,
    check_target_complete,
    checked_predictions,
    class_indices,
    missing_hint,
)
from pitstop.training import rows_before, time_column_of, training_frame

if TYPE_CHECKING:
    from pitstop.context import Context


def _score(
    ws: Context, info: ModelInfo, version: int, X: pd.DataFrame, y: pd.Series, test_set: str
) -> dict[str, float]:
    """One model's metrics on the test set. Missing feature values go to the model as they are (some
    models handle them); when it fails on them, or returns no usable numbers, that is an input error."""
    who, on = f"{info.name} version {version}", f"test set {test_set}"
    recorded = loading.version_info(ws, info.name, version)
    estimator = loading.load_version(ws, info, recorded)
    signature = model_input.from_lineage(list(X.columns), recorded.lineage, estimator)
    predictions = checked_predictions(info.task, estimator, X, who, on, signature, info.classes)
    if not np.isfinite(predictions).all():
        raise UsageError(f"{who} returned NaN or infinite predictions on {on}{missing_hint(X, on)}")
    return offline_metrics(info.task, Loss.parse(info.loss, info.task), y, predictions)


def _target(info: ModelInfo, values: pd.Series, source: str) -> pd.Series:
    """The target as the loss reads it: 0/1 (binary), class indices (multiclass), or the values."""
    if info.task is Task.CLASSIFICATION:
        return binary_target(values, source)
    if info.task is Task.MULTICLASS:
        return class_indices(values, info.classes or [], source)
    return values


def _time_range(
    info: ModelInfo, snapshot: DatasetSnapshot, frame: pd.DataFrame
) -> tuple[datetime | None, datetime | None]:
    """The test set's time range on the model's time column (the snapshot's when the model has none)."""
    column = time_column_of(info, snapshot, frame.columns)
    if column is None or column == snapshot.time_column:
        return snapshot.time_min, snapshot.time_max
    times = parse_times(frame[column], column, f"test set {snapshot.ref}")
    return times.min().floor("us").to_pydatetime(), times.max().floor("us").to_pydatetime()


@dataclass(frozen=True)
class _TrainingRows:
    snapshot: DatasetSnapshot
    rows: pd.DataFrame  # every column, for the feature-time check
    X: pd.DataFrame
    y: pd.Series


def _training_rows(
    ws: Context, info: ModelInfo, lineage: Lineage, features: list[str]
) -> _TrainingRows | None:
    """The version's training rows as its lineage records them (snapshot and as-of cutoff); None when
    the lineage names no training data or it cannot be read back any more."""
    source = lineage.training_dataset
    if source is None:
        return None
    try:
        snapshot = loading.snapshot(ws, source.ref)
        frame = loading.dataset_frame(ws, snapshot.ref)
        as_of = pd.Timestamp(lineage.as_of) if lineage.as_of else None
        rows = rows_before(frame, time_column_of(info, snapshot, frame.columns), as_of, snapshot.ref)
        X, y = training_frame(info, rows, features, snapshot.ref)
        return _TrainingRows(snapshot, rows, X, _target(info, y, f"the training rows of {snapshot.ref}"))
    except UsageError:  # the data's gone or changed shape: the probes are skipped and say so
        return None


def _late_features(
    info: ModelInfo, snapshot: DatasetSnapshot, frame: pd.DataFrame, features: list[str], dataset: str
) -> tuple[leakage.LateFeature, ...] | None:
    column = time_column_of(info, snapshot, frame.columns)
    if column is None:
        return None
    events = parse_times(frame[column], column, f"{dataset} {snapshot.ref}")
    found = leakage.late_features(frame.reset_index(drop=True), features, events.reset_index(drop=True))
    return tuple(dataclasses.replace(f, dataset=dataset) for f in found)


def _late_anywhere(
    on_test: tuple[leakage.LateFeature, ...] | None, on_training: tuple[leakage.LateFeature, ...] | None
) -> tuple[leakage.LateFeature, ...] | None:
    """The test set's findings, then the training rows' for features the test set did not show late."""
    if on_test is None or on_training is None:
        return on_test if on_training is None else on_training
    seen = {f.column for f in on_test}
    return on_test + tuple(f for f in on_training if f.column not in seen)


def _accept(report: GateResult, actor: str, reason: str) -> GateResult:
    if report.verdict != "review":
        return report  # nothing held: a failed gate cannot be accepted, a passed one needs nothing
    return dataclasses.replace(
        report, passed=True, verdict="accepted", accepted=Acceptance(actor, reason.strip())
    )


def run_gate(
    ws: Context,
    model: str,
    version: str | int,
    test_set: str,
    *,
    actor: str | None = None,
    accept_review: str | None = None,
    policy: GatePolicy | None = None,
) -> GateResult:
    """Evaluate `version` and the current champion on the same test set; store and record the result.

    `accept_review` (a reason) lets a version held for review (`leakage.review`: suspiciously good, no
    direct leakage finding) pass; the acceptance is stored with the result and recorded with the actor.
    It never passes a gate that failed for any other reason. `policy` replaces `pitstop.yaml`'s `gate`
    section (the gate section of the policy a rollout is about to start with, in `retrain`)."""
    if accept_review is not None and not accept_review.strip():
        raise UsageError("accepting a review hold needs a reason; it is recorded with the event")
    actor = actor or current_actor()
    info = loading.model_info(ws, model)
    challenger = loading.version_info(ws, model, version)
    champion_version = info.aliases.get(Alias.CHAMPION.value)
    snapshot = loading.snapshot(ws, test_set)
    frame = loading.dataset_frame(ws, snapshot.ref)
    features = info.features or challenger.lineage.features
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
    y = _target(info, frame[info.target], source)
    loss = Loss.parse(info.loss, info.task)
    if loss.kind is LossKind.PERCENTAGE:
        check_percentage_labels(y, source)
    challenger_metrics = champion_metrics = None
    baseline: dict[str, float] | None = None
    scores: tuple[leakage.FeatureScore, ...] | None = None
    late = None
    if not facts.missing_columns:
        X = frame[features]
        challenger_metrics = _score(ws, info, challenger.version, X, y, snapshot.ref)
        if champion_version is not None:
            champion_metrics = _score(ws, info, champion_version, X, y, snapshot.ref)
        late = _late_features(info, snapshot, frame, features, "test set")
        trained_on = _training_rows(ws, info, challenger.lineage, features)
        if trained_on is not None:
            baseline = leakage.baseline_errors(info.task, trained_on.X, trained_on.y, X, y, loss=loss)
            scores = tuple(
                leakage.single_feature_errors(info.task, trained_on.X, trained_on.y, X, y, loss=loss)
            )
            on_training = _late_features(
                info, trained_on.snapshot, trained_on.rows, features, "training rows"
            )
            late = _late_anywhere(late, on_training)
    window = challenger.lineage.training_window
    window_start, window_end = window.start, window.end
    now = ws.clock.now()
    checks = evaluate_gate(
        GateInputs(
            task=info.task,
            loss=loss,
            challenger=challenger_metrics,
            champion=champion_metrics,
            test_set=facts,
            training_end=pd.Timestamp(window_end).to_pydatetime() if window_end else None,
            now=now,
            training_start=pd.Timestamp(window_start).to_pydatetime() if window_start else None,
            baseline=baseline,
            feature_errors=scores,
            late_features=late,
        ),
        policy or ws.config.gate,
    )
    report = GateResult(
        model=model,
        version=challenger.version,
        champion_version=champion_version,
        test_set=TestSetRef(snapshot.name, snapshot.version, snapshot.sha256, snapshot.rows),
        passed=all(check.passed for check in checks),
        checks=checks,
        metrics={"challenger": challenger_metrics, "champion": champion_metrics},
        evaluated_at=now,
        decided_by=decided_by(checks),
        verdict=verdict(checks),
        probes=Probes(
            baseline,
            None if scores is None else [score.to_dict() for score in scores],
            None if late is None else [found.to_dict() for found in late],
        ),
    )
    if accept_review is not None:
        report = _accept(report, actor, accept_review)
    with ws.writing() as conn:
        locked = registry.get_model(conn, model, for_update=True)
        registry.store_gate_result(conn, locked, challenger.version, report)
        record_event(
            conn,
            time=now,
            model_id=locked.id,
            kind=EventKind.GATE_EVALUATED,
            actor=actor,
            from_state=str(challenger.version),
            to_state="passed" if report.verdict == "passed" else report.verdict,
            rule=report.decided_by,
            reason=f"offline gate on {snapshot.ref}",
            data=report.to_json(),
        )
        if report.accepted is not None:
            record_event(
                conn,
                time=now,
                model_id=locked.id,
                kind=EventKind.GATE_REVIEW_ACCEPTED,
                actor=actor,
                from_state="review",
                to_state="accepted",
                rule=report.decided_by,
                reason=report.accepted.reason,
                data={"version": challenger.version, "checks": report.to_json()["checks"]},
            )
    return report
