"""Harm checks that may roll back at any look (no-peeking does not apply to harm): error ratio, p99, failures.

Each takes the two sides being compared: the arms served (A/B test, ramp) or, at a 100 % ramp, the
challenger served against the old champion in shadow. The error ratio is judged only with evidence:
the ratio must be above the limit *and* the always-valid (mSPRT) test must find the challenger worse
at `guardrail_alpha` (the policy's `guardrails.alpha` split over the A/B test and the ramp steps, so
the whole rollout keeps it), so checking after every batch does not turn noise into rollbacks (a point
estimate checked at every look would, on heavy-tailed errors), while real harm is caught within looks.

Latency is judged against the champion the same way. The challenger's p99 is above the limit
(`max_p99_ratio` x the champion's p99 + `latency_slack`) exactly when more than 1 % of its model calls
are slower than it, so the breach is an always-valid test of that share (`stats.exceedance_test`, a
one-sided beta-binomial mixture) at half of the window's `guardrail_alpha`. The champion's p99 is itself
measured, so the limit uses an upper bound on it valid at every look (`stats.quantile_upper_rank`: the
d-th slowest of its calls) from every call the champion served since the rollout began: one sequence
of calls, so the bound spends half of `guardrails.alpha` once for the whole rollout, and a window too
short for a p99 (a ramp step, a young A/B test) is still judged against the calls before it. A
challenger whose p99 is within the limit is thus rolled back with probability at most
`guardrails.alpha` over the whole rollout, however often the controller looks. Calls, not rows, are
counted: the rows of one micro-batch share their call's time. A bound on a p99 needs about 550 calls
at the default level (none of 550 calls above the p99 happens with probability 0.99^550 < 0.5 %), so
a rollout whose champion served fewer has no latency rule yet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from pitstop.config import ABMethod, Policy
from pitstop.rollout.evidence import ArmSummary
from pitstop.rollout.state import ramp_shares
from pitstop.rules import Rule
from pitstop.stats import ArmEstimate, exceedance_test, failure_rate_test, msprt, quantile_upper_rank
from pitstop.stats.results import TestResult

MIN_LATENCY_SAMPLES = 20  # below this many calls a p99 is one outlier
SLOW_SHARE = 0.01  # the p99: at most this share of calls may be slower than it


@dataclass(frozen=True)
class Breach:
    rule: Rule
    reason: str
    numbers: dict[str, Any] = field(default_factory=dict)


def check_guardrails(
    champion: ArmSummary, challenger: ArmSummary, policy: Policy, *, latency_baseline_ms: float | None
) -> Breach | None:
    """The first breached guardrail, or None. `latency_baseline_ms` is the champion's p99 bound
    (`latency_baseline`; None: no latency rule yet)."""
    breaches = guardrail_breaches(champion, challenger, policy, latency_baseline_ms=latency_baseline_ms)
    return breaches[0] if breaches else None


def guardrail_breaches(
    champion: ArmSummary, challenger: ArmSummary, policy: Policy, *, latency_baseline_ms: float | None
) -> list[Breach]:
    """Every breached guardrail, in the order `check_guardrails` ranks them: failure rate, error
    ratio, latency (each acts by its own `health` action, so a warned one must not hide the next)."""
    found = (
        failure_rate_breach(champion, challenger, policy),
        error_ratio_breach(champion, challenger, policy),
        latency_breach(challenger, policy, latency_baseline_ms),
    )
    return [breach for breach in found if breach is not None]


def failure_rate_breach(champion: ArmSummary, challenger: ArmSummary, policy: Policy) -> Breach | None:
    """The challenger fails more than `max_error_rate` of its requests *and* more often than the
    champion by the always-valid test (`failure_rate_test`) at `guardrail_alpha(policy)`.

    Judged against the champion, on the same window, so a burst of failures both models suffer (a bad
    input, a slow store) is no rollback; the test holds at every look, so the chance of rolling back a
    challenger that fails as often as the champion stays below `guardrails.alpha` over the rollout."""
    limits = policy.guardrails
    rate = challenger.failure_rate
    if rate is None or rate <= limits.max_error_rate or champion.requests == 0:
        return None
    alpha = guardrail_alpha(policy)
    test = failure_rate_test(
        champion.failures, champion.requests, challenger.failures, challenger.requests, alpha=alpha
    )
    if test.p_value >= alpha or test.estimate <= 0:
        return None
    return Breach(
        Rule.GUARDRAIL_ERROR_RATE,
        f"challenger failed {challenger.failures} of {challenger.requests} requests ({rate:.1%}), "
        f"above the {limits.max_error_rate:.1%} limit and more often than the champion's "
        f"{champion.failures} of {champion.requests} ({champion.failure_rate or 0:.1%}; "
        f"always-valid p = {test.p_value:.2g} < {alpha:.2g})",
        {
            "failures": challenger.failures,
            "requests": challenger.requests,
            "rate": rate,
            "limit": limits.max_error_rate,
            "champion_failures": champion.failures,
            "champion_requests": champion.requests,
            "champion_rate": champion.failure_rate,
            "p_value": test.p_value,
            "alpha": alpha,
        },
    )


def guardrail_alpha(policy: Policy) -> float:
    """A guardrail test's level in one window: `guardrails.alpha` shared by the A/B test and every ramp
    step (each has its own evidence window), so the whole rollout stays within it (Bonferroni).

    >>> round(guardrail_alpha(Policy()), 4)
    0.0025
    """
    return policy.guardrails.alpha / (1 + len(ramp_shares(policy)))


def error_ratio(champion: float | None, challenger: float | None) -> float | None:
    """Challenger error / champion error (infinite when the champion's is zero, None when unknown)."""
    if champion is None or challenger is None:
        return None
    return challenger / champion if champion > 0 else math.inf


def error_ratio_breach(champion: ArmSummary, challenger: ArmSummary, policy: Policy) -> Breach | None:
    limits = policy.guardrails
    if min(champion.labelled, challenger.labelled) < limits.min_samples:
        return None
    # a champion without error is beaten by any challenger with some: infinitely worse, if the test agrees
    ratio = error_ratio(champion.error_mean, challenger.error_mean)
    if ratio is None or not challenger.error_mean or ratio <= limits.max_error_ratio:
        return None
    harm = harm_test(champion, challenger, policy)
    alpha = guardrail_alpha(policy)
    if harm is None or harm.p_value >= alpha or harm.estimate <= 0:
        return None
    return Breach(
        Rule.GUARDRAIL_ERROR_RATIO,
        f"challenger error {challenger.error_mean:.4g} is {ratio:.3f} x champion's "
        f"{champion.error_mean:.4g}, above the {limits.max_error_ratio:g} limit "
        f"(always-valid p = {harm.p_value:.2g} < {alpha:.2g})",
        {
            "challenger_error": challenger.error_mean,
            "champion_error": champion.error_mean,
            "ratio": ratio,
            "limit": limits.max_error_ratio,
            "p_value": harm.p_value,
            "alpha": alpha,
            "labelled_champion": champion.labelled,
            "labelled_challenger": challenger.labelled,
        },
    )


def arm_estimates(
    policy: Policy, champion: ArmSummary, challenger: ArmSummary
) -> tuple[ArmEstimate, ArmEstimate] | None:
    """Both arms' mean error with its standard error, by the policy's A/B method (`ArmSummary.estimate`);
    None until both have labelled errors from at least two users."""
    per_user = policy.ab_test.method is ABMethod.PER_USER
    arm_a, arm_b = champion.estimate(per_user), challenger.estimate(per_user)
    return None if arm_a is None or arm_b is None else (arm_a, arm_b)


def testable_estimates(
    policy: Policy, champion: ArmSummary, challenger: ArmSummary
) -> tuple[ArmEstimate, ArmEstimate] | None:
    """`arm_estimates`, once their errors vary (identical errors leave nothing to test)."""
    arms = arm_estimates(policy, champion, challenger)
    return arms if arms is not None and arms[0].variance + arms[1].variance > 0 else None


def harm_test(champion: ArmSummary, challenger: ArmSummary, policy: Policy) -> TestResult | None:
    """The always-valid test of challenger - champion mean error per request on this look's evidence
    alone (no running p-value); None until both arms have labelled errors that vary. Always the
    per-user (delta-method) estimate, whatever the A/B method: the guardrail's ratio is of the mean
    error per request, and users are the independent units."""
    arm_a, arm_b = champion.estimate(per_user=True), challenger.estimate(per_user=True)
    if arm_a is None or arm_b is None or arm_a.variance + arm_b.variance <= 0:
        return None
    return msprt(arm_a, arm_b, tau=mixture_tau(policy, arm_a, arm_b), alpha=policy.ab_test.alpha)


def mixture_tau(policy: Policy, champion: ArmEstimate, challenger: ArmEstimate) -> float:
    """The mSPRT's mixing spread in error units: the policy's relative tau x the champion's mean error
    (the challenger's when the champion's is zero; errors are never negative, so one is above zero
    whenever the errors vary)."""
    scale = champion.mean if champion.mean > 0 else challenger.mean
    return policy.ab_test.tau * scale


@dataclass(frozen=True)
class SlowCalls:
    """The challenger's model calls slower than the latency limit, with the test that they are too many."""

    limit_ms: float
    slow: int
    calls: int
    p_value: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "limit_ms": self.limit_ms,
            "slow_calls": self.slow,
            "calls": self.calls,
            "p_value": self.p_value,
        }


def latency_limit_ms(max_ratio: float, champion_p99_ms: float, slack_ms: float) -> float:
    """The slowest p99 a challenger may have: `max_ratio` x the champion's p99 + the slack.

    >>> latency_limit_ms(1.5, 3.4, 5.0)
    10.1
    """
    return max_ratio * champion_p99_ms + slack_ms


def latency_alpha(policy: Policy) -> float:
    """The level of the challenger's test of its slow calls in one window: half of `guardrail_alpha`
    (the champion's p99 bound spends the other half of `guardrails.alpha`, once, `baseline_alpha`).

    >>> round(latency_alpha(Policy()), 5)
    0.00125
    """
    return guardrail_alpha(policy) / 2


def baseline_alpha(policy: Policy) -> float:
    """The level of the champion's p99 bound: half of `guardrails.alpha`, for the whole rollout (one
    sequence of champion calls, bounded at every look at once).

    >>> baseline_alpha(Policy())
    0.005
    """
    return policy.guardrails.alpha / 2


def latency_excess(
    challenger: ArmSummary, champion_p99: float, max_ratio: float, policy: Policy
) -> SlowCalls | None:
    """Evidence that the challenger's p99 is above `max_ratio` x the champion's (plus slack), or None.

    The limit is `max_ratio * champion_p99 + latency_slack`. If the challenger's p99 were within it, at
    most 1 % of its calls would be slower; the breach needs the always-valid test of the share of
    slower calls (`exceedance_test`) to reject that at `latency_alpha`.
    """
    slack_ms = policy.guardrails.latency_slack.total_seconds() * 1000
    limit = latency_limit_ms(max_ratio, champion_p99, slack_ms)
    calls = challenger.latency_call_count
    if calls < MIN_LATENCY_SAMPLES:
        return None
    slow = challenger.calls_slower_than(limit)
    alpha = latency_alpha(policy)
    test = exceedance_test(slow, calls, share=SLOW_SHARE, alpha=alpha)
    return SlowCalls(limit, slow, calls, test.p_value) if test.p_value < alpha else None


def latency_baseline(champion_calls: ArmSummary, policy: Policy) -> float | None:
    """The champion p99 a challenger is held to: `champion_p99_bound` at `baseline_alpha` of the calls
    the champion served since the rollout began (`Evidence.champion_calls`)."""
    return champion_p99_bound(champion_calls, baseline_alpha(policy))


def champion_p99_bound(champion: ArmSummary, alpha: float) -> float | None:
    """An upper bound on the champion's p99, valid at every look of the window with probability
    1 - alpha (the d-th slowest of its calls, `quantile_upper_rank`); None until its calls give one."""
    calls = champion.latency_call_count
    if calls < MIN_LATENCY_SAMPLES:
        return None
    rank = quantile_upper_rank(calls, share=SLOW_SHARE, alpha=alpha)
    return champion.latency_from_top(rank) if rank else None


def latency_breach(challenger: ArmSummary, policy: Policy, baseline: float | None) -> Breach | None:
    if not baseline:
        return None
    limits = policy.guardrails
    excess = latency_excess(challenger, baseline, limits.max_p99_ratio, policy)
    if excess is None:
        return None
    p99 = challenger.latency_p99 or excess.limit_ms
    ratio = p99 / baseline
    return Breach(
        Rule.GUARDRAIL_LATENCY_P99,
        f"challenger p99 latency {p99:.1f} ms is {ratio:.2f} x champion's "
        f"{baseline:.1f} ms (its upper bound): {excess.slow} of its {excess.calls} model calls took longer "
        f"than the {excess.limit_ms:.1f} ms limit ({limits.max_p99_ratio:g} x + "
        f"{limits.latency_slack.total_seconds() * 1000:g} ms slack; always-valid p = "
        f"{excess.p_value:.2g} < {latency_alpha(policy):.2g})",
        {
            "challenger_p99_ms": challenger.latency_p99,
            "champion_p99_ms": baseline,
            "ratio": ratio,
            "limit": limits.max_p99_ratio,
            "alpha": latency_alpha(policy),
            **excess.to_dict(),
        },
    )
