"""The offline gate's checks, each at its boundary (pure: no store)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pitstop.config import GatePolicy
from pitstop.gates import CHECK_ORDER, Check, GateInputs, TestSetFacts, decided_by, evaluate_gate
from pitstop.registry import Task

NOW = datetime(2026, 6, 1, tzinfo=UTC)
POLICY = GatePolicy()


def _inputs(
    *,
    task: Task = Task.REGRESSION,
    challenger: dict[str, float] | None = None,
    champion: dict[str, float] | None = None,
    newest: datetime = NOW - timedelta(days=1),
    start: datetime = NOW - timedelta(days=10),
    training_end: datetime | None = NOW - timedelta(days=11),
    missing: list[str] | None = None,
    time_range: bool = True,
) -> GateInputs:
    if challenger is None:
        challenger = {"mae": 1.0, "r2": 0.9} if task is Task.REGRESSION else {"log_loss": 0.4, "roc_auc": 0.8}
    facts = TestSetFacts(
        name="test",
        version=1,
        sha256="0" * 64,
        rows=10,
        time_min=start if time_range else None,
        time_max=newest if time_range else None,
        registered_at=NOW - timedelta(days=3),
        missing_columns=missing or [],
    )
    return GateInputs(
        task=task,
        challenger=challenger,
        champion=champion,
        test_set=facts,
        training_end=training_end,
        now=NOW,
    )


def _check(inputs: GateInputs, name: str):  # type: ignore[no-untyped-def]
    return next(c for c in evaluate_gate(inputs, POLICY) if c.name == name)


def test_checks_come_in_gate_order() -> None:
    assert [c.name for c in evaluate_gate(_inputs(), POLICY)] == list(CHECK_ORDER)


@pytest.mark.parametrize(("challenger_mae", "passed"), [(1.05, True), (1.0501, False), (0.9, True)])
def test_metric_ratio_boundary(challenger_mae: float, passed: bool) -> None:
    check = _check(
        _inputs(challenger={"mae": challenger_mae, "r2": 0.9}, champion={"mae": 1.0, "r2": 0.9}),
        "metric_ratio",
    )
    assert check.passed is passed and check.threshold == 1.05


@pytest.mark.parametrize(("challenger_mae", "passed"), [(0.5, True), (0.4999, False)])
def test_leakage_floor_boundary(challenger_mae: float, passed: bool) -> None:
    check = _check(
        _inputs(challenger={"mae": challenger_mae, "r2": 0.99}, champion={"mae": 1.0, "r2": 0.9}),
        "leakage_floor",
    )
    assert check.passed is passed
    if not passed:
        assert "target leakage" in check.detail


@pytest.mark.parametrize(("r2", "passed"), [(0.5, True), (0.4999, False)])
def test_min_quality_regression_boundary(r2: float, passed: bool) -> None:
    assert _check(_inputs(challenger={"mae": 1.0, "r2": r2}), "min_quality").passed is passed


@pytest.mark.parametrize(("auc", "passed"), [(0.6, True), (0.5999, False)])
def test_min_quality_classification_uses_auc(auc: float, passed: bool) -> None:
    check = _check(
        _inputs(task=Task.CLASSIFICATION, challenger={"log_loss": 0.5, "roc_auc": auc}), "min_quality"
    )
    assert check.passed is passed and check.threshold == 0.6


def _log_loss_check(name: str, challenger: float) -> Check:
    return _check(
        _inputs(
            task=Task.CLASSIFICATION,
            challenger={"log_loss": challenger, "roc_auc": 0.8},
            champion={"log_loss": 0.5, "roc_auc": 0.8},
        ),
        name,
    )


@pytest.mark.parametrize(("challenger_log_loss", "passed"), [(0.525, True), (0.52505, False)])
def test_metric_ratio_boundary_on_log_loss(challenger_log_loss: float, passed: bool) -> None:
    check = _log_loss_check("metric_ratio", challenger_log_loss)
    assert check.passed is passed and check.threshold == 1.05 and "log loss" in check.detail


@pytest.mark.parametrize(("challenger_log_loss", "passed"), [(0.25, True), (0.24995, False)])
def test_leakage_floor_boundary_on_log_loss(challenger_log_loss: float, passed: bool) -> None:
    check = _log_loss_check("leakage_floor", challenger_log_loss)
    assert check.passed is passed and check.threshold == 0.5 and "log loss" in check.detail
    assert ("target leakage" in check.detail) is not passed


def test_temporal_overlap_without_any_time_range_is_skipped_and_counted_as_passed() -> None:
    check = _check(_inputs(time_range=False, training_end=None), "temporal_overlap")
    assert check.skipped and check.passed and "skipped" in check.detail


def test_classification_ratio_uses_log_loss() -> None:
    check = _check(
        _inputs(
            task=Task.CLASSIFICATION,
            challenger={"log_loss": 0.53, "roc_auc": 0.8},
            champion={"log_loss": 0.5, "roc_auc": 0.8},
        ),
        "metric_ratio",
    )
    assert not check.passed and "log loss" in check.detail


@pytest.mark.parametrize(("age_days", "passed"), [(30, True), (30.001, False)])
def test_test_set_age_boundary(age_days: float, passed: bool) -> None:
    check = _check(_inputs(newest=NOW - timedelta(days=age_days)), "test_set_age")
    assert check.passed is passed


def test_test_set_age_without_time_column_uses_registration_time() -> None:
    check = _check(_inputs(time_range=False), "test_set_age")
    assert check.passed and check.observed == 3.0 and "registration" in check.detail


@pytest.mark.parametrize(
    ("gap", "passed"), [(timedelta(seconds=1), True), (timedelta(0), False), (-timedelta(days=5), False)]
)
def test_temporal_overlap_boundary(gap: timedelta, passed: bool) -> None:
    start = NOW - timedelta(days=10)
    assert _check(_inputs(start=start, training_end=start - gap), "temporal_overlap").passed is passed


def test_without_champion_ratio_checks_are_skipped_and_say_so() -> None:
    checks = evaluate_gate(_inputs(champion=None), POLICY)
    skipped = {c.name: c for c in checks if c.skipped}
    assert set(skipped) == {"metric_ratio", "leakage_floor"}
    assert all(c.passed and "no champion" in c.detail for c in skipped.values())
    assert decided_by(checks) is None


def test_missing_columns_fail_the_schema_and_nothing_is_scored() -> None:
    checks = evaluate_gate(_inputs(challenger=None, missing=["distance"]), POLICY)
    assert decided_by(checks) == "schema"
    assert "distance" in checks[0].detail
    assert all(c.skipped and not c.passed for c in checks[3:])


def test_first_failure_in_order_decides() -> None:
    checks = evaluate_gate(
        _inputs(
            newest=NOW - timedelta(days=90),
            challenger={"mae": 2.0, "r2": 0.1},
            champion={"mae": 1.0, "r2": 0.9},
        ),
        POLICY,
    )
    assert decided_by(checks) == "test_set_age"
    assert [c.name for c in checks if not c.passed] == ["test_set_age", "metric_ratio", "min_quality"]
