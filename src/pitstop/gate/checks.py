"""Stage 2: the offline quality gate, as pure checks over already computed numbers.

Each check is a small function returning a `Check`; `evaluate_gate` runs them in a fixed order so the
first failure is the one that decided. Nothing here reads files, the store or the clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from pitstop.config import GatePolicy
from pitstop.gate.metrics import quality_metric
from pitstop.leakage import FeatureScore, LateFeature
from pitstop.losses import Loss
from pitstop.records.gate_result import Check as Check  # re-exported: the checks made here
from pitstop.registry import Task
from pitstop.rules import Rule

CHECK_ORDER = (
    Rule.SCHEMA,
    Rule.TEST_SET_AGE,
    Rule.TEMPORAL_OVERLAP,
    Rule.FEATURE_TIME,
    Rule.SINGLE_FEATURE,
    Rule.LEAKAGE_FLOOR,
    Rule.METRIC_RATIO,
    Rule.MIN_QUALITY,
)
# The checks that find leakage directly, each naming the column (or the overlap) it found.
DIRECT_LEAKAGE_CHECKS = (Rule.TEMPORAL_OVERLAP, Rule.FEATURE_TIME, Rule.SINGLE_FEATURE)
QUALITY_LABEL = {"r2": "R²", "roc_auc": "ROC AUC"}


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
    training_start: datetime | None = None  # start of the challenger's training window
    # Simple baselines' errors on the test set ({"mean": …, "linear": …}); None when not measured.
    baseline: dict[str, float] | None = None
    # One-feature models' test errors; None when not measured (no training rows to fit them on).
    feature_errors: tuple[FeatureScore, ...] | None = None
    # Features recorded after their row's event time; None without an event-time column.
    late_features: tuple[LateFeature, ...] | None = None
    loss: Loss | None = None  # what the metrics' mean loss is; None: the task's default

    @property
    def scored_by(self) -> Loss:
        return self.loss or Loss.default(self.task)


def evaluate_gate(inputs: GateInputs, policy: GatePolicy) -> list[Check]:
    """Every check of the offline gate, in `CHECK_ORDER`."""
    schema = check_schema(inputs.test_set)
    checks = [schema, check_test_set_age(inputs, policy), check_temporal_overlap(inputs)]
    if not schema.passed or inputs.challenger is None:
        not_run = "not evaluated: the test set lacks columns the models need"
        return checks + [Check(name, False, None, None, not_run, skipped=True) for name in CHECK_ORDER[3:]]
    checks += [check_feature_time(inputs), check_single_feature(inputs, policy)]
    found = any(not c.passed for c in checks if c.name in DIRECT_LEAKAGE_CHECKS)
    compared = [check_leakage_floor(inputs, policy, direct_finding=found), check_metric_ratio(inputs, policy)]
    return [*checks, *compared, check_min_quality(inputs, policy)]


def decided_by(checks: list[Check]) -> Rule | None:
    """The first failed check, in gate order; `leakage.review` when the only failures are held for
    review; None when all passed."""
    failed = [check for check in checks if not check.passed]
    decisive = next((check.name for check in failed if not check.review), None)
    # A suspiciously low error without a direct finding: held for a person's review, not called leakage.
    return decisive or (Rule.LEAKAGE_REVIEW if failed else None)


def verdict(checks: list[Check]) -> str:
    """`passed`, `failed`, or `review` (only review holds failed: a person may accept the version)."""
    failed = [check for check in checks if not check.passed]
    if not failed:
        return "passed"
    return "review" if all(check.review for check in failed) else "failed"


def check_schema(test_set: TestSetFacts) -> Check:
    if test_set.missing_columns:
        missing = ", ".join(test_set.missing_columns)
        return Check(
            Rule.SCHEMA,
            False,
            f"missing {missing}",
            "every feature and the target",
            f"the test set lacks {missing}",
        )
    return Check(
        Rule.SCHEMA,
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
    return Check(Rule.TEST_SET_AGE, passed, round(days, 2), limit, detail)


def check_temporal_overlap(inputs: GateInputs) -> Check:
    start, end = inputs.test_set.time_min, inputs.training_end
    if start is None or end is None:
        return Check(
            Rule.TEMPORAL_OVERLAP,
            True,
            None,
            None,
            "skipped: no time range on the test set or the training window",
            skipped=True,
        )
    passed = start > end
    detail = f"test set starts {start:%Y-%m-%d %H:%M}, training ended {end:%Y-%m-%d %H:%M}: " + (
        "no overlap" if passed else f"{_overlap(inputs)}; train with an as-of cutoff before the test set"
    )
    return Check(Rule.TEMPORAL_OVERLAP, passed, start.isoformat(), end.isoformat(), detail)


def _overlap(inputs: GateInputs) -> str:
    """The shared period, in words: the part of the test set's range the training window covers."""
    test_start, test_end = inputs.test_set.time_min, inputs.test_set.time_max
    assert test_start is not None and inputs.training_end is not None
    first = max(test_start, inputs.training_start) if inputs.training_start else test_start
    last = min(test_end, inputs.training_end) if test_end else inputs.training_end
    if first > last:  # training lies wholly after the test set: trained on its future
        return (
            f"training ({first:%Y-%m-%d %H:%M} ..) lies after the test set, which ends {last:%Y-%m-%d %H:%M}"
        )
    return f"training overlaps the test set from {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M}"


def check_feature_time(inputs: GateInputs) -> Check:
    """Fails naming every feature whose recorded time is later than its row's event time."""
    late = inputs.late_features
    if late is None:
        return Check(
            Rule.FEATURE_TIME, True, None, 0, "skipped: no event-time column to compare with", skipped=True
        )
    if not late:
        detail = "no feature is recorded after its row's event time"
        return Check(Rule.FEATURE_TIME, True, 0, 0, detail)
    described = "; ".join(
        f"{f.column} ({'its ' + f.source if f.source != f.column else 'its value'} is later than the "
        f"event time on {f.rows} of {f.checked} rows of the {f.dataset}, e.g. {f.example_recorded} "
        f"for an event at {f.example_event})"
        for f in late
    )
    detail = f"leakage: feature {described}; it cannot be known when the prediction is made"
    return Check(Rule.FEATURE_TIME, False, ", ".join(f.column for f in late), 0, detail)


def check_single_feature(inputs: GateInputs, policy: GatePolicy) -> Check:
    """Fails naming each feature that alone predicts the target nearly perfectly: a one-feature model's
    test error at most `single_feature_ratio` x the error of predicting the training mean."""
    scores, baseline = inputs.feature_errors, inputs.baseline
    threshold = policy.single_feature_ratio
    if scores is None or baseline is None:
        return Check(
            Rule.SINGLE_FEATURE,
            True,
            None,
            threshold,
            "skipped: the training rows were not available to fit one-feature models",
            skipped=True,
        )
    label = inputs.scored_by.label
    naive = baseline["mean"]
    trusted = set(policy.trusted_features)
    ratios = {s.column: s.error / naive if naive > 0 else float("inf") for s in scores}
    leaking = [s for s in scores if ratios[s.column] <= threshold and s.column not in trusted]
    if not scores:
        return Check(Rule.SINGLE_FEATURE, True, None, threshold, "no numeric feature to probe", skipped=True)
    best = min(scores, key=lambda s: s.error)
    if not leaking:
        detail = (
            f"best single feature {best.column}: {label} {best.error:.4g} alone, "
            f"{ratios[best.column]:.3f} x predicting the mean ({naive:.4g}); none at or below {threshold:g}"
        )
        return Check(Rule.SINGLE_FEATURE, True, round(ratios[best.column], 4), threshold, detail)
    challenger = inputs.challenger[inputs.scored_by.metric] if inputs.challenger else float("nan")
    named = "; ".join(
        f"{s.column} alone has {label} {s.error:.4g} ({ratios[s.column]:.3f} x predicting the mean, "
        f"{naive:.4g}; the whole model {challenger:.4g})"
        for s in leaking
    )
    detail = f"leakage: feature {named}; a value derived from the target?"
    return Check(Rule.SINGLE_FEATURE, False, ", ".join(s.column for s in leaking), threshold, detail)


def _ratio(inputs: GateInputs) -> tuple[str, float, float] | None:
    metric = inputs.scored_by.metric
    if inputs.champion is None or inputs.challenger is None:
        return None
    challenger, champion = inputs.challenger[metric], inputs.champion[metric]
    return inputs.scored_by.label, challenger, champion


def check_leakage_floor(inputs: GateInputs, policy: GatePolicy, *, direct_finding: bool = False) -> Check:
    """The challenger's error against the champion's (floor `leakage_ratio`) and a linear model's on the
    same features (floor `leakage_baseline_ratio`), so a first model is checked too. A breach with a
    direct finding fails with it; without one it holds the version for review: a genuine large
    improvement and a leak no direct check sees look the same here."""
    assert inputs.challenger is not None
    metric = inputs.scored_by.metric
    label, challenger = inputs.scored_by.label, inputs.challenger[metric]
    references = []
    if inputs.champion is not None:
        references.append(("champion's", inputs.champion[metric], policy.leakage_ratio))
    if inputs.baseline is not None:
        references.append(("a linear model's", inputs.baseline["linear"], policy.leakage_baseline_ratio))
    if not references:
        detail = "skipped: no champion and no baseline to compare with"
        return Check(Rule.LEAKAGE_FLOOR, True, None, policy.leakage_ratio, detail, skipped=True)
    compared = [
        (name, reference, floor, challenger / reference if reference > 0 else float("inf"))
        for name, reference, floor in references
    ]
    said = "; ".join(
        f"{label} {challenger:.4g} is {ratio:.4g} x {name} {reference:.4g} (floor {floor:g})"
        for name, reference, floor, ratio in compared
    )
    breached = [(ratio, floor) for _, _, floor, ratio in compared if ratio < floor]
    observed = round(min(ratio for *_, ratio in compared), 4)
    first_floor = compared[0][2]
    if not breached:
        return Check(Rule.LEAKAGE_FLOOR, True, observed, first_floor, f"{said}: plausible")
    ratio, floor = breached[0]
    if direct_finding:
        detail = f"{said}: suspiciously good, explained by the leakage found above"
        return Check(Rule.LEAKAGE_FLOOR, False, round(ratio, 4), floor, detail)
    detail = (
        f"{said}: suspiciously good and no direct check found leakage; held for review "
        f"({Rule.LEAKAGE_REVIEW}): a person may accept it, with a reason, or look for a leak"
    )
    return Check(Rule.LEAKAGE_FLOOR, False, round(ratio, 4), floor, detail, review=True)


def check_metric_ratio(inputs: GateInputs, policy: GatePolicy) -> Check:
    compared = _ratio(inputs)
    if compared is None:
        return Check(
            Rule.METRIC_RATIO,
            True,
            None,
            policy.max_metric_ratio,
            "skipped: no champion to compare with",
            skipped=True,
        )
    label, challenger, champion = compared
    ratio = challenger / champion if champion > 0 else float("inf")
    passed = ratio <= policy.max_metric_ratio
    detail = (
        f"challenger {label} {challenger:.4g} vs champion {champion:.4g}: ratio {ratio:.3f} "
        + ("within" if passed else "above")
        + f" the {policy.max_metric_ratio:g} limit"
    )
    return Check(Rule.METRIC_RATIO, passed, round(ratio, 4), policy.max_metric_ratio, detail)


def check_min_quality(inputs: GateInputs, policy: GatePolicy) -> Check:
    """R² (regression) or ROC AUC (classifiers; multiclass: the macro one-vs-rest mean) at least the
    policy's minimum; skipped for a pinball loss, whose quantile forecasts R² does not measure."""
    assert inputs.challenger is not None
    metric = quality_metric(inputs.task, inputs.scored_by)
    minimum = policy.min_r2 if inputs.task is Task.REGRESSION else policy.min_auc
    if metric is None:
        detail = f"skipped: R² does not measure a quantile forecast ({inputs.scored_by.label})"
        return Check(Rule.MIN_QUALITY, True, None, minimum, detail, skipped=True)
    observed = inputs.challenger[metric]
    passed = observed >= minimum
    detail = (
        f"{QUALITY_LABEL[metric]} {observed:.4f} "
        + (">=" if passed else "below the minimum")
        + f" {minimum:g}"
    )
    return Check(Rule.MIN_QUALITY, passed, round(observed, 4), minimum, detail)
