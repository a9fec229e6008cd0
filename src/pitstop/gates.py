"""Stage 2: the offline quality gate, as pure checks over already computed numbers.

Each check is a small function returning a `Check`; `evaluate_gate` runs them in a fixed order so the
first failure is the one that decided. Nothing here reads files, the store or the clock.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from pitstop.config import GatePolicy
from pitstop.metrics import ERROR_METRIC, QUALITY_METRIC
from pitstop.registry import Task

CHECK_ORDER = ("schema", "test_set_age", "temporal_overlap", "leakage_floor", "metric_ratio", "min_quality")
METRIC_LABEL = {"mae": "MAE", "log_loss": "log loss", "r2": "R²", "roc_auc": "ROC AUC"}


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    observed: Any
    threshold: Any
    detail: str
    skipped: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TestSetFacts:
    """What the gate needs to know about the test set, apart from the scores."""

    __test__ = False  # not a pytest test class

    name: str
    version: int
    sha256: str
    rows: int
    time_min: datetime | None
    time_max: datetime | None
    registered_at: datetime
    missing_columns: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class GateInputs:
    task: Task
    challenger: dict[str, float] | None  # offline metrics; None when the schema check failed
    champion: dict[str, float] | None  # None without a champion (or when not scored)
    test_set: TestSetFacts
    training_end: datetime | None  # end of the challenger's training window
    now: datetime


def evaluate_gate(inputs: GateInputs, policy: GatePolicy) -> list[Check]:
    """Every check of the offline gate, in `CHECK_ORDER`."""
    schema = check_schema(inputs.test_set)
    checks = [schema, check_test_set_age(inputs, policy), check_temporal_overlap(inputs)]
    if not schema.passed or inputs.challenger is None:
        not_run = "not evaluated: the test set lacks columns the models need"
        return checks + [Check(name, False, None, None, not_run, skipped=True) for name in CHECK_ORDER[3:]]
    compared = [check_leakage_floor(inputs, policy), check_metric_ratio(inputs, policy)]
    return [*checks, *compared, check_min_quality(inputs, policy)]


def decided_by(checks: list[Check]) -> str | None:
    """The first failed check, in gate order; None when all passed."""
    return next((check.name for check in checks if not check.passed), None)


def check_schema(test_set: TestSetFacts) -> Check:
    if test_set.missing_columns:
        missing = ", ".join(test_set.missing_columns)
        return Check(
            "schema",
            False,
            f"missing {missing}",
            "every feature and the target",
            f"the test set lacks {missing}",
        )
    return Check(
        "schema",
        True,
        "all present",
        "every feature and the target",
        "the test set has every feature and the target",
    )


def check_test_set_age(inputs: GateInputs, policy: GatePolicy) -> Check:
    test_set = inputs.test_set
    newest = test_set.time_max or test_set.registered_at
    source = "newest row" if test_set.time_max else "registration (no time column)"
    age = inputs.now - newest
    days, limit = age.total_seconds() / 86400, policy.max_test_set_age.total_seconds() / 86400
    passed = age <= policy.max_test_set_age
    detail = f"{source} is {days:.1f} days old (limit {limit:g}); " + (
        "fresh enough" if passed else "stale: register a test set from recent data"
    )
    return Check("test_set_age", passed, round(days, 2), limit, detail)


def check_temporal_overlap(inputs: GateInputs) -> Check:
    start, end = inputs.test_set.time_min, inputs.training_end
    if start is None or end is None:
        return Check(
            "temporal_overlap",
            True,
            None,
            None,
            "skipped: no time range on the test set or the training window",
            skipped=True,
        )
    passed = start > end
    detail = f"test set starts {start:%Y-%m-%d %H:%M}, training ended {end:%Y-%m-%d %H:%M}: " + (
        "no overlap" if passed else "the model was trained on the test period; use --as-of before it"
    )
    return Check("temporal_overlap", passed, start.isoformat(), end.isoformat(), detail)


def _ratio(inputs: GateInputs) -> tuple[str, float, float] | None:
    metric = ERROR_METRIC[inputs.task]
    if inputs.champion is None or inputs.challenger is None:
        return None
    challenger, champion = inputs.challenger[metric], inputs.champion[metric]
    return metric, challenger, champion


def check_leakage_floor(inputs: GateInputs, policy: GatePolicy) -> Check:
    compared = _ratio(inputs)
    if compared is None:
        return Check(
            "leakage_floor",
            True,
            None,
            policy.leakage_ratio,
            "skipped: no champion to compare with",
            skipped=True,
        )
    metric, challenger, champion = compared
    ratio = challenger / champion if champion > 0 else float("inf")
    passed = ratio >= policy.leakage_ratio
    label = METRIC_LABEL[metric]
    detail = (
        f"challenger {label} {challenger:.4g} is {ratio:.3f} x champion's {champion:.4g} (floor "
        f"{policy.leakage_ratio:g}); "
        + ("plausible" if passed else "suspiciously good: check for target leakage")
    )
    return Check("leakage_floor", passed, round(ratio, 4), policy.leakage_ratio, detail)


def check_metric_ratio(inputs: GateInputs, policy: GatePolicy) -> Check:
    compared = _ratio(inputs)
    if compared is None:
        return Check(
            "metric_ratio",
            True,
            None,
            policy.max_metric_ratio,
            "skipped: no champion to compare with",
            skipped=True,
        )
    metric, challenger, champion = compared
    ratio = challenger / champion if champion > 0 else float("inf")
    passed = ratio <= policy.max_metric_ratio
    label = METRIC_LABEL[metric]
    detail = (
        f"challenger {label} {challenger:.4g} vs champion {champion:.4g}: ratio {ratio:.3f} "
        + ("within" if passed else "above")
        + f" the {policy.max_metric_ratio:g} limit"
    )
    return Check("metric_ratio", passed, round(ratio, 4), policy.max_metric_ratio, detail)


def check_min_quality(inputs: GateInputs, policy: GatePolicy) -> Check:
    assert inputs.challenger is not None
    metric = QUALITY_METRIC[inputs.task]
    minimum = policy.min_r2 if inputs.task is Task.REGRESSION else policy.min_auc
    observed = inputs.challenger[metric]
    passed = observed >= minimum
    detail = (
        f"{METRIC_LABEL[metric]} {observed:.4f} "
        + (">=" if passed else "below the minimum")
        + f" {minimum:g}"
    )
    return Check("min_quality", passed, round(observed, 4), minimum, detail)
