"""The numbers a decision sees, as plain values (gathered from the prediction log by `gather`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from pitstop.stats import ArmEstimate, arm_from_summary, arm_from_user_moments
from pitstop.store.gateways import Acknowledgement
from pitstop.store.load_failures import LoadFailure

LATENCY_BUCKET_RATIO = 1.02  # latency histogram buckets: log(1 + ms) in steps of log(1.02), 2 % wide


@dataclass(frozen=True)
class UserMoments:
    """Per-user sums over labelled requests: K users, and sums of S (error), N (requests), S², N², S·N,
    and of each user's mean error S / N and its square (for the tests on per-user means)."""

    users: float = 0
    error_sum: float = 0.0
    request_sum: float = 0.0
    error_sq_sum: float = 0.0
    request_sq_sum: float = 0.0
    cross_sum: float = 0.0
    mean_sum: float = 0.0
    mean_sq_sum: float = 0.0


@dataclass(frozen=True)
class ArmSummary:
    """One arm (champion or challenger) in one role (served or shadow) over the phase's window."""

    requests: int = 0  # predictions made (served, or scored in shadow)
    failures: int = 0  # of them: raised, timed out or not a finite number
    units: int = 0  # distinct users (requests without a user_id count as their own unit)
    labelled: int = 0  # requests with a label (and, in the A/B test, past the maturation window)
    error_mean: float | None = None  # mean per-request error over the labelled requests
    error_var: float | None = None  # its sample variance (ddof 1)
    moments: UserMoments = field(default_factory=UserMoments)
    latency_p50: float | None = None  # milliseconds
    latency_p99: float | None = None
    latency_samples: int = 0
    # (lower edge in ms, model calls) per latency bucket, ascending. The rows of one micro-batch share
    # their call's time, so calls, not rows, are the independent samples a latency test may count.
    latency_calls: tuple[tuple[float, int], ...] = ()

    @property
    def latency_call_count(self) -> int:
        return sum(calls for _, calls in self.latency_calls)

    def calls_slower_than(self, limit_ms: float) -> int:
        """Model calls that certainly took longer than `limit_ms` (their whole bucket lies above it)."""
        return sum(calls for edge, calls in self.latency_calls if edge >= limit_ms)

    def latency_from_top(self, rank: int) -> float | None:
        """A latency the `rank`-th slowest model call took at most: the upper edge of its bucket (None
        without that many calls). Never below the call itself, so a bound built on it stays a bound."""
        seen = 0
        for edge, calls in reversed(self.latency_calls):
            seen += calls
            if seen >= rank:
                return (1 + edge) * LATENCY_BUCKET_RATIO - 1
        return None

    @property
    def failure_rate(self) -> float | None:
        return self.failures / self.requests if self.requests else None

    def estimate(self, per_user: bool) -> ArmEstimate | None:
        """The arm's mean error with its standard error, users being the independent units either way.

        `per_user` (the `per_user` method): the mean error per request, Σ S / Σ N over users, with its
        delta-method variance. Otherwise (`welch`, `mann_whitney`): the mean of each user's mean error
        S / N, every user weighing the same, with the variance of those K means over K. A user's
        requests share its difficulty, so per-request errors are never the units: counted as
        independent they made the request-level tests reject a true null most of the time.
        """
        m = self.moments
        if m.users < 2:
            return None
        if per_user:
            return arm_from_user_moments(
                int(m.users), m.error_sum, m.request_sum, m.error_sq_sum, m.request_sq_sum, m.cross_sum
            )
        users = int(m.users)
        mean = m.mean_sum / users
        variance = max((m.mean_sq_sum - users * mean * mean) / (users - 1), 0.0)
        return arm_from_summary(users, mean, variance)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("moments")
        out.pop("latency_calls")
        out["latency_call_count"] = self.latency_call_count
        out["failure_rate"] = self.failure_rate
        out["labelled_users"] = int(self.moments.users)  # what a per-user A/B plan counts
        return out


@dataclass(frozen=True)
class PairedSummary:
    """Both models on the same labelled requests: errors and their difference (challenger - champion)."""

    n: int = 0
    champion_mean: float | None = None
    challenger_mean: float | None = None
    diff_mean: float | None = None
    diff_var: float | None = None
    champion_var: float | None = None
    # Per user i (requests without a user_id are their own user): A_i, B_i the summed champion and
    # challenger error over the user's pairs; these are sums over users of A_i^2, B_i^2, A_i B_i, for
    # the clustered (per-user) variance of the error ratio (`pitstop.stats.ratio`).
    users: int = 0
    user_champion_sq: float = 0.0
    user_challenger_sq: float = 0.0
    user_cross: float = 0.0
    differences: tuple[float, ...] | None = None  # in time order; only loaded for Wilcoxon

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("differences")
        return out


@dataclass(frozen=True)
class Evidence:
    """Everything measured for one rollout phase (or ramp step) up to `now`."""

    now: datetime
    champion: ArmSummary = field(default_factory=ArmSummary)  # role served
    challenger: ArmSummary = field(default_factory=ArmSummary)  # role served
    shadow: ArmSummary = field(default_factory=ArmSummary)  # whichever version runs in shadow
    # the same version timed the way served calls are made, on a sample (role timing): its latency
    shadow_timing: ArmSummary = field(default_factory=ArmSummary)
    paired: PairedSummary = field(default_factory=PairedSummary)  # served vs shadow, same requests
    request_rate_per_hour: float = 0.0  # served requests per hour over the window
    window_hours: float = 0.0
    unbucketed_requests: int = 0  # requests without a user_id (bucketed by request_id)
    user_mean_errors: dict[str, tuple[float, ...]] | None = None  # per arm, each user's (Mann-Whitney only)
    # the challenger version as gateways that cannot load it report it (`store.load_failures`)
    load_failures: tuple[LoadFailure, ...] = ()
    # the routing version each live gateway serving the model serves (`store.gateways`); none: no
    # gateway reports (a replay, a controller without gateways), and nothing waits on them
    gateways: tuple[Acknowledgement, ...] = ()
    # (hours from the window's start, distinct served users first seen by then), ascending: how the
    # model's users accumulate (gathered in shadow, for the A/B plan's count of available users)
    users_seen: tuple[tuple[float, int], ...] = ()
    # the champion's served model calls since the rollout began, the latency baseline's sample (None:
    # the window's, as when the rollout began with it)
    champion_history: ArmSummary | None = None
    both_arms_users: int = 0  # served users (with a user_id) whose requests went to both arms
    # served requests older than `ab_test.label_maturation`, and how many of them have a label
    matured_requests: int = 0
    matured_labelled: int = 0

    @property
    def served_requests(self) -> int:
        return self.champion.requests + self.challenger.requests

    @property
    def label_coverage(self) -> float | None:
        """The share of matured served requests with a label (None: none matured yet)."""
        return self.matured_labelled / self.matured_requests if self.matured_requests else None

    @property
    def champion_calls(self) -> ArmSummary:
        """The champion's served calls its p99 bound is taken from (`guardrails.latency_baseline`)."""
        return self.champion if self.champion_history is None else self.champion_history

    def to_dict(self) -> dict[str, Any]:
        return {
            "champion": self.champion.to_dict(),
            "challenger": self.challenger.to_dict(),
            "shadow": self.shadow.to_dict(),
            "shadow_timing": self.shadow_timing.to_dict(),
            "paired": self.paired.to_dict(),
            "request_rate_per_hour": self.request_rate_per_hour,
            "window_hours": self.window_hours,
            "unbucketed_requests": self.unbucketed_requests,
            "users_seen": [list(point) for point in self.users_seen],
            "champion_calls": self.champion_calls.latency_call_count,
            "both_arms_users": self.both_arms_users,
            "matured_requests": self.matured_requests,
            "matured_labelled": self.matured_labelled,
            "label_coverage": self.label_coverage,
        }
