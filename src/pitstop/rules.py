"""Every rule a recorded decision names: an event's `rule`, a rollout's last check, a gate's verdict.

Each member says where it is decided and, in one line, when it fires; `docs/gen_reference.py` writes the
rules reference from this enum alone. A rule is a `str` (`Rule.AB_WIN == "ab.win"`), so the store and
JSON keep the names unchanged.

>>> Rule("ab.win") is Rule.AB_WIN, Rule.AB_WIN.stage
(True, 'A/B test')
"""

from __future__ import annotations

from enum import StrEnum

GATE = "offline gate"
START = "rollout start"
SHADOW = "shadow"
AB = "A/B test"
GUARDRAIL = "A/B test and ramp"
RAMP = "ramp"
HEALTH = "shadow, A/B test and ramp (health)"
PERSON = "a person (override)"
AFTER = "after promotion"
ALIAS = "alias move"
NONE = "no active rollout"
CLUSTER = "Kubernetes (routing.provider: kubernetes)"


class Rule(StrEnum):
    """A rule's name, with the stage that decides it and when it fires."""

    _value_: str
    stage: str
    description: str

    def __new__(cls, value: str, stage: str, description: str) -> Rule:
        member = str.__new__(cls, value)
        member._value_ = value
        member.stage = stage
        member.description = description
        return member

    # The offline gate's checks, in gate order: the first failed one names the verdict.
    SCHEMA = "schema", GATE, "the test set lacks a feature or the target the models need: failed"
    TEST_SET_AGE = "test_set_age", GATE, "the test set's newest row is older than `gate.max_test_set_age`"
    TEMPORAL_OVERLAP = (
        "temporal_overlap",
        GATE,
        "the challenger's training window overlaps the test set's time range: leakage, failed",
    )
    FEATURE_TIME = (
        "feature_time",
        GATE,
        "a feature is recorded after its row's event time, so it is unknown at prediction: leakage, failed",
    )
    SINGLE_FEATURE = (
        "single_feature",
        GATE,
        "one feature alone predicts the target nearly perfectly (`gate.single_feature_ratio`): leakage",
    )
    LEAKAGE_FLOOR = (
        "leakage_floor",
        GATE,
        "the challenger's error is suspiciously far below the champion's or a linear model's "
        "(`gate.leakage_ratio`), and a direct check found leakage: failed",
    )
    METRIC_RATIO = (
        "metric_ratio",
        GATE,
        "the challenger's test error is above `gate.max_metric_ratio` x the champion's: failed",
    )
    MIN_QUALITY = "min_quality", GATE, "R² or ROC AUC is below the gate's minimum: failed"
    LEAKAGE_REVIEW = (
        "leakage.review",
        GATE,
        "suspiciously good with no direct finding of leakage: held for a person's review",
    )
    GATE_PASSED = "gate.passed", GATE, "the offline gate passed: the rollout starts in shadow"
    GATE_SKIPPED = (
        "gate.skipped",
        GATE,
        "a person skipped the offline gate, with a recorded reason: the rollout starts in shadow",
    )
    ROLLOUT_START = "rollout.start", START, "the routing shadows the challenger as its rollout starts"

    SHADOW_UNAVAILABLE = (
        "shadow.unavailable",
        SHADOW,
        "a gateway cannot load the challenger: wait, then rejected after `shadow.unavailable_after`",
    )
    SHADOW_MIN_DURATION = (
        "shadow.min_duration",
        SHADOW,
        "wait: the shadow runs at least `shadow.min_duration`",
    )
    SHADOW_MIN_LABELED = "shadow.min_labeled", SHADOW, "wait: fewer labelled pairs than `shadow.min_labeled`"
    SHADOW_INCONCLUSIVE = (
        "shadow.inconclusive",
        SHADOW,
        "the max duration is reached without enough labelled pairs, or without the error ratio shown "
        "below the tolerance: rejected",
    )
    SHADOW_ERROR_RATE = (
        "shadow.error_rate",
        SHADOW,
        "the challenger fails or times out on too many shadow calls (exact test): rejected",
    )
    SHADOW_ERROR_RATIO = (
        "shadow.error_ratio",
        SHADOW,
        "the challenger's error is above `shadow.error_tolerance` x the champion's on the same requests, "
        "with confidence: rejected",
    )
    SHADOW_ERROR_RATIO_OPEN = (
        "shadow.error_ratio_open",
        SHADOW,
        "wait: the error ratio is not yet shown below or above the tolerance",
    )
    SHADOW_LATENCY_P99 = (
        "shadow.latency_p99",
        SHADOW,
        "the challenger's p99 latency is above `shadow.max_p99_ratio` x the champion's plus slack, "
        "by an always-valid test: rejected",
    )
    SHADOW_PASSED = (
        "shadow.passed",
        SHADOW,
        "the error ratio is below the tolerance with confidence: the A/B test starts",
    )
    AB_UNWINNABLE = (
        "ab.unwinnable",
        SHADOW,
        "the shadow passed, but the A/B test cannot reach its planned users within "
        "`ab_test.max_duration`: rejected, no user saw the challenger",
    )

    AB_SRM = (
        "ab.srm",
        AB,
        "users did not split between the arms as assigned (sample-ratio mismatch): rejected (`health.srm`)",
    )
    AB_MIN_LABELED = "ab.min_labeled", AB, "wait: no matured labels in both arms yet"
    AB_NO_VARIANCE = "ab.no_variance", AB, "wait: every labelled error is identical so far"
    AB_MIN_USERS = "ab.min_users", AB, "wait: fewer labelled users per arm than `ab_test.min_users_per_arm`"
    AB_MIN_DURATION = (
        "ab.min_duration",
        AB,
        "wait: a win shows (or the planned sample is reached) before `ab_test.min_duration`",
    )
    AB_SEQUENTIAL = "ab.sequential", AB, "wait: the always-valid interval does not conclude yet"
    AB_FIXED_HORIZON = "ab.fixed_horizon", AB, "wait: the fixed-horizon test's planned sample is not reached"
    AB_WIN = (
        "ab.win",
        AB,
        "the challenger's error is lower by more than `ab_test.min_improvement`, with confidence: "
        "the ramp starts",
    )
    AB_LOSS = "ab.loss", AB, "the challenger's error is higher than the champion's, with confidence: rejected"
    AB_FUTILE = (
        "ab.futile",
        AB,
        "the always-valid interval rules out an improvement beyond the margin: stopped early, rejected",
    )
    AB_INCONCLUSIVE = (
        "ab.inconclusive",
        AB,
        "the max duration (or the planned sample) is reached without a win: rejected",
    )

    GUARDRAIL_UNAVAILABLE = (
        "guardrail.unavailable",
        GUARDRAIL,
        "a gateway cannot load the challenger for `shadow.unavailable_after`: rolled back "
        "(`health.unavailable`)",
    )
    GUARDRAIL_ERROR_RATE = (
        "guardrail.error_rate",
        GUARDRAIL,
        "the challenger fails more than `guardrails.max_error_rate` of its requests and more often than "
        "the champion (always-valid test): rolled back (`health.error_rate`)",
    )
    GUARDRAIL_ERROR_RATIO = (
        "guardrail.error_ratio",
        GUARDRAIL,
        "the challenger's error is above `guardrails.max_error_ratio` x the champion's (always-valid "
        "test): rolled back (`health.error_ratio`)",
    )
    GUARDRAIL_LATENCY_P99 = (
        "guardrail.latency_p99",
        GUARDRAIL,
        "the challenger's p99 latency is above `guardrails.max_p99_ratio` x the champion's plus slack "
        "(always-valid test): rolled back (`health.latency_p99`)",
    )

    RAMP_DWELL = "ramp.dwell", RAMP, "wait: the step has not been held for `ramp.dwell`"
    RAMP_MIN_LABELED = "ramp.min_labeled", RAMP, "wait: fewer labelled requests per arm than the step needs"
    RAMP_MIN_USERS = (
        "ramp.min_users",
        RAMP,
        "wait: fewer labelled users per arm than the step's gate (`ramp.gates`) needs",
    )
    RAMP_APPROVAL = (
        "ramp.approval",
        RAMP,
        "wait: the step's gate (`ramp.gates`) needs a person's approval (`pitstop rollout approve`)",
    )
    RAMP_STEP = "ramp.step", RAMP, "the step held within every guardrail: the next, larger share"
    RAMP_COMPLETED = "ramp.completed", RAMP, "100 % held within every guardrail: promoted"

    HEALTH_BOTH_ARMS = (
        "health.both_arms",
        HEALTH,
        "more than `health.max_both_arms_share` of the step's users were served by both arms: "
        "held (`health.both_arms`)",
    )
    HEALTH_NO_TRAFFIC = (
        "health.no_traffic",
        HEALTH,
        "no request was served in the phase or step for `health.no_traffic_after`: a warning "
        "(`health.no_traffic`)",
    )
    HEALTH_LABEL_COVERAGE = (
        "health.label_coverage",
        HEALTH,
        "labels cover less than `health.min_label_coverage` of the served requests older than "
        "`ab_test.label_maturation`: a warning (`health.labels`)",
    )
    HEALTH_HELD = (
        "health.held",
        HEALTH,
        "wait: the rollout is held by a trigger whose action is hold; only harm ends it until a person "
        "resumes or rolls it back",
    )

    HEALTH_UNACKNOWLEDGED = (
        "health.unacknowledged",
        HEALTH,
        "wait: a live gateway (`pitstop gateways`) still serves an older routing table of the model; "
        "nothing advances until every live gateway acknowledges the current one",
    )
    HEALTH_NOT_WARM = (
        "health.not_warm",
        HEALTH,
        "wait: a live gateway (`pitstop gateways`) has not loaded and warmed the challenger; no look routes "
        "users to it (A/B test, ramp step, promotion) until every live gateway has",
    )

    MANUAL = "manual", PERSON, "a person set the routing by hand, outside any rollout"
    MANUAL_PROMOTE = "manual.promote", PERSON, "a person promoted the challenger (or advanced its rollout)"
    MANUAL_ROLLBACK = "manual.rollback", PERSON, "a person rolled the rollout back, or undid its promotion"
    MANUAL_ABORT = "manual.abort", PERSON, "a person aborted the rollout: the champion keeps serving"
    MANUAL_RESUME = (
        "manual.resume",
        PERSON,
        "a person resumed a held rollout: its phase or step starts a fresh evidence window",
    )
    MANUAL_APPROVE = (
        "manual.approve",
        PERSON,
        "a person approved leaving the current ramp step (its gate's `approval`)",
    )
    MANUAL_SET_CHAMPION = (
        "manual.set_champion",
        PERSON,
        "a person set the champion: the routing serves it alone",
    )

    STANDBY_EXPIRED = (
        "standby.expired",
        AFTER,
        "the previous champion's `ramp.standby` after a promotion is over: it is unloaded",
    )

    # Way B: what the leading controller did in the cluster after a round (`pitstop.cluster`).
    CLUSTER_CREATED = "cluster.created", CLUSTER, "a routed version's Deployment or Service was created"
    CLUSTER_SCALED = (
        "cluster.scaled",
        CLUSTER,
        "a version kept for routing was scaled back up to `kubernetes.replicas` (an autoscaler shrank it)",
    )
    CLUSTER_SCALED_DOWN = (
        "cluster.scaled_down",
        CLUSTER,
        "a version no longer routed, nor selected, for `kubernetes.scale_down_delay` was scaled to zero",
    )
    CLUSTER_NOT_READY = (
        "cluster.not_ready",
        CLUSTER,
        "the stable Service stays on its version: the champion's pods are not all ready (why is named)",
    )
    CLUSTER_CONFLICT = (
        "cluster.conflict",
        CLUSTER,
        "the stable Service changed since it was read (409): read again and readiness checked again",
    )
    CLUSTER_SWITCHED = "cluster.switched", CLUSTER, "the stable Service's selector moved to the champion"
    CLUSTER_SWITCH_COMPLETE = (
        "cluster.switch_complete",
        CLUSTER,
        "the stable Service's endpoints are only the champion's pods",
    )
    CLUSTER_FOREIGN = (
        "cluster.foreign",
        CLUSTER,
        "an object pitstop would manage exists without `app.kubernetes.io/managed-by: pitstop`: left alone",
    )

    # An alias move names the alias that moved.
    ALIAS_CHAMPION = "champion", ALIAS, "the `champion` alias moved to another version"
    ALIAS_CHALLENGER = "challenger", ALIAS, "the `challenger` alias moved to another version (or was cleared)"
    ALIAS_PREVIOUS = "previous", ALIAS, "the `previous` alias moved to the replaced champion (or was cleared)"

    INACTIVE = "inactive", NONE, "the rollout has ended: nothing to decide (never recorded)"
