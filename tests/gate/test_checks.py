"""The offline gate's checks, each at its boundary (pure: no store)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from pitstop.config import GatePolicy
from pitstop.gate.checks import (
    CHECK_ORDER,
    Check,
    GateInputs,
    TestSetFacts,
    decided_by,
    evaluate_gate,
    verdict,
)
from pitstop.leakage import FeatureScore, LateFeature
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
    if not passed:  # no direct finding: held for review, not called leakage
        assert check.review and "held for review" in check.detail


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
    assert ("held for review" in check.detail) is not passed


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
    skipped = {c.name: c for c in checks if c.skipped and c.name in ("metric_ratio", "leakage_floor")}
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


# -- leakage: direct checks naming the column, and the floor that holds for review ---------------------

HONEST_SCORES = (FeatureScore("a", 1.6), FeatureScore("b", 2.2))
BASELINE = {"mean": 3.0, "linear": 1.05}


def _probed(**changes: object) -> GateInputs:
    """Inputs with measured probes: baselines, one-feature errors, no late feature."""
    base = _inputs(challenger={"mae": 1.0, "r2": 0.9})
    values = {"baseline": BASELINE, "feature_errors": HONEST_SCORES, "late_features": ()} | changes
    return dataclasses.replace(base, **values)  # type: ignore[arg-type]


def test_a_genuine_large_improvement_over_a_stale_champion_is_held_for_review_not_called_leakage() -> None:
    checks = evaluate_gate(
        _probed(challenger={"mae": 0.42, "r2": 0.95}, champion={"mae": 1.0, "r2": 0.7}, baseline=BASELINE),
        POLICY,
    )
    floor = next(c for c in checks if c.name == "leakage_floor")
    assert floor.review and not floor.passed and "held for review" in floor.detail
    assert decided_by(checks) == "leakage.review" and verdict(checks) == "review"
    assert not any("leakage:" in c.detail for c in checks)


def test_a_feature_that_alone_predicts_the_target_fails_naming_it_even_when_it_improves_less_than_2x() -> (
    None
):
    leak = FeatureScore("prep_minutes", 0.5)  # 0.167 x predicting the mean
    checks = evaluate_gate(
        _probed(
            challenger={"mae": 0.46, "r2": 0.98},
            champion={"mae": 0.8, "r2": 0.95},  # 0.575 x: above the 0.5 floor
            feature_errors=(*HONEST_SCORES, leak),
            baseline={"mean": 3.0, "linear": 0.47},
        ),
        POLICY,
    )
    single = next(c for c in checks if c.name == "single_feature")
    assert decided_by(checks) == "single_feature" and verdict(checks) == "failed"
    assert single.observed == "prep_minutes" and "prep_minutes alone" in single.detail


@pytest.mark.parametrize(("error", "passed"), [(0.6, False), (0.6001, True)])
def test_single_feature_boundary(error: float, passed: bool) -> None:
    check = _check_of(_probed(feature_errors=(FeatureScore("x", error),)), "single_feature")
    assert check.passed is passed and check.threshold == 0.2


def test_a_trusted_feature_is_exempt_from_the_single_feature_check() -> None:
    policy = GatePolicy(trusted_features=["x"])
    checks = evaluate_gate(_probed(feature_errors=(FeatureScore("x", 0.1),)), policy)
    assert next(c for c in checks if c.name == "single_feature").passed


def test_without_training_rows_the_single_feature_check_is_skipped_and_says_so() -> None:
    check = _check_of(_probed(feature_errors=None, baseline=None), "single_feature")
    assert check.skipped and check.passed and "training rows" in check.detail


def test_a_feature_recorded_after_the_event_time_fails_naming_it() -> None:
    late = LateFeature(
        "b", "b_available_at", 3, 120, "2026-01-10T00:00:00+00:00", "2026-01-10T02:00:00+00:00"
    )
    checks = evaluate_gate(_probed(late_features=(late,)), POLICY)
    check = next(c for c in checks if c.name == "feature_time")
    assert decided_by(checks) == "feature_time" and check.observed == "b"
    assert "b (its b_available_at is later than the event time on 3 of 120 rows" in check.detail


def test_feature_time_is_skipped_without_an_event_time_column() -> None:
    check = _check_of(_probed(late_features=None), "feature_time")
    assert check.skipped and check.passed


def test_a_first_model_is_checked_against_the_linear_baseline() -> None:
    checks = evaluate_gate(_probed(challenger={"mae": 0.5, "r2": 0.97}, champion=None), POLICY)
    floor = next(c for c in checks if c.name == "leakage_floor")
    assert not floor.skipped and floor.review and "linear model" in floor.detail
    assert decided_by(checks) == "leakage.review"


def test_a_floor_breach_with_a_direct_finding_fails_rather_than_holds() -> None:
    checks = evaluate_gate(
        _probed(challenger={"mae": 0.2, "r2": 0.99}, feature_errors=(FeatureScore("leak", 0.3),)), POLICY
    )
    floor = next(c for c in checks if c.name == "leakage_floor")
    assert not floor.passed and not floor.review and verdict(checks) == "failed"


def test_a_review_hold_with_another_failure_is_a_failure_decided_by_it() -> None:
    checks = evaluate_gate(_probed(challenger={"mae": 0.5, "r2": 0.3}, champion=None), POLICY)
    assert verdict(checks) == "failed" and decided_by(checks) == "min_quality"


def test_temporal_overlap_names_the_shared_period() -> None:
    start = NOW - timedelta(days=10)
    inputs = dataclasses.replace(
        _inputs(start=start, training_end=start + timedelta(days=2)), training_start=NOW - timedelta(days=40)
    )
    check = _check(inputs, "temporal_overlap")
    assert not check.passed
    assert "training overlaps the test set from 2026-05-22 00:00 to 2026-05-24 00:00" in check.detail


def _check_of(inputs: GateInputs, name: str) -> Check:
    return next(c for c in evaluate_gate(inputs, POLICY) if c.name == name)
