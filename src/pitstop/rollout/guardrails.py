"""Harm checks that may roll back at any look (no-peeking does not apply to harm): error ratio, p99, failures.

Each takes the two sides being compared: the arms served (A/B test, ramp) or, at a 100 % ramp, the
challenger served against the old champion in shadow. The error ratio is judged only with evidence:
the ratio must be above the limit *and* the always-valid (mSPRT) test must find the challenger worse
at the policy's alpha, so checking after every batch does not turn noise into rollbacks (a point
estimate checked at every look would, on heavy-tailed errors), while real harm is caught within looks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pitstop.config import ABMethod, GuardrailPolicy, Policy
from pitstop.rollout.evidence import ArmSummary
from pitstop.stats import msprt

MIN_REQUESTS_FOR_RATE = 20  # below this many requests one failure is no rate
MIN_LATENCY_SAMPLES = 20  # below this many calls a p99 is one outlier


@dataclass(frozen=True)
class Breach:
    rule: str
    reason: str
    numbers: dict[str, Any] = field(default_factory=dict)


def check_guardrails(champion: ArmSummary, challenger: ArmSummary, policy: Policy) -> Breach | None:
    """The first breached guardrail, or None."""
    return (
        failure_rate_breach(challenger, policy.guardrails)
        or error_ratio_breach(champion, challenger, policy)
        or latency_breach(champion, challenger, policy.guardrails)
    )


def failure_rate_breach(challenger: ArmSummary, policy: GuardrailPolicy) -> Breach | None:
    rate = challenger.failure_rate
    if challenger.requests < MIN_REQUESTS_FOR_RATE or rate is None or rate <= policy.max_error_rate:
        return None
    return Breach(
        "guardrail.error_rate",
        f"challenger failed {challenger.failures} of {challenger.requests} requests ({rate:.1%}), "
        f"above the {policy.max_error_rate:.1%} limit",
        {
            "failures": challenger.failures,
            "requests": challenger.requests,
            "rate": rate,
            "limit": policy.max_error_rate,
        },
    )


def error_ratio_breach(champion: ArmSummary, challenger: ArmSummary, policy: Policy) -> Breach | None:
    limits = policy.guardrails
    if min(champion.labelled, challenger.labelled) < limits.min_samples:
        return None
    if champion.error_mean is None or challenger.error_mean is None or champion.error_mean <= 0:
        return None
    ratio = challenger.error_mean / champion.error_mean
    if ratio <= limits.max_error_ratio:
        return None
    per_user = policy.ab_test.method is ABMethod.PER_USER
    arm_a, arm_b = champion.estimate(per_user), challenger.estimate(per_user)
    if arm_a is None or arm_b is None or arm_a.variance + arm_b.variance <= 0:
        return None
    harm = msprt(arm_a, arm_b, tau=policy.ab_test.tau * arm_a.mean, alpha=policy.ab_test.alpha)
    if harm.p_value >= policy.ab_test.alpha or harm.estimate <= 0:
        return None
    return Breach(
        "guardrail.error_ratio",
        f"challenger error {challenger.error_mean:.4g} is {ratio:.3f} x champion's "
        f"{champion.error_mean:.4g}, above the {limits.max_error_ratio:g} limit "
        f"(always-valid p = {harm.p_value:.2g})",
        {
            "challenger_error": challenger.error_mean,
            "champion_error": champion.error_mean,
            "ratio": ratio,
            "limit": limits.max_error_ratio,
            "p_value": harm.p_value,
            "labelled_champion": champion.labelled,
            "labelled_challenger": challenger.labelled,
        },
    )


def latency_exceeds(
    challenger_p99: float, champion_p99: float, max_ratio: float, policy: GuardrailPolicy
) -> bool:
    """Above `max_ratio` times the champion's p99 plus the slack that timer noise needs."""
    slack_ms = policy.latency_slack.total_seconds() * 1000
    return challenger_p99 > max_ratio * champion_p99 + slack_ms


def latency_breach(champion: ArmSummary, challenger: ArmSummary, policy: GuardrailPolicy) -> Breach | None:
    if min(champion.latency_samples, challenger.latency_samples) < MIN_LATENCY_SAMPLES:
        return None
    if champion.latency_p99 is None or challenger.latency_p99 is None or champion.latency_p99 <= 0:
        return None
    ratio = challenger.latency_p99 / champion.latency_p99
    if not latency_exceeds(challenger.latency_p99, champion.latency_p99, policy.max_p99_ratio, policy):
        return None
    return Breach(
        "guardrail.latency_p99",
        f"challenger p99 latency {challenger.latency_p99:.1f} ms is {ratio:.2f} x champion's "
        f"{champion.latency_p99:.1f} ms, above the {policy.max_p99_ratio:g} limit "
        f"(+{policy.latency_slack.total_seconds() * 1000:g} ms slack)",
        {
            "challenger_p99_ms": challenger.latency_p99,
            "champion_p99_ms": champion.latency_p99,
            "ratio": ratio,
            "limit": policy.max_p99_ratio,
        },
    )
