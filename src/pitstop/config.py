"""`pitstop.yaml` and the environment, validated once into settings and policy.

Every default of DESIGN.md's stage table lives here, with a one-line description that `pitstop init`
writes into the commented `pitstop.yaml`, so the file and the code cannot disagree.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)

from pitstop.durations import format_duration, parse_duration, parse_positive_duration
from pitstop.errors import ConfigError, describe_os_error
from pitstop.store.engine import parse_database_url

CONFIG_FILE = "pitstop.yaml"
STATE_DIR = ".pitstop"
STORE_FILE = "pitstop.db"  # the default SQLite store, inside STATE_DIR
DATABASE_URL_VARIABLE = "PITSTOP_DATABASE_URL"

Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]
# A limit or interval of zero makes no sense (every test set stale, a controller spinning).
PositiveDuration = Annotated[
    timedelta,
    BeforeValidator(parse_positive_duration),
    PlainSerializer(format_duration, return_type=str),
]
_MEMORY_UNITS = {"MiB": 2**20, "GiB": 2**30}
_MEMORY_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(MiB|GiB)\s*$")


MIN_MEMORY_LIMIT = 64 * 2**20  # a Python process with pandas and scikit-learn loaded uses more


def parse_memory_limit(text: str) -> int:
    """Bytes from a size written with a binary unit, `MiB` or `GiB` (`512MiB`, `1.5GiB`), at least 64MiB.

    A bare number is refused, as for durations: bytes, MB or MiB would be a silent guess.

    >>> parse_memory_limit("1.5GiB")
    1610612736
    >>> parse_memory_limit(2048)
    Traceback (most recent call last):
    ValueError: not a memory size: 2048 (write it with a unit: 512MiB or 2GiB)
    """
    match = _MEMORY_PATTERN.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"not a memory size: {text!r} (write it with a unit: 512MiB or 2GiB)")
    size = round(float(match.group(1)) * _MEMORY_UNITS[match.group(2)])
    if size < MIN_MEMORY_LIMIT:
        raise ValueError(f"must be at least 64MiB, got {text!r}")
    return size


def format_memory_size(size: int) -> str:
    """The shortest exact form, the inverse of `parse_memory_limit` for whole MiB.

    >>> format_memory_size(2 * 2**30), format_memory_size(300 * 2**20)
    ('2GiB', '300MiB')
    """
    if size % 2**30 == 0:
        return f"{size // 2**30}GiB"
    return f"{size / 2**20:g}MiB"


MemoryLimit = Annotated[
    int,
    BeforeValidator(parse_memory_limit),
    PlainSerializer(format_memory_size, return_type=str),
]
Ratio = Annotated[float, Field(gt=0)]
Share = Annotated[float, Field(gt=0, le=1)]
Probability = Annotated[float, Field(gt=0, lt=1)]


class _Section(BaseModel):
    # strict: `true` is not 1.0 and `"0.5"` is not 0.5; a wrong type fails naming its key. Durations
    # still parse from text (their validator runs first) and enums from their names (`strict=False`).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ABMethod(StrEnum):
    """How the A/B test compares the arms' errors."""

    # Users are the randomised unit, so every method analyses users (a user's requests are correlated):
    PER_USER = "per_user"  # mean error per request (ratio over users), delta-method variance
    WELCH = "welch"  # Welch t on each user's mean error: every user weighs the same
    MANN_WHITNEY = "mann_whitney"  # Mann-Whitney U on each user's mean error (fixed horizon only)


class ABStopping(StrEnum):
    SEQUENTIAL = "sequential"  # always-valid test: clear wins and harms end early
    FIXED = "fixed"  # decide once, when the pre-computed sample size is reached


class GatePolicy(_Section):
    max_metric_ratio: Ratio = Field(
        1.05,
        description="challenger mean loss (the model's: MAE, log loss …) may be at most this x champion's",
    )
    min_r2: float = Field(
        0.5, le=1, description="regression: minimum R² on the test set (not checked for a pinball loss)"
    )
    min_auc: float = Field(0.6, ge=0, le=1, description="classification: minimum ROC AUC on the test set")
    leakage_ratio: Ratio = Field(
        0.5,
        description="a mean loss below this x champion's is suspiciously good: without a direct "
        "leakage finding the version is held for review",
    )
    leakage_baseline_ratio: Ratio = Field(
        0.5,
        description="a mean loss below this x a linear (logistic) model's on the same features, "
        "fitted on the training rows, is suspiciously good too (checks a first model)",
    )
    single_feature_ratio: Ratio = Field(
        0.2,
        description="a feature whose one-feature model has a mean loss at most this x predicting "
        "the training mean fails the gate as leakage, named",
    )
    trusted_features: list[str] = Field(
        default_factory=list,
        description="features known to be genuine strong predictors: exempt from single_feature",
    )
    max_test_set_age: PositiveDuration = Field(
        timedelta(days=30), description="newest test-set row may be at most this old"
    )

    @model_validator(mode="after")
    def _floor_below_ceiling(self) -> GatePolicy:
        if self.leakage_ratio >= self.max_metric_ratio:
            raise ValueError("leakage_ratio must be below max_metric_ratio")
        if self.single_feature_ratio >= 1:
            raise ValueError("single_feature_ratio must be below 1 (1 is no better than the mean)")
        return self


class ShadowPolicy(_Section):
    min_duration: Duration = Field(timedelta(hours=24), description="shadow runs at least this long")
    max_duration: PositiveDuration = Field(
        timedelta(days=7), description="not enough labelled pairs by then: rejected (champion stays)"
    )
    min_labeled: int = Field(1000, ge=2, description="labelled request pairs needed before a verdict")
    error_tolerance: Ratio = Field(
        1.05,
        description=(
            "passes when the challenger/champion error ratio is below this with confidence; "
            "rejected when it is above with confidence"
        ),
    )
    alpha: Probability = Field(
        0.05,
        description=(
            "error rate of the verdict over all looks: a challenger at the tolerance passes, or one "
            "below it is rejected on evidence, at most this often"
        ),
    )
    tau: Annotated[float, Field(gt=0)] = Field(
        0.05, description="confidence sequence mixture scale, in log error ratio (0.05: about 5 %)"
    )
    min_users: int = Field(
        30, ge=2, description="no verdict on evidence before this many users with labelled pairs"
    )
    max_error_rate: Annotated[float, Field(ge=0, le=1)] = Field(
        0.01, description="largest share of shadow calls that may fail or time out"
    )
    max_p99_ratio: Ratio = Field(1.5, description="challenger p99 latency may be at most this x champion's")
    unavailable_after: PositiveDuration = Field(
        timedelta(minutes=10),
        description=(
            "a challenger some gateway cannot load for this long ends the rollout: rejected in shadow "
            "(shadow.unavailable), rolled back in the A/B test or ramp (guardrail.unavailable)"
        ),
    )
    test: str = Field(
        "paired_t", description="reported secondary paired test (does not decide): paired_t | wilcoxon"
    )

    @model_validator(mode="after")
    def _check(self) -> ShadowPolicy:
        if self.max_duration < self.min_duration:
            raise ValueError("max_duration must not be shorter than min_duration")
        if self.test == "diebold_mariano":
            raise ValueError(
                "test: diebold_mariano is removed (at horizon 1 it was the paired t): use paired_t; "
                "the verdict is the per-user error-ratio confidence sequence, this test is only reported"
            )
        if self.test not in ("paired_t", "wilcoxon"):
            raise ValueError("test must be one of paired_t, wilcoxon")
        return self


class ABTestPolicy(_Section):
    share: Share = Field(0.1, description="share of users (sticky by user_id) served by the challenger")
    alpha: Probability = Field(0.05, description="significance level")
    power: Probability = Field(0.8, description="power of the sample-size calculation")
    min_improvement: Annotated[float, Field(ge=0, lt=1)] = Field(
        0.01, description="practical significance: relative error reduction the challenger must beat"
    )
    method: ABMethod = Field(
        ABMethod.PER_USER,
        strict=False,
        description=(
            "per_user (mean error per request) | welch (mean of each user's mean error) | "
            "mann_whitney (ranks of each user's mean error); users are the units of all three"
        ),
    )
    stopping: ABStopping = Field(
        ABStopping.SEQUENTIAL,
        strict=False,
        description="sequential (always valid, may stop early) | fixed (decide once)",
    )
    min_users_per_arm: int = Field(
        100,
        ge=2,
        description=(
            "no sequential win or loss before this many labelled users per arm: "
            "plug-in variances of fewer are unreliable"
        ),
    )
    tau: Annotated[float, Field(gt=0)] = Field(
        0.05, description="sequential test mixture scale, as a fraction of the baseline mean error"
    )
    srm_p_value: Probability = Field(
        0.001,
        description=(
            "sample-ratio mismatch when the sequential (always-valid) p-value is below this: "
            "the false 'experiment invalid' rate over the whole test"
        ),
    )
    min_duration: Duration = Field(timedelta(days=1), description="no win is declared before this")
    max_duration: PositiveDuration = Field(
        timedelta(days=14), description="inconclusive by then: rejected (champion stays)"
    )
    label_maturation: Duration = Field(
        timedelta(hours=1),
        description=(
            "only requests at least this old count for errors, in the A/B test and the ramp "
            "(labels have had time to arrive)"
        ),
    )
    start_unwinnable: bool = Field(
        False,
        description=(
            "start the A/B test even when its plan cannot be reached within max_duration at the "
            "observed traffic and users (false: the rollout ends as ab.unwinnable, nobody exposed)"
        ),
    )

    @model_validator(mode="after")
    def _check(self) -> ABTestPolicy:
        if self.share >= 1:
            raise ValueError("share must be below 1 (the ramp takes the challenger to 100 %)")
        if self.max_duration < self.min_duration:
            raise ValueError("max_duration must not be shorter than min_duration")
        if self.method is ABMethod.MANN_WHITNEY and self.stopping is ABStopping.SEQUENTIAL:
            raise ValueError(
                "method mann_whitney needs stopping: fixed (the sequential test is on the mean error)"
            )
        return self


class GuardrailPolicy(_Section):
    max_error_ratio: Ratio = Field(
        1.15, description="roll back when challenger error exceeds this x champion's"
    )
    max_p99_ratio: Ratio = Field(
        1.5,
        description=(
            "roll back when the always-valid test finds challenger p99 above this x champion's (+ slack)"
        ),
    )
    max_error_rate: Annotated[float, Field(ge=0, le=1)] = Field(
        0.02,
        description=(
            "roll back when more than this share of challenger requests fail and the test finds "
            "it failing more often than the champion"
        ),
    )
    alpha: Probability = Field(
        0.01,
        description=(
            "failure-rate, error-ratio and latency guardrails: false rollbacks of a challenger within "
            "the limits, each over the whole rollout (A/B test and every ramp step, every look)"
        ),
    )
    min_samples: int = Field(
        200, ge=1, description="labelled requests per arm before the error ratio is judged"
    )
    latency_slack: Duration = Field(
        timedelta(milliseconds=5),
        description="p99 differences below this never count (timer noise); shadow too",
    )


class StepGate(_Section):
    """What one ramp step needs before the rollout leaves it (for the next step, or promotion at 100 %)."""

    min_duration: Duration | None = Field(
        None, description="time at this step before it may be left (default: ramp.dwell)"
    )
    min_labelled_users: int = Field(
        0, ge=0, description="labelled users per arm at this step before it may be left"
    )
    approval: bool = Field(
        False, description="a person must approve leaving this step (pitstop rollout approve)"
    )


def _step_keys(value: Any) -> Any:
    """Gate keys as step percentages: `50` in YAML, `"50.0"` in a stored policy's JSON."""
    if not isinstance(value, dict):
        return value
    out = {}
    for key, gate in value.items():
        try:
            out[float(str(key).removesuffix("%"))] = gate
        except ValueError:
            raise ValueError(f"{key!r} is not a step (write the step's percent, e.g. 50)") from None
    return out


class RampPolicy(_Section):
    steps: list[Annotated[float, Field(gt=0, le=100)]] = Field(
        [10.0, 25.0, 50.0, 100.0], description="challenger share in percent at each step; must end at 100"
    )
    dwell: Duration = Field(timedelta(hours=1), description="time spent at each step")
    min_labeled_per_arm: int = Field(200, ge=1, description="labelled requests per arm needed at each step")
    standby: Duration = Field(
        timedelta(hours=24), description="the old champion stays loaded this long after promotion"
    )
    gates: Annotated[dict[float, StepGate], BeforeValidator(_step_keys)] = Field(
        {},
        description=(
            "per step (its percent), what it needs before it is left: {50: {approval: true, "
            "min_labelled_users: 500, min_duration: 2h}}"
        ),
    )

    def gate(self, share: float) -> StepGate:
        """The gate of the step at `share` (0-1): the configured one, or none beyond `dwell`."""
        for step, gate in self.gates.items():
            if abs(step / 100 - share) < 1e-9:
                return gate
        return StepGate()

    @model_validator(mode="after")
    def _check_steps(self) -> RampPolicy:
        if not self.steps:
            raise ValueError("steps must not be empty")
        if any(b <= a for a, b in zip(self.steps, self.steps[1:], strict=False)):
            raise ValueError(f"steps must be strictly increasing, got {self.steps}")
        if self.steps[-1] != 100:
            raise ValueError(f"steps must end at 100, got {self.steps[-1]:g}")
        unknown = [f"{key:g}" for key in self.gates if key not in self.steps]
        if unknown:
            steps = ", ".join(f"{step:g}" for step in self.steps)
            raise ValueError(f"gates.{unknown[0]}: no such step (the steps are {steps})")
        return self


class HealthAction(StrEnum):
    """What a health trigger does when it fires."""

    ROLLBACK = "rollback"  # end the rollout: rolled back (rejected in shadow), the champion serves all
    HOLD = "hold"  # freeze the share; no step or promotion until a person resumes (or rolls back)
    WARN = "warn"  # one warning event per phase or step; the rollout goes on


class HealthPolicy(_Section):
    """Each health trigger's action (`rollback`, `hold` or `warn`), and the new triggers' thresholds."""

    error_ratio: HealthAction = Field(
        HealthAction.ROLLBACK,
        strict=False,
        description="the error-ratio guardrail fires (guardrail.error_ratio)",
    )
    latency_p99: HealthAction = Field(
        HealthAction.ROLLBACK,
        strict=False,
        description="the p99-latency guardrail fires (guardrail.latency_p99)",
    )
    error_rate: HealthAction = Field(
        HealthAction.ROLLBACK,
        strict=False,
        description="the failure-rate guardrail fires (guardrail.error_rate)",
    )
    srm: HealthAction = Field(
        HealthAction.ROLLBACK,
        strict=False,
        description="sample-ratio mismatch in the A/B test (ab.srm); rollback ends it as rejected",
    )
    unavailable: HealthAction = Field(
        HealthAction.ROLLBACK,
        strict=False,
        description="a gateway cannot load the challenger for shadow.unavailable_after; in shadow "
        "rollback means rejected",
    )
    both_arms: HealthAction = Field(
        HealthAction.HOLD,
        strict=False,
        description="more than max_both_arms_share of a step's users were served by both arms",
    )
    no_traffic: HealthAction = Field(
        HealthAction.WARN,
        strict=False,
        description="no request served in the phase or step for no_traffic_after",
    )
    labels: HealthAction = Field(
        HealthAction.WARN,
        strict=False,
        description="labels cover less than min_label_coverage of the served requests older than "
        "ab_test.label_maturation",
    )
    max_both_arms_share: Annotated[float, Field(ge=0, lt=1)] = Field(
        0.0, description="share of a step's users allowed in both arms before both_arms fires"
    )
    no_traffic_after: PositiveDuration = Field(
        timedelta(hours=24), description="grace before a phase or step without served requests fires"
    )
    min_label_coverage: Annotated[float, Field(ge=0, le=1)] = Field(
        0.5, description="share of matured served requests that must have a label"
    )
    min_matured_requests: int = Field(
        100, ge=1, description="matured served requests before label coverage is judged"
    )

    def action(self, trigger: str) -> HealthAction:
        """The action of a trigger, by its key (`error_ratio`, `srm`, …)."""
        action: HealthAction = getattr(self, trigger)
        return action


class ServingSettings(_Section):
    poll_interval: PositiveDuration = Field(
        timedelta(seconds=1),
        description="how often a gateway re-reads routing (the fallback to push, and the only way on SQLite)",
    )
    push: bool = Field(
        True,
        description=(
            "PostgreSQL: each gateway listens for routing changes (LISTEN/NOTIFY) and applies them at "
            "once; false: polling only"
        ),
    )
    heartbeat_interval: PositiveDuration = Field(
        timedelta(seconds=2),
        description="how often a gateway records what it serves (also right after every routing switch)",
    )
    gateway_timeout: PositiveDuration = Field(
        timedelta(seconds=15),
        description=(
            "a gateway not heard from for this long is no longer live: the controller stops waiting for "
            "it to acknowledge routing"
        ),
    )
    shadow_sample: Share = Field(1.0, description="share of requests also scored by the shadow model")
    shadow_timing_sample: Annotated[float, Field(ge=0, le=1)] = Field(
        0.05,
        description=(
            "share of shadow requests also timed as a served call is (in the gateway's process, one row): "
            "the shadow's latency evidence; 0: the shadow phase judges no latency"
        ),
    )
    shadow_timeout: PositiveDuration = Field(
        timedelta(seconds=1),
        description="a shadow call slower than this (its own time, without waits for a CPU) is dropped",
    )
    shadow_concurrency: int = Field(8, ge=1, description="shadow calls in flight at once; more are skipped")
    shadow_process: bool = Field(
        True,
        description=(
            "score in-process shadow models in a child process at idle CPU priority, away from the "
            "served path's CPU and interpreter lock; false: on a thread of the gateway"
        ),
    )
    shadow_memory_limit: MemoryLimit | None = Field(
        2 * 2**30,
        description=(
            "a shadow model's process using more memory (resident) than this is restarted (counted); "
            "null: no limit"
        ),
    )
    batch_max_size: int = Field(64, ge=1, description="micro-batching: most requests in one predict call")
    shadow_batch_max_size: int = Field(
        512,
        ge=1,
        description=(
            "most rows in one shadow predict call (nobody waits: bigger is cheaper); at least batch_max_size"
        ),
    )
    model_threads: int = Field(
        1,
        ge=1,
        description="threads a model's native math may use per call (OpenMP/BLAS); 1 avoids oversubscription",
    )
    batch_max_wait: Duration = Field(
        timedelta(milliseconds=2), description="micro-batching: longest wait to fill a batch"
    )
    log_queue_size: int = Field(100_000, ge=1, description="prediction records waiting to be written")
    log_batch_size: int = Field(1000, ge=1, description="prediction records per write")
    log_flush_interval: PositiveDuration = Field(
        timedelta(milliseconds=500), description="longest wait before a write"
    )
    max_body_bytes: int = Field(1_048_576, ge=1, description="requests larger than this get 413")
    user_id_header: str = Field(
        "X-User-ID",
        min_length=1,
        description=(
            "the header naming the user of an Open Inference Protocol request (/v2/models/M/infer) for "
            "the sticky split, when its parameters carry no user_id"
        ),
    )
    cache_dir: str | None = Field(
        None,
        description=(
            "where a gateway keeps its last routing and verified artifacts, to start while the store "
            "is down; default <workspace>/.pitstop/serving-cache"
        ),
    )
    spool: bool = Field(
        True,
        description=(
            "while the store cannot be written, keep prediction records in a local spool on disk "
            "(<workspace>/.pitstop/spool/predictions/) and write them once it answers; false: they wait "
            "in the in-memory queue (serving.log_queue_size), lost if the gateway stops"
        ),
    )
    spool_max_bytes: MemoryLimit = Field(
        256 * 2**20,
        description=(
            "most bytes the spool holds over all gateway processes of the workspace (at least 64MiB); "
            "beyond it the newest records are dropped, counted as pitstop_predlog_dropped{reason=spool_full}"
        ),
    )


class StoreSettings(_Section):
    connect_timeout: PositiveDuration = Field(
        timedelta(seconds=5),
        description="PostgreSQL: a connection attempt longer than this fails (a server down or hanging)",
    )
    statement_timeout: Duration = Field(
        timedelta(seconds=30),
        description=(
            "PostgreSQL: a gateway's or its controller's statement running longer is cancelled; 0s: no "
            "limit (commands such as report and db upgrade are never limited)"
        ),
    )
    busy_timeout: PositiveDuration = Field(
        timedelta(seconds=30), description="SQLite: longest wait for another process's write lock"
    )
    retention: PositiveDuration | None = Field(
        None,
        description=(
            "prediction-log records older than this (by event time) are removed by the leading "
            "controller every hour and by pitstop store prune, on PostgreSQL by whole days (so up to "
            "a day more is kept), never those of an open rollout; null: keep everything"
        ),
    )


class ControllerSettings(_Section):
    interval: PositiveDuration = Field(timedelta(seconds=10), description="time between decision rounds")
    lease_ttl: PositiveDuration = Field(
        timedelta(seconds=30), description="a silent leader loses the lease after this"
    )


class ReceiverFormat(StrEnum):
    """What a notification receiver is sent."""

    CLOUDEVENTS = "cloudevents"  # CloudEvents 1.0 structured JSON, for webhooks
    SLACK = "slack"  # a Slack incoming webhook's `{"text": …}`: a one-line summary and a link


_RECEIVER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TOPIC = re.compile(r"^[a-z_*?]+$")
_LINK_FIELDS = ("{model}", "{rollout}")


def _checked_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http(s) URL with a host, got {url!r}")
    return url


class ReceiverSettings(_Section):
    """One receiver of notifications (a list item of `notifications.receivers`)."""

    name: str = Field(description="how the delivery log and `pitstop notify test --receiver` name it")
    url: str | None = Field(
        None,
        description="where each notification is POSTed (http or https); give it or url_env (one is required)",
    )
    url_env: str | None = Field(
        None,
        description=(
            "name of the environment variable holding the URL instead, for a URL that is itself a "
            "secret (a Slack incoming webhook's)"
        ),
    )
    format: ReceiverFormat = Field(
        ReceiverFormat.CLOUDEVENTS,
        strict=False,
        description="cloudevents (CloudEvents 1.0 JSON) | slack (an incoming webhook's one-line text)",
    )
    secret_env: str | None = Field(
        None,
        description=(
            "name of the environment variable holding the HMAC-SHA256 secret that signs each body "
            "(X-Pitstop-Signature); never the secret itself. null: unsigned"
        ),
    )
    events: list[str] | None = Field(
        None,
        description=(
            "topics sent to this receiver: started, phase_changed, step_changed, promoted, rejected, "
            "rolled_back, aborted, manual_routing, manual_champion (* matches any text: rolled_*); "
            "null: every one"
        ),
    )
    timeout: PositiveDuration = Field(
        timedelta(seconds=5), description="a delivery not answered within this fails (and is retried)"
    )

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not _RECEIVER_NAME.match(name):
            raise ValueError(f"must be letters, digits, '.', '_' or '-' (at most 63), got {name!r}")
        return name

    @field_validator("url")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        return None if url is None else _checked_url(url)

    @field_validator("url_env")
    @classmethod
    def _url_env(cls, name: str | None) -> str | None:
        if name is not None and not _ENV_NAME.match(name):
            raise ValueError("names an environment variable (letters, digits, '_'); put the URL in it")
        return name

    @model_validator(mode="after")
    def _one_url(self) -> ReceiverSettings:
        if self.url is None and self.url_env is None:
            raise ValueError(f"url: receiver {self.name!r} needs one (or url_env, a variable holding it)")
        if self.url is not None and self.url_env is not None:
            raise ValueError(f"url: receiver {self.name!r} has both url and url_env; keep one")
        return self

    @field_validator("secret_env")
    @classmethod
    def _secret_env(cls, name: str | None) -> str | None:
        if name is not None and not _ENV_NAME.match(name):
            raise ValueError(
                "names an environment variable (letters, digits, '_'), it does not hold the secret: "
                "put the secret in that variable"
            )
        return name

    @field_validator("events")
    @classmethod
    def _events(cls, topics: list[str] | None) -> list[str] | None:
        for topic in topics or []:
            if not _TOPIC.match(topic):
                raise ValueError(f"{topic!r} is not a topic such as promoted or rolled_*")
        return topics


class NotificationSettings(_Section):
    receivers: list[ReceiverSettings] = Field(
        default_factory=list,
        description="receivers of every rollout event and manual override, each with a name, url, format, "
        "secret_env, events and timeout (keys below)",
    )
    report_url: str | None = Field(
        None,
        description=(
            "a link sent with each notification (the dashboard, a published report); {model} and "
            "{rollout} in it are filled in. null: no link"
        ),
    )
    source: str | None = Field(
        None,
        description="CloudEvents source of every event; default /pitstop/ and the workspace folder's name",
    )
    max_attempts: int = Field(
        12, ge=1, description="deliveries of one event to one receiver tried at most this often, then failed"
    )
    backoff_base: PositiveDuration = Field(
        timedelta(seconds=10),
        description="wait before the second attempt; doubled each time after (with jitter)",
    )
    backoff_max: PositiveDuration = Field(timedelta(hours=1), description="longest wait between attempts")
    interval: PositiveDuration = Field(
        timedelta(seconds=5),
        description="how often pitstop serve and pitstop controller send what is due, in the background",
    )

    @field_validator("report_url")
    @classmethod
    def _report_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        leftover = url
        for field in _LINK_FIELDS:
            leftover = leftover.replace(field, "")
        if "{" in leftover or "}" in leftover:
            raise ValueError("may hold only {model} and {rollout} in braces")
        _checked_url(url.replace("{model}", "m").replace("{rollout}", "1"))
        return url

    @model_validator(mode="after")
    def _check(self) -> NotificationSettings:
        names = [receiver.name for receiver in self.receivers]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"receivers: each needs its own name, {', '.join(twice)} is used twice")
        if self.backoff_max < self.backoff_base:
            raise ValueError("backoff_max must not be shorter than backoff_base")
        return self


class ChallengerAction(StrEnum):
    """What `pitstop mlflow sync` does with a version MLflow's `@challenger` alias moved to."""

    REGISTER = "register"  # import it as the next version
    GATE = "gate"  # import it and run the offline gate on it
    ROLLOUT = "rollout"  # import it and start a rollout, whose first phase is the gate


class MlflowSettings(_Section):
    """An MLflow tracking server and Model Registry that pitstop imports from and writes back to."""

    tracking_uri: str | None = Field(
        None, description="MLflow server URL; default the MLFLOW_TRACKING_URI environment variable"
    )
    on_challenger: ChallengerAction = Field(
        ChallengerAction.REGISTER,
        strict=False,
        description="when MLflow's @challenger moves: register (import only), gate or rollout",
    )
    test_set: str | None = Field(
        None, description="dataset (NAME or NAME:VERSION) the gate scores an imported challenger on"
    )
    write_back: bool = Field(
        True,
        description=(
            "move MLflow's @champion and @previous as pitstop's and tag decided versions: at each "
            "sync, and after the leading controller's rounds for the models in mlflow.models"
        ),
    )
    models: dict[str, str] = Field(
        {},
        description="pitstop model: MLflow registered model name, for webhooks (e.g. delivery-eta: eta)",
    )
    webhook_secret_env: str | None = Field(
        None, description="environment variable holding the MLflow webhook secret (none: webhooks refused)"
    )


class RoutingProviderName(StrEnum):
    """How routing changes reach clients (`routing.provider`)."""

    GATEWAYS = "gateways"  # pitstop's gateways switch their routing table
    KUBERNETES = "kubernetes"  # also one Deployment per model version and a stable Service (way B)


class RoutingSettings(_Section):
    provider: RoutingProviderName = Field(
        RoutingProviderName.GATEWAYS,
        strict=False,
        description=(
            "gateways: pitstop's gateways serve the routing table; kubernetes: the leading controller "
            "also runs one Deployment and Service per routed model version and switches the stable "
            "Service's selector to the champion (settings under kubernetes)"
        ),
    )


_KUBERNETES_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def _kubernetes_name(value: str) -> str:
    if not _KUBERNETES_NAME.match(value.replace("{model}", "m")):
        raise ValueError(f"must be a Kubernetes object name (lowercase letters, digits, -), got {value!r}")
    return value


KubernetesName = Annotated[str, AfterValidator(_kubernetes_name)]


class KubernetesSettings(_Section):
    """Way B (`routing.provider: kubernetes`): the objects the leading controller keeps in the cluster."""

    namespace: KubernetesName = Field(
        "pitstop", description="namespace of the runners' Deployments and Services and the stable Services"
    )
    runner_image: str = Field(
        "pitstop:0.1.0", description="image of the model runners, whose command is pitstop serve-model"
    )
    replicas: int = Field(
        2, ge=1, description="pods of every routed model version, at least (an autoscaler may add more)"
    )
    scale_down_delay: Duration = Field(
        timedelta(seconds=30),
        description=(
            "how long a version no longer routed (after its standby) keeps its pods before it is "
            "scaled to zero, so clients' connections drain (Argo Rollouts' default)"
        ),
    )
    stable_service: KubernetesName = Field(
        "pitstop-{model}", description="name of the Service clients call, per model ({model} is replaced)"
    )
    port: int = Field(8080, ge=1, le=65535, description="port the runners serve on, and their Services")
    config_map: KubernetesName = Field(
        "pitstop-runner-config", description="ConfigMap holding pitstop.yaml, mounted in every runner"
    )
    secret: KubernetesName = Field(
        "pitstop-secrets", description="Secret whose keys are the runners' environment (the store URL)"
    )
    artifacts_claim: KubernetesName | None = Field(
        "pitstop-artifacts",
        description="PersistentVolumeClaim mounted read-only at /artifacts in every runner; null: none",
    )
    api_timeout: PositiveDuration = Field(
        timedelta(seconds=10),
        description=(
            "longest wait for the Kubernetes API to connect, send or read in a call (the first, which "
            "asks its version, too); then the round's reconcile fails and is tried again next round. "
            "Keep it well below controller.lease_ttl"
        ),
    )


class Policy(_Section):
    """The thresholds and durations every decision uses."""

    gate: GatePolicy = GatePolicy()
    shadow: ShadowPolicy = ShadowPolicy()
    ab_test: ABTestPolicy = ABTestPolicy()
    guardrails: GuardrailPolicy = GuardrailPolicy()
    ramp: RampPolicy = RampPolicy()
    health: HealthPolicy = HealthPolicy()

    @model_validator(mode="after")
    def _check_gates(self) -> Policy:
        passed = [f"{step:g}" for step in self.ramp.gates if step / 100 <= self.ab_test.share + 1e-12]
        if passed:
            raise ValueError(
                f"ramp.gates.{passed[0]}: not a ramp step, the A/B test's share "
                f"({self.ab_test.share:.0%}) covers it"
            )
        return self


class Config(Policy):
    """Everything `pitstop.yaml` may hold."""

    database_url: str | None = Field(
        None, description="store URL; default sqlite:///<workspace>/.pitstop/pitstop.db"
    )
    artifact_store: str | None = Field(
        None, description="folder or fsspec URL for artifacts; default <workspace>/.pitstop/artifacts"
    )
    store: StoreSettings = StoreSettings()
    serving: ServingSettings = ServingSettings()
    controller: ControllerSettings = ControllerSettings()
    notifications: NotificationSettings = NotificationSettings()
    mlflow: MlflowSettings = MlflowSettings()
    routing: RoutingSettings = RoutingSettings()
    kubernetes: KubernetesSettings = KubernetesSettings()

    @model_validator(mode="after")
    def _check_api_timeout(self) -> Config:
        """A round waits on a silent Kubernetes API up to `api_timeout` (once: the rest of the round is
        skipped), and the lease is renewed at each round's start: a round and the wait before the next
        must fit in the lease, or the controller loses it to a silent API server."""
        timeout, interval, ttl = (
            self.kubernetes.api_timeout,
            self.controller.interval,
            self.controller.lease_ttl,
        )
        if self.routing.provider is RoutingProviderName.KUBERNETES and interval + timeout >= ttl:
            raise ValueError(
                f"kubernetes.api_timeout ({format_duration(timeout)}) plus controller.interval "
                f"({format_duration(interval)}) must be shorter than controller.lease_ttl "
                f"({format_duration(ttl)}): a round waiting on a silent Kubernetes API would lose the "
                "controller its lease"
            )
        return self

    @property
    def policy(self) -> Policy:
        return Policy(
            gate=self.gate,
            shadow=self.shadow,
            ab_test=self.ab_test,
            guardrails=self.guardrails,
            ramp=self.ramp,
            health=self.health,
        )


# pydantic error types for a value of the wrong type, with how to write it instead.
_TYPE_ERRORS = {
    "float_type": ": write a number such as 0.5, without quotes",
    "int_type": ": write a whole number such as 200, without quotes",
    "string_type": ": write text",
    "bool_type": ": write true or false",
    "list_type": ": write a list such as [10, 25, 50, 100]",
    "model_type": ": write a section of keys",
    "dict_type": ": write a section of keys",
}


def _as_yaml(value: object) -> str:
    """A value as it was written in the file: `true`, `'0.5'`."""
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def _yaml_type(value: object) -> str:
    names = {bool: "a boolean", int: "a whole number", float: "a number", str: "text", list: "a list"}
    return names.get(type(value), "a section" if isinstance(value, dict) else type(value).__name__)


def describe_validation_error(error: ValidationError, source: str, unknown_section: str | None = None) -> str:
    """One line per problem, each naming the key and the rule it broke (`unknown_section`: what to say
    of an unknown key at the top level instead)."""
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden" and unknown_section and len(item["loc"]) == 1:
            message = unknown_section
        elif item["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; `pitstop init` writes every known key)"
        elif item["type"] in _TYPE_ERRORS:
            given = item["input"]
            message = f"{message}, got {_as_yaml(given)} ({_yaml_type(given)}){_TYPE_ERRORS[item['type']]}"
        lines.append(f"{source}: {key}: {message}")
    return "; ".join(lines)


def parse_config(data: dict[str, Any] | None, source: str = CONFIG_FILE) -> Config:
    """Validate a mapping read from `pitstop.yaml`."""
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{source}: must be a mapping of keys to values")
    try:
        return Config.model_validate(data or {})
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error, source)) from None


def load_config(path: Path) -> Config:
    """Read and validate a config file; a missing file gives every default."""
    if not path.exists():
        return Config()
    return parse_config(parse_yaml(read_yaml_text(path), str(path)), str(path))


POLICY_SECTIONS = tuple(Policy.model_fields)  # gate, shadow, ab_test, guardrails, ramp, health


def parse_policy(data: Any, base: Policy, source: str) -> Policy:
    """A policy document (a mapping of some of `POLICY_SECTIONS`) over `base`, section by section and
    key by key: a key the document does not name keeps `base`'s value; a list (`ramp.steps`) is
    replaced whole. Validated as `pitstop.yaml` is, each problem named by its key and `source`.

    >>> strict = parse_policy({"ab_test": {"alpha": 0.01}}, Policy(ab_test={"share": 0.2}), "p.yaml")
    >>> strict.ab_test.alpha, strict.ab_test.share, strict.shadow == Policy().shadow
    (0.01, 0.2, True)
    >>> parse_policy({"serving": {}}, Policy(), "p.yaml")
    Traceback (most recent call last):
    pitstop.errors.ConfigError: p.yaml: serving: unknown key (a policy holds only gate, shadow, ab_test,
    guardrails, ramp, health)
    """
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{source}: must be a mapping of policy sections ({', '.join(POLICY_SECTIONS)})")
    merged: dict[str, Any] = base.model_dump(mode="json")
    for key, value in (data or {}).items():
        below = merged.get(key)
        merged[key] = {**below, **value} if isinstance(below, dict) and isinstance(value, dict) else value
    try:
        return Policy.model_validate(merged)
    except ValidationError as error:
        only = f"unknown key (a policy holds only {', '.join(POLICY_SECTIONS)})"
        raise ConfigError(describe_validation_error(error, source, unknown_section=only)) from None


def read_yaml_text(path: Path) -> str:
    """A YAML file's text; a file that cannot be read or is not UTF-8 is a ConfigError naming it."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {error.start + 1} is {error.object[error.start]:#04x}); "
            "save it as UTF-8"
        ) from None
    except OSError as error:
        raise ConfigError(
            f"{path}: cannot read it ({describe_os_error(error, path)}); it must be a readable YAML file"
        ) from None


def parse_yaml(text: str, source: str) -> Any:
    """YAML text as data; a syntax error is a ConfigError naming `source`, the line and the column."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{source}: not valid YAML{_yaml_problem(error)}; fix the syntax there") from None


def _yaml_problem(error: yaml.YAMLError) -> str:
    """` at line L, column C: what the parser expected`, on one line.

    >>> try:
    ...     yaml.safe_load("steps: [10, 25")
    ... except yaml.YAMLError as error:
    ...     print(_yaml_problem(error).strip())
    at line 1, column 15: expected ',' or ']', but got '<stream end>'
    (while parsing a flow sequence started at line 1)
    """
    if not isinstance(error, yaml.MarkedYAMLError):
        return f": {' '.join(str(error).split())}"
    mark = error.problem_mark or error.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = " ".join((error.problem or "").split()) or "syntax error"
    context = ""
    if error.context and error.context_mark is not None and error.context_mark is not mark:
        context = f" ({error.context} started at line {error.context_mark.line + 1})"
    return f"{where}: {problem}{context}"


def database_url(config: Config, workspace: Path) -> str:
    """`PITSTOP_DATABASE_URL`, else `database_url` in the file, else SQLite inside the workspace."""
    from_environment = os.environ.get(DATABASE_URL_VARIABLE)
    if from_environment:
        parse_database_url(from_environment, DATABASE_URL_VARIABLE)
        return from_environment
    return config.database_url or default_database_url(workspace)


def default_database_url(workspace: Path) -> str:
    """The store a workspace has when nothing names another: `<workspace>/.pitstop/pitstop.db`.

    >>> default_database_url(Path("/srv/ws"))
    'sqlite:////srv/ws/.pitstop/pitstop.db'
    """
    return f"sqlite:///{(workspace / STATE_DIR / STORE_FILE).resolve()}"


def render_default_config() -> str:
    """A `pitstop.yaml` with every default and a one-line comment each."""
    lines = [
        "# pitstop workspace configuration: every key with its default; delete what you keep as is.",
        "# Durations: a number and a unit (ms, s, m, h, d, w), e.g. 500ms, 30s, 15m, 24h, 14d.",
        "# Ratios are multiples of the champion's value.",
    ]
    _render_section(Config(), lines, indent="")
    return "\n".join(lines) + "\n"


def _render_section(section: BaseModel, lines: list[str], indent: str) -> None:
    dumped = section.model_dump(mode="json")
    for name, field in type(section).model_fields.items():
        value = getattr(section, name)
        if isinstance(value, BaseModel):
            lines.append("")
            lines.append(f"{indent}{name}:")
            _render_section(value, lines, indent + "  ")
            continue
        rendered = yaml.safe_dump(dumped[name], default_flow_style=True).strip().removesuffix("...").strip()
        line = f"{indent}{name}: {rendered}"
        if value is None:
            line = f"{indent}# {name}: null"
        lines.append(f"{line}  # {field.description}" if field.description else line)
