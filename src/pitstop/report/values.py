"""What a report or the dashboard shows about one rollout, as plain values (JSON-able with `to_dict`).

Time series share one axis: `ReportData.times` holds the start of each time bucket, and every per-arm
list is aligned with it (None or 0 where a bucket has no data). Curves that restart with each phase or
ramp step (`BandCurve`) carry their own times.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from pitstop.events import Event
from pitstop.jsonable import json_safe
from pitstop.records.gate_result import GateResult
from pitstop.store.predictions.error_messages import ErrorMessages


@dataclass(frozen=True)
class Band:
    """One phase or ramp step as it happened: from the routing table that began it to the next one."""

    label: str  # as people say it: "shadow", "ab_test 50%", "ramp 75%"
    phase: str  # shadow | ab_test | ramp
    start: datetime
    end: datetime
    share: float  # share of users served by the challenger
    routing_version: int  # the first routing version of the band (later bands start at higher ones)
    rule: str | None = None  # the rule that began the band
    reason: str | None = None
    actor: str | None = None


@dataclass(frozen=True)
class SharePoint:
    """From `time` on, the challenger version served `share` of users (routing table `routing_version`)."""

    time: datetime
    share: float
    routing_version: int
    label: str


@dataclass(frozen=True)
class Thresholds:
    """The policy's limits the charts draw, from the rollout's stored policy and plan."""

    shadow_tolerance: float  # shadow: challenger error at most this x champion's
    shadow_p99_ratio: float
    rollback_error_ratio: float  # A/B and ramp: roll back above this x champion's error
    rollback_p99_ratio: float
    latency_slack_ms: float  # added to every p99 limit (`guardrails.latency_slack`)
    baseline_alpha: float  # level of the champion's p99 bound over the rollout (`guardrails.baseline_alpha`)
    shadow_min_labeled: int  # labelled pairs before the shadow verdict
    ramp_min_labeled_per_arm: int
    ab_margin: float  # relative error reduction the challenger must beat
    alpha: float
    ab_share: float
    ab_required: dict[str, int] | None = None  # planned units per arm (from the stored A/B plan)

    def error_ratio_limit(self, phase: str) -> tuple[str, float] | None:
        """The error-ratio line of a phase: its name and value."""
        if phase == "shadow":
            return "shadow tolerance", self.shadow_tolerance
        if phase in ("ab_test", "ramp"):
            return "rollback", self.rollback_error_ratio
        return None

    def p99_ratio_limit(self, phase: str) -> float | None:
        """The phase's p99 ratio: its limit is this x the champion's baseline + `latency_slack_ms`."""
        if phase == "shadow":
            return self.shadow_p99_ratio
        if phase in ("ab_test", "ramp"):
            return self.rollback_p99_ratio
        return None


@dataclass(frozen=True)
class ArmSeries:
    """One arm (all its predictions, served or in shadow) per time bucket, aligned with `ReportData.times`."""

    arm: str
    requests: list[int]
    failures: list[int]
    labelled: list[int]
    error_mean: list[float | None]
    error_se: list[float | None]  # standard error of the bucket's mean (per request)
    latency_p50: list[float | None]  # milliseconds
    latency_p99: list[float | None]


@dataclass(frozen=True)
class BandCurve:
    """A quantity accumulated from the start of one band, at the end of each of its time buckets."""

    band: str
    name: str
    time: list[datetime]
    value: list[float | None]
    limit: float | None = None  # the line it is judged against (tolerance, required samples)
    limit_name: str | None = None


@dataclass(frozen=True)
class LatencyLimit:
    """The p99 limit of one band as the latency rule computes it at a look at each time:
    `ratio` x the champion's baseline + `slack_ms`, in milliseconds (None: too few calls for a baseline).

    The baseline is the rule's own: an always-valid upper bound of the champion's p99 over the calls it
    served since the rollout began (at a 100 % ramp step, where it serves nobody, those before the step).
    Where a decision recorded the limit it applied (a latency rollback or rejection), that point is the
    recorded one.
    """

    band: str
    ratio: float
    slack_ms: float
    time: list[datetime]
    baseline_ms: list[float | None]
    limit_ms: list[float | None]
    recorded: list[bool]  # True: the limit in the decision's own numbers, at the decision's time


@dataclass(frozen=True)
class LatencyCheck:
    """What the phase's p99 latency rule sees at a look (`comparison.latency_check`): the challenger's
    p99 over the phase's calls, the limit, and its calls slower than the limit."""

    p99_ms: float | None
    limit_ms: float | None  # None: the champion has not served enough calls for a baseline yet
    baseline_ms: float | None
    ratio: float
    slack_ms: float
    calls: int
    slow_calls: int | None

    @classmethod
    def of(cls, check: Mapping[str, Any]) -> LatencyCheck:
        return cls(**{name: check[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class BandSummary:
    """One arm over one whole band: what the controller's evidence of that phase is made of."""

    band: str
    arm: str
    requests: int
    failures: int
    labelled: int
    error_mean: float | None
    error_se: float | None
    latency_p50: float | None
    latency_p99: float | None


@dataclass(frozen=True)
class ShadowComparison:
    """Both models on the same labelled live requests during shadow: the paired error differences."""

    n: int
    champion_mean: float | None
    challenger_mean: float | None
    diff_mean: float | None  # challenger - champion, per request
    diff_sd: float | None
    edges: list[float]  # histogram of the differences: bin edges (one more than counts)
    counts: list[int]
    ratio: float | None  # challenger / champion mean error
    tolerance: float
    test: dict[str, Any] | None = None  # the paired test the decision ran
    rule: str | None = None  # the shadow verdict (None while shadow is running)
    reason: str | None = None


@dataclass(frozen=True)
class ABResult:
    """The A/B test: relative effect on error (negative: the challenger is better), interval, p-value."""

    method: str  # msprt | per_user | welch | mann_whitney
    effect: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    margin: float
    alpha: float
    units: dict[str, int]
    labelled: dict[str, int]
    srm: dict[str, Any] | None
    rule: str
    reason: str
    final: bool  # False while the A/B test is still running (the numbers of the last look)
    time: datetime | None = None


@dataclass(frozen=True)
class Narrative:
    """The decision in words, generated from the recorded rule, reason and numbers."""

    headline: str
    because: str
    numbers: list[tuple[str, str]]
    path: list[str]


@dataclass(frozen=True)
class StatusWords:
    """A rollout in progress as `rollout status` and the dashboard say it (`words.status_words`)."""

    verdict: str  # better / worse / not yet, with the interval
    next_check: str  # what the next check needs, and what it would do now
    next_reason: str  # the reason the next check would give now
    progress: str | None  # labelled samples against what the phase needs
    latency: str | None  # what the p99 latency rule sees now


@dataclass(frozen=True)
class ReportData:
    model: str
    task: str
    rollout: dict[str, Any]  # `StoredRollout.to_dict()`
    generated_at: datetime
    start: datetime
    end: datetime  # the timeline ends here (the rollout's end, or now)
    active_until: datetime  # the series end here (when the rollout stopped routing users to the challenger)
    bucket_seconds: float
    times: list[datetime]  # start of each time bucket
    arms: dict[str, ArmSeries]
    bands: list[Band]
    share: list[SharePoint]
    events: list[Event]
    ratios: list[BandCurve]  # challenger / champion error, cumulative within each band
    progress: list[BandCurve]  # labelled samples toward what each band needs
    latency_limits: list[LatencyLimit]  # the p99 limit of each band, as the latency rule applies it
    challenger_p99: list[BandCurve]  # the challenger's p99, cumulative within each band
    summaries: list[BandSummary]
    thresholds: Thresholds
    gate: GateResult | None
    gate_note: str | None
    shadow: ShadowComparison | None
    ab: ABResult | None
    words: Narrative
    error_unit: str  # "mean absolute error (target units)" or "log loss"
    extra: dict[str, Any] = field(default_factory=dict)
    errors: ErrorMessages = field(default_factory=ErrorMessages)  # failed calls of the rollout, by message
    unavailable: list[str] = field(default_factory=list)  # `challenger v7 cannot be loaded: …` (live)
    latency_check: LatencyCheck | None = None  # what the latency rule sees now (a rollout in progress)

    @property
    def rollout_id(self) -> int:
        return int(self.rollout["rollout_id"])

    @property
    def outcome(self) -> str | None:
        value = self.rollout.get("outcome")
        return None if value is None else str(value)

    def to_dict(self) -> dict[str, Any]:
        out = {
            key: json_safe(value)
            for key, value in asdict(self).items()
            if key not in ("events", "words", "arms", "thresholds", "gate", "latency_check")
        }
        out["gate"] = None if self.gate is None else json_safe(self.gate.to_json())
        out["events"] = [event.to_dict() for event in self.events]
        out["errors"] = self.errors.to_dict()
        out["arms"] = {arm: json_safe(asdict(series)) for arm, series in self.arms.items()}
        out["thresholds"] = asdict(self.thresholds)
        out["latency_check"] = None if self.latency_check is None else json_safe(asdict(self.latency_check))
        out["words"] = {
            "headline": self.words.headline,
            "because": self.words.because,
            "numbers": [list(pair) for pair in self.words.numbers],
            "path": self.words.path,
        }
        return out
