"""The two sides a phase compares, the test it runs on them, and its labelled units against the need.

Pure functions shared by the decision (`decide`) and the status a person reads (`rollout status`), so
the numbers a person sees are the ones the next check will judge.
"""

from __future__ import annotations

from typing import Any

from pitstop.config import Policy
from pitstop.rollout.evidence import ArmSummary, Evidence
from pitstop.rollout.guardrails import (
    error_ratio,
    harm_test,
    latency_baseline,
    latency_limit_ms,
    mixture_tau,
    testable_estimates,
)
from pitstop.rollout.phases import Phase
from pitstop.rollout.state import RolloutState, challenger_share
from pitstop.stats import ArmEstimate, msprt, paired_t_from_summary, wilcoxon_test
from pitstop.stats.results import TestResult


def compared_arms(state: RolloutState, policy: Policy, evidence: Evidence) -> tuple[ArmSummary, ArmSummary]:
    """(champion, challenger) as the phase compares them: in shadow the challenger is the shadow; at a
    100 % ramp the champion serves nobody and is compared in shadow, on the same requests."""
    if state.phase is Phase.SHADOW:
        return evidence.champion, evidence.shadow
    if state.phase is Phase.RAMP and challenger_share(state, policy) >= 1.0:
        return evidence.shadow, evidence.challenger
    return evidence.champion, evidence.challenger


def paired_test(policy: Policy, evidence: Evidence) -> TestResult | None:
    """The shadow's paired test of challenger - champion error on the same requests (None: too few)."""
    paired = evidence.paired
    if paired.n < 2 or not paired.diff_var or paired.diff_mean is None:
        return None
    if policy.shadow.test == "paired_t":
        return paired_t_from_summary(paired.n, paired.diff_mean, paired.diff_var, alpha=policy.ab_test.alpha)
    if paired.differences is None:
        return None
    zeros = [0.0] * len(paired.differences)
    return wilcoxon_test(zeros, list(paired.differences), alpha=policy.ab_test.alpha)


def sequential_look(
    rollout: RolloutState, policy: Policy, champion: ArmEstimate, challenger: ArmEstimate
) -> TestResult:
    """This look of the A/B test's always-valid test, continuing the running p-value and interval."""
    memory, planned_tau = rollout.memory, rollout.plan.tau if rollout.plan else None
    return msprt(
        champion,
        challenger,
        tau=float(planned_tau or mixture_tau(policy, champion, challenger)),
        alpha=policy.ab_test.alpha,
        previous_p_value=1.0 if memory.p_value is None else float(memory.p_value),
        previous_ci=memory.ci,
    )


def analysed_units(arm: ArmSummary) -> int:
    """What the A/B plan counts in an arm: labelled users, the units of every A/B method."""
    return int(arm.moments.users)


def required_units(rollout: RolloutState) -> dict[str, int] | None:
    """The A/B plan's units per arm, stored when the test began (None without a plan)."""
    return None if rollout.plan is None else rollout.plan.required


def current_test(
    state: RolloutState, policy: Policy, evidence: Evidence, champion: ArmSummary, challenger: ArmSummary
) -> TestResult | None:
    """The test the phase judges errors with: paired (shadow), always-valid win/loss (A/B), always-valid
    harm (ramp); None until both sides have enough labelled, varying errors."""
    if state.phase is Phase.SHADOW:
        return paired_test(policy, evidence)
    if state.phase is Phase.AB_TEST:
        arms = testable_estimates(policy, champion, challenger)
        return None if arms is None else sequential_look(state, policy, *arms)
    return harm_test(champion, challenger, policy)


def live_comparison(state: RolloutState, policy: Policy, evidence: Evidence) -> dict[str, Any]:
    """Error of both sides, their ratio, the current test's p-value, failure rates and latency."""
    champion, challenger = compared_arms(state, policy, evidence)
    if state.phase is Phase.SHADOW:  # the verdict is on the same requests, so are these errors
        errors = (evidence.paired.champion_mean, evidence.paired.challenger_mean)
    else:
        errors = (champion.error_mean, challenger.error_mean)
    test = current_test(state, policy, evidence, champion, challenger)
    sides = {"champion": champion, "challenger": challenger}
    # in shadow the latency judged is the sample timed as served calls are made (`serving/timing.py`)
    timed = {**sides, "challenger": evidence.shadow_timing} if state.phase is Phase.SHADOW else sides
    return {
        "champion_error": errors[0],
        "challenger_error": errors[1],
        "error_ratio": error_ratio(*errors),
        "test": None if test is None else test.method,
        "p_value": None if test is None else test.p_value,
        **_interval(test, errors[0]),
        "failure_rate": {name: arm.failure_rate for name, arm in sides.items()},
        "latency_p50_ms": {name: arm.latency_p50 for name, arm in timed.items()},
        "latency_p99_ms": {name: arm.latency_p99 for name, arm in timed.items()},
    }


def sample_progress(state: RolloutState, policy: Policy, evidence: Evidence) -> dict[str, Any]:
    """Labelled units so far against what the phase needs, counted as the phase counts them."""
    champion, challenger = compared_arms(state, policy, evidence)
    if state.phase is Phase.SHADOW:
        return {
            "unit": "labelled pairs",
            "labelled": {"pairs": evidence.paired.n},
            "required": {"pairs": policy.shadow.min_labeled},
        }
    if state.phase is Phase.AB_TEST:
        return {
            "unit": "labelled users",
            "labelled": {"champion": analysed_units(champion), "challenger": analysed_units(challenger)},
            "required": required_units(state),
        }
    need = policy.ramp.min_labeled_per_arm
    return {
        "unit": "labelled requests",
        "labelled": {"champion": champion.labelled, "challenger": challenger.labelled},
        "required": {"champion": need, "challenger": need},
    }


def _interval(test: TestResult | None, champion_error: float | None) -> dict[str, Any]:
    """The test's estimate of challenger - champion error with its `1 - alpha` interval, and each as a
    share of the champion's error (negative: the challenger's error is lower)."""
    if test is None:
        return {"estimate": None, "ci_low": None, "ci_high": None, "level": None, "relative": None}
    base = test.details.get("mean_champion") or champion_error
    relative = None
    if base:
        relative = {"estimate": test.estimate / base, "low": test.ci_low / base, "high": test.ci_high / base}
    return {
        "estimate": test.estimate,
        "ci_low": test.ci_low,
        "ci_high": test.ci_high,
        "level": 1 - test.alpha,
        "relative": relative,
    }


def latency_check(state: RolloutState, policy: Policy, evidence: Evidence) -> dict[str, Any]:
    """What the phase's p99 latency rule sees at this look: the challenger's p99 over the phase's calls
    (in shadow, the calls timed as served), the limit (`ratio` x the champion's p99 bound + slack), and
    how many of its calls were slower than the limit. The rule acts only when the slow calls are too
    many for a p99 within the limit (`guardrails.latency_excess`)."""
    if state.phase is Phase.SHADOW:
        arm, ratio = evidence.shadow_timing, policy.shadow.max_p99_ratio
    else:
        arm, ratio = compared_arms(state, policy, evidence)[1], policy.guardrails.max_p99_ratio
    slack_ms = policy.guardrails.latency_slack.total_seconds() * 1000
    baseline = latency_baseline(evidence.champion_calls, policy)
    limit = latency_limit_ms(ratio, baseline, slack_ms) if baseline else None
    return {
        "p99_ms": arm.latency_p99,
        "limit_ms": limit,
        "baseline_ms": baseline,
        "ratio": ratio,
        "slack_ms": slack_ms,
        "calls": arm.latency_call_count,
        "slow_calls": None if limit is None else arm.calls_slower_than(limit),
    }
