"""The pure decision: `decide(rollout, policy, evidence, now) -> Decision`, one small function per phase.

No I/O, no clock: the controller gathers the evidence, calls this, and applies the result in one
transaction. Doubt favours the champion: missing data, an inconclusive test or a broken experiment
never advance the challenger.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from scipy.stats import binomtest

from pitstop.config import ABStopping, HealthAction, Policy, StepGate
from pitstop.durations import describe_span
from pitstop.rollout.acknowledged import when_gateways_ready
from pitstop.rollout.comparison import (
    analysed_units,
    compared_arms,
    paired_test,
    required_units,
    sequential_look,
)
from pitstop.rollout.decision import Decision as Decision  # re-exported: where decisions are made
from pitstop.rollout.evidence import ArmSummary, Evidence, PairedSummary
from pitstop.rollout.gates import GateProgress
from pitstop.rollout.guardrails import (
    arm_estimates,
    error_ratio,
    guardrail_breaches,
    latency_baseline,
    latency_excess,
)
from pitstop.rollout.health import HealthLook, check_health
from pitstop.rollout.phases import Action, Phase
from pitstop.rollout.plan import AbPlan
from pitstop.rollout.planning import plan_ab_test
from pitstop.rollout.state import RolloutState, SequentialMemory, ramp_shares
from pitstop.rules import Rule
from pitstop.stats import (
    ab_verdict,
    mann_whitney_test,
    sequential_sample_ratio_mismatch,
)
from pitstop.stats.ratio import paired_ratio_final, paired_ratio_sequence
from pitstop.stats.results import SRMResult, TestResult

# A shadow failing too often is rejected before any labels, on evidence: at least this many calls and
# an exact binomial test at SHADOW_FAILURE_ALPHA (checked at every look). No fixed larger minimum: the
# gateway's circuit breaker records only ~20 calls of a shadow that always fails, then a probe per 100.
MIN_SHADOW_CALLS_FOR_RATE = 20
SHADOW_FAILURE_ALPHA = 0.001


def decide(rollout: RolloutState, policy: Policy, evidence: Evidence, now: datetime) -> Decision:
    """What to do now with an active rollout, given what has been measured. Health findings act by the
    policy's `health` section (`rollout.health`): a held rollout never advances, but still rolls back;
    nor does one whose current routing some live gateway does not serve yet, or whose challenger some
    live gateway has not warmed (`acknowledged`)."""
    return when_gateways_ready(rollout, evidence, _decide(rollout, policy, evidence, now))


def _decide(rollout: RolloutState, policy: Policy, evidence: Evidence, now: datetime) -> Decision:
    look = HealthLook(rollout, policy)
    early = challenger_unavailable(rollout, policy, evidence, now, look) or check_health(
        rollout, policy, evidence, now, look
    )
    if early is not None:
        return look.finish(early)
    if rollout.phase is Phase.SHADOW:
        return look.finish(decide_shadow(rollout, policy, evidence, now))
    if rollout.phase is Phase.AB_TEST:
        return look.finish(decide_ab_test(rollout, policy, evidence, now, look))
    if rollout.phase is Phase.RAMP:
        return look.finish(decide_ramp(rollout, policy, evidence, now, look))
    return Decision(Action.STAY, Rule.INACTIVE, f"the rollout is {rollout.phase}: nothing to decide")


# -- a challenger that cannot be loaded -------------------------------------------------------------


def challenger_unavailable(
    rollout: RolloutState, policy: Policy, evidence: Evidence, now: datetime, look: HealthLook | None = None
) -> Decision | None:
    """A challenger some gateway reports it cannot load (`Evidence.load_failures`) is measured by no
    shadow and served to no user there: labels would never come, and the rollout would wait for its
    `max_duration`. Once it has failed for `shadow.unavailable_after` in this phase, the rollout ends:
    rejected in shadow (`shadow.unavailable`), rolled back in the A/B test or ramp
    (`guardrail.unavailable`). Until then a shadow waits, saying why; an A/B test or ramp decides
    as usual (its guardrails still watch the gateways that serve it)."""
    failures = [f for f in evidence.load_failures if f.last_seen >= rollout.phase_started_at]
    if not failures or rollout.phase not in (Phase.SHADOW, Phase.AB_TEST, Phase.RAMP):
        return None
    since = max(min(f.first_seen for f in failures), rollout.phase_started_at)
    failing, grace = now - since, policy.shadow.unavailable_after
    gateways = len({f.gateway for f in failures})
    numbers = {
        "error": failures[0].error,
        "role": failures[0].role,
        "gateways": gateways,
        "attempts": sum(f.attempts for f in failures),
        "failing_seconds": failing.total_seconds(),
        "unavailable_after_seconds": grace.total_seconds(),
    }
    what = (
        f"challenger v{rollout.challenger_version} cannot be loaded: {failures[0].error} "
        f"(on {gateways} gateway{'s' if gateways > 1 else ''}, for {describe_span(failing)})"
    )
    shadow = rollout.phase is Phase.SHADOW
    look = look or HealthLook(rollout, policy)
    rule = Rule.SHADOW_UNAVAILABLE if shadow else Rule.GUARDRAIL_UNAVAILABLE
    action = look.action(rule)
    if failing < grace:
        if not shadow or action is HealthAction.WARN:
            return None
        rest = describe_span(grace - failing)
        then = "rejected" if action is HealthAction.ROLLBACK else "held"
        return Decision(Action.STAY, rule, f"{what}; {then} in {rest} unless it loads", numbers)
    ended = "rejected, the champion stays" if shadow else "rolled back, the champion serves everyone"
    return look.act(rule, what, numbers, ended=f"{what}: {ended}")


# -- shadow ---------------------------------------------------------------------------------------


def decide_shadow(rollout: RolloutState, policy: Policy, evidence: Evidence, now: datetime) -> Decision:
    """Same requests, both models: within tolerance, error rate and latency bounds → A/B test."""
    shadow = policy.shadow
    elapsed = now - rollout.phase_started_at
    calls = evidence.shadow
    base = {
        "elapsed_hours": elapsed.total_seconds() / 3600,
        "labelled_pairs": evidence.paired.n,
        "min_labeled": shadow.min_labeled,
        "shadow_calls": calls.requests,
        "shadow_failures": calls.failures,
    }
    failing = _shadow_failures(calls, shadow.max_error_rate, base, at_verdict=False)
    if failing is not None:
        return failing
    if elapsed < shadow.min_duration:
        return Decision(
            Action.STAY,
            Rule.SHADOW_MIN_DURATION,
            f"shadowing for {describe_span(elapsed)} of at least {describe_span(shadow.min_duration)}; "
            f"{evidence.paired.n} of {shadow.min_labeled} labelled pairs",
            base,
        )
    if evidence.paired.n < shadow.min_labeled:
        if elapsed >= shadow.max_duration:
            return Decision(
                Action.REJECT,
                Rule.SHADOW_INCONCLUSIVE,
                f"only {evidence.paired.n} of {shadow.min_labeled} labelled pairs after "
                f"{describe_span(elapsed)} (max duration reached): inconclusive, the champion stays",
                base,
            )
        return Decision(
            Action.STAY,
            Rule.SHADOW_MIN_LABELED,
            f"waiting for labels: {evidence.paired.n} of {shadow.min_labeled} labelled pairs",
            base,
        )
    return _shadow_verdict(rollout, policy, evidence, base, elapsed)


def _shadow_failures(
    calls: ArmSummary, limit: float, numbers: dict[str, Any], *, at_verdict: bool
) -> Decision | None:
    """Reject a shadow that fails more often than `limit`: at any look only on evidence, at the verdict
    (enough time and labels) on its rate alone, since doubt favours the champion.

    The evidence is a one-sided exact binomial test of its failures among its recorded calls against
    `limit`: a failure rate just above the limit on a few calls is noise, twenty failures in a row are not.
    """
    rate = calls.failure_rate
    if rate is None or rate <= limit:
        return None
    p_value = None
    if not at_verdict:
        if calls.requests < MIN_SHADOW_CALLS_FOR_RATE:
            return None
        p_value = float(binomtest(calls.failures, calls.requests, limit, alternative="greater").pvalue)
        if p_value >= SHADOW_FAILURE_ALPHA:
            return None
    why = ": it may not pass the shadow" if p_value is None else f" (p = {p_value:.2g})"
    found = {"failure_rate": rate, "limit": limit} | ({} if p_value is None else {"p_value": p_value})
    return Decision(
        Action.REJECT,
        Rule.SHADOW_ERROR_RATE,
        f"the challenger failed or timed out on {calls.failures} of {calls.requests} shadow calls "
        f"({rate:.1%}), above the {limit:.1%} limit{why}",
        {**numbers, **found},
    )


def shadow_ratio_look(policy: Policy, paired: PairedSummary, *, final: bool = False) -> TestResult | None:
    """The bound on the challenger/champion error ratio from the per-user sums (None: fewer than
    `shadow.min_users` users, no error, or no spread between users to measure): the always-valid
    confidence sequence at every look, spending half of `shadow.alpha`; with `final`, the one
    fixed-sample look at `max_duration`, spending the other half."""
    shadow = policy.shadow
    if (
        paired.users < max(shadow.min_users, 2)
        or paired.champion_mean is None
        or paired.challenger_mean is None
    ):
        return None
    champion_sum, challenger_sum = paired.champion_mean * paired.n, paired.challenger_mean * paired.n
    if champion_sum <= 0 or challenger_sum <= 0:
        return None
    sums = (
        paired.users,
        champion_sum,
        challenger_sum,
        paired.user_champion_sq,
        paired.user_challenger_sq,
        paired.user_cross,
    )
    try:
        if final:
            return paired_ratio_final(*sums, alpha=shadow.alpha / 2, margin=shadow.error_tolerance)
        return paired_ratio_sequence(
            *sums, tau=shadow.tau, alpha=shadow.alpha / 2, margin=shadow.error_tolerance
        )
    except ValueError:  # zero variance between users: nothing measured to bound the ratio with
        return None


def _shadow_verdict(
    rollout: RolloutState, policy: Policy, evidence: Evidence, base: dict[str, Any], elapsed: timedelta
) -> Decision:
    """Pass on evidence the error ratio is below the tolerance, reject on evidence it is above; the
    evidence is a confidence sequence on the per-user (clustered) log ratio, valid at every look, at
    half of `shadow.alpha`. Neither by `max_duration`: one fixed-sample look there, at the other half
    (a single look needs no allowance for the others, so its bound is about 40 % narrower), passes on
    evidence below the tolerance; else rejected as inconclusive (doubt favours the champion). A pass
    of a challenger at the tolerance is thus wrong at most `shadow.alpha` of the time, however often
    the controller looks."""
    shadow, paired = policy.shadow, evidence.paired
    assert paired.champion_mean is not None and paired.challenger_mean is not None
    test = paired_test(policy, evidence)
    look = shadow_ratio_look(policy, paired)
    ratio = error_ratio(paired.champion_mean, paired.challenger_mean)
    assert ratio is not None
    numbers = {
        **base,
        "champion_error": paired.champion_mean,
        "challenger_error": paired.challenger_mean,
        "ratio": ratio,
        "ratio_low": look.details["ratio_low"] if look else None,
        "ratio_high": look.details["ratio_high"] if look else None,
        "users": paired.users,
        "min_users": shadow.min_users,
        "tolerance": shadow.error_tolerance,
        "ratio_test": look.to_dict() if look else None,
        "test": test.to_dict() if test else None,
    }
    bounds = (
        f"{ratio:.3f} (always-valid {1 - shadow.alpha / 2:.1%} bounds {look.details['ratio_low']:.3f}-"
        f"{look.details['ratio_high']:.3f}, {paired.users} users)"
        if look
        else f"{ratio:.3f} ({paired.users} users of the {shadow.min_users} a bound needs)"
    )
    if look is not None and look.ci_low > math.log(shadow.error_tolerance):
        return Decision(
            Action.REJECT,
            Rule.SHADOW_ERROR_RATIO,
            f"on the same {paired.n} live requests the challenger's error {paired.challenger_mean:.4g} is "
            f"{bounds} x the champion's {paired.champion_mean:.4g}: above the "
            f"{shadow.error_tolerance:g} tolerance with confidence"
            + (f" (paired test p = {test.p_value:.3g})" if test else ""),
            numbers,
        )
    if look is None or look.ci_high >= math.log(shadow.error_tolerance):
        # at max_duration, one fixed-sample look with the half of shadow.alpha the sequence left
        final = shadow_ratio_look(policy, paired, final=True) if elapsed >= shadow.max_duration else None
        if final is not None and final.ci_high < math.log(shadow.error_tolerance):
            numbers["final_test"] = final.to_dict()
            bounds = (
                f"{ratio:.3f} (at the max duration, fixed-sample {1 - shadow.alpha / 2:.1%} upper bound "
                f"{final.details['ratio_high']:.3f}, {paired.users} users)"
            )
        elif elapsed >= shadow.max_duration:
            return Decision(
                Action.REJECT,
                Rule.SHADOW_INCONCLUSIVE,
                f"after {describe_span(elapsed)} (max duration reached) the error ratio is {bounds}: "
                f"not shown below the {shadow.error_tolerance:g} tolerance, the champion stays",
                numbers,
            )
        else:
            return Decision(
                Action.STAY,
                Rule.SHADOW_ERROR_RATIO_OPEN,
                f"error ratio {bounds}: not yet shown below or above the "
                f"{shadow.error_tolerance:g} tolerance",
                numbers,
            )
    # Latency from the shadow's calls timed as served calls are made (role timing: one row, in the
    # gateway's process), not from its own batches in an idle process, which under-measured it.
    shadowed, timed = evidence.shadow, evidence.shadow_timing
    baseline = latency_baseline(evidence.champion_calls, policy)
    slow = latency_excess(timed, baseline, shadow.max_p99_ratio, policy) if baseline else None
    if slow is not None and baseline and timed.latency_p99:
        latency_ratio = timed.latency_p99 / baseline
        return Decision(
            Action.REJECT,
            Rule.SHADOW_LATENCY_P99,
            f"challenger p99 latency {timed.latency_p99:.1f} ms (timed as served calls) is "
            f"{latency_ratio:.2f} x the champion's "
            f"{baseline:.1f} ms: {slow.slow} of its {slow.calls} model calls took longer than "
            f"the {slow.limit_ms:.1f} ms limit ({shadow.max_p99_ratio:g} x + "
            f"{policy.guardrails.latency_slack.total_seconds() * 1000:g} ms slack; always-valid "
            f"p = {slow.p_value:.2g})",
            {**numbers, "latency_ratio": latency_ratio, **slow.to_dict()},
        )
    failing = _shadow_failures(shadowed, shadow.max_error_rate, numbers, at_verdict=True)
    if failing is not None:
        return failing
    plan = plan_ab_test(policy, evidence)
    verdict = (
        f"challenger error {bounds} x champion's on {paired.n} live requests, "
        f"below the {shadow.error_tolerance:g} tolerance with confidence"
    )
    if plan.reachable is False and not policy.ab_test.start_unwinnable:
        return _unwinnable(policy, plan, verdict, numbers)
    return Decision(
        Action.ADVANCE,
        Rule.SHADOW_PASSED,
        f"{verdict}; {plan.summary}",
        {**numbers, "plan": plan.to_json()},
        plan=plan,
    )


def _unwinnable(policy: Policy, plan: AbPlan, verdict: str, numbers: dict[str, Any]) -> Decision:
    """The shadow passed, but the A/B test could not reach its plan within `max_duration` at the
    observed traffic and population: no user is exposed to a test that cannot conclude."""
    assert plan.supply is not None  # a plan made now has its supply
    unit = plan.supply.unit
    return Decision(
        Action.REJECT,
        Rule.AB_UNWINNABLE,
        f"{verdict}, but the A/B test cannot conclude within {describe_span(policy.ab_test.max_duration)}: "
        f"{plan.summary}. The champion stays; no user saw the challenger "
        "(ab_test.start_unwinnable: true starts such tests anyway)",
        {
            **numbers,
            "needed": {"champion": plan.n_champion, "challenger": plan.n_challenger, "unit": unit},
            "available_by_max_duration": plan.available_by_max_duration,
            "expected_hours": plan.expected_hours,
            "max_duration_hours": plan.max_duration_hours,
            "plan": plan.to_json(),
        },
    )


# -- A/B test -------------------------------------------------------------------------------------


def decide_ab_test(
    rollout: RolloutState,
    policy: Policy,
    evidence: Evidence,
    now: datetime,
    look: HealthLook | None = None,
) -> Decision:
    """SRM → guardrails → (sequential or fixed-horizon) win/loss → max duration. SRM and guardrails act
    by their `health` action (`look`): by default a mismatch rejects and a breach rolls back."""
    look = look or HealthLook(rollout, policy)
    ab = policy.ab_test
    elapsed = now - rollout.phase_started_at
    champion, challenger = evidence.champion, evidence.challenger
    base: dict[str, Any] = {
        "elapsed_hours": elapsed.total_seconds() / 3600,
        "units": {"champion": champion.units, "challenger": challenger.units},
        "labelled": {"champion": champion.labelled, "challenger": challenger.labelled},
        "required": required_units(rollout),
        "error_ratio": error_ratio(champion.error_mean, challenger.error_mean),
    }
    srm = _srm(champion, challenger, ab.share, ab.srm_p_value)
    if srm is not None:
        base["srm"] = srm.to_dict()
        if srm.mismatch:
            ended = look.act(
                Rule.AB_SRM,
                f"experiment invalid: sample-ratio mismatch ({challenger.units} challenger vs "
                f"{champion.units} champion users for a {ab.share:.0%} share, "
                f"always-valid p = {srm.p_value:.2g} < {ab.srm_p_value:g})",
                base,
            )
            if ended is not None:
                return ended
    baseline = latency_baseline(evidence.champion_calls, policy)
    ended = _guardrails(champion, challenger, policy, baseline, base, look)
    if ended is not None:
        return ended
    arms = arm_estimates(policy, champion, challenger)
    if arms is None:
        return _wait_or_give_up(
            elapsed, ab.max_duration, Rule.AB_MIN_LABELED, "waiting for matured labels in both arms", base
        )
    arm_a, arm_b = arms
    if arm_a.variance + arm_b.variance <= 0:
        return _wait_or_give_up(
            elapsed,
            ab.max_duration,
            Rule.AB_NO_VARIANCE,
            "every labelled error is identical so far: nothing to test yet",
            base,
        )
    if min(arm_a.n, arm_b.n) < ab.min_users_per_arm:
        # Plug-in variances from a handful of users are too small as often as too large: no look
        # counts (nor enters the running interval) before the policy's minimum evidence.
        if ab.stopping is ABStopping.FIXED:
            return _fixed_horizon_verdict(rollout, policy, evidence, elapsed, base, rollout.memory)
        return _wait_or_give_up(
            elapsed,
            ab.max_duration,
            Rule.AB_MIN_USERS,
            f"waiting for {ab.min_users_per_arm} labelled users per arm before the test counts "
            f"({arm_b.n} challenger, {arm_a.n} champion)",
            base,
        )
    sequential = sequential_look(rollout, policy, arm_a, arm_b)
    base["sequential"] = sequential.to_dict()
    memory = SequentialMemory(sequential.p_value, (sequential.ci_low, sequential.ci_high))
    if sequential.ci_low > 0:
        # Direction from the running confidence sequence, never from a p-value an earlier win earned:
        # worse only when every error difference the evidence allows is above zero.
        return Decision(
            Action.REJECT,
            Rule.AB_LOSS,
            f"the challenger is worse: error {arm_b.mean:.4g} vs {arm_a.mean:.4g}, always-valid "
            f"{1 - ab.alpha:.0%} interval {sequential.ci_low / arm_a.mean:+.2%} to "
            f"{sequential.ci_high / arm_a.mean:+.2%} of the champion's error, above zero",
            base,
            memory=memory,
        )
    if ab.stopping is ABStopping.SEQUENTIAL:
        return _sequential_verdict(rollout, policy, elapsed, sequential, arm_a.mean, base, memory)
    return _fixed_horizon_verdict(rollout, policy, evidence, elapsed, base, memory)


def _srm(champion: ArmSummary, challenger: ArmSummary, share: float, threshold: float) -> SRMResult | None:
    """The sequential (always-valid) sample-ratio test: checked at every look, it ends a sound
    experiment as invalid with probability at most `threshold` over the whole test."""
    if champion.units + challenger.units == 0:
        return None
    counts = [champion.units, challenger.units]
    return sequential_sample_ratio_mismatch(counts, [1 - share, share], threshold=threshold)


def _guardrails(
    champion: ArmSummary,
    challenger: ArmSummary,
    policy: Policy,
    baseline: float | None,
    base: dict[str, Any],
    look: HealthLook,
) -> Decision | None:
    """Each breached guardrail acted on by its `health` action: the first whose action is rollback
    ends the rollout; holds and warnings are kept in `look`."""
    for breach in guardrail_breaches(champion, challenger, policy, latency_baseline_ms=baseline):
        ended = look.act(breach.rule, breach.reason, {**base, **breach.numbers})
        if ended is not None:
            return ended
    return None


def _wait_or_give_up(
    elapsed: timedelta,
    limit: timedelta,
    rule: Rule,
    waiting: str,
    base: dict[str, Any],
    memory: SequentialMemory | None = None,
) -> Decision:
    if elapsed >= limit:
        return Decision(
            Action.REJECT,
            Rule.AB_INCONCLUSIVE,
            f"max duration {describe_span(limit)} reached without a conclusive result ({waiting}): "
            "the champion stays",
            base,
            memory=memory,
        )
    return Decision(Action.STAY, rule, waiting, base, memory=memory)


def _sequential_verdict(
    rollout: RolloutState,
    policy: Policy,
    elapsed: timedelta,
    look: TestResult,
    champion_mean: float,
    base: dict[str, Any],
    memory: SequentialMemory,
) -> Decision:
    ab = policy.ab_test
    bound = -ab.min_improvement * champion_mean
    relative_high = look.ci_high / champion_mean
    if look.ci_high < bound:
        if elapsed < ab.min_duration:
            return Decision(
                Action.STAY,
                Rule.AB_MIN_DURATION,
                f"a win is showing (error {relative_high:+.2%} or better at worst) but the test must run "
                f"{describe_span(ab.min_duration)}; {describe_span(elapsed)} so far",
                base,
                memory=memory,
            )
        return Decision(
            Action.ADVANCE,
            Rule.AB_WIN,
            f"the challenger's error is lower by more than the {ab.min_improvement:.0%} margin: always-valid "
            f"{1 - ab.alpha:.0%} interval {look.ci_low / champion_mean:+.2%} to {relative_high:+.2%} "
            f"(p = {look.p_value:.3g})",
            base,
            memory=memory,
        )
    if look.ci_low > bound:
        # Futility: every improvement the evidence still allows is within the margin, so the test can
        # no longer be won. A challenger truly better by the planned effect lands here only when the
        # interval misses the truth on its low side: at most alpha / 2 of such tests.
        return Decision(
            Action.REJECT,
            Rule.AB_FUTILE,
            f"the challenger cannot win: always-valid {1 - ab.alpha:.0%} interval "
            f"{look.ci_low / champion_mean:+.2%} to {relative_high:+.2%} of the champion's error excludes "
            f"an improvement beyond the {ab.min_improvement:.0%} margin; stopped early, the champion stays",
            base,
            memory=memory,
        )
    return _wait_or_give_up(
        elapsed,
        ab.max_duration,
        Rule.AB_SEQUENTIAL,
        f"no conclusion yet: challenger error {look.estimate / champion_mean:+.2%}, always-valid interval "
        f"{look.ci_low / champion_mean:+.2%} to {relative_high:+.2%} "
        f"(needs to end below {-ab.min_improvement:.0%})",
        base,
        memory,
    )


def _fixed_horizon_verdict(
    rollout: RolloutState,
    policy: Policy,
    evidence: Evidence,
    elapsed: timedelta,
    base: dict[str, Any],
    memory: SequentialMemory,
) -> Decision:
    """One decision, once the planned sample has matured labels and the minimum duration has passed.

    Counts only what the analysis uses (users with matured labels), so the test has the power it was
    planned with. The planned sample not reached by the maximum duration is an inconclusive test: the
    champion stays.
    """
    ab = policy.ab_test
    required = required_units(rollout)
    have = {"champion": analysed_units(evidence.champion), "challenger": analysed_units(evidence.challenger)}
    progress = (
        f"{have['challenger']}/{required['challenger']} challenger and "
        f"{have['champion']}/{required['champion']} champion labelled users"
        if required
        else "no A/B plan: the shadow gave no labelled pairs to plan with"
    )
    reached = required is not None and all(have[arm] >= required[arm] for arm in have)
    if not reached:
        return _wait_or_give_up(
            elapsed,
            ab.max_duration,
            Rule.AB_FIXED_HORIZON,
            f"fixed horizon: evaluated once the planned sample is reached ({progress})",
            base,
            memory,
        )
    if elapsed < ab.min_duration:
        return Decision(
            Action.STAY,
            Rule.AB_MIN_DURATION,
            f"the planned sample is reached ({progress}); the test runs at least "
            f"{describe_span(ab.min_duration)}, {describe_span(elapsed)} so far",
            base,
            memory=memory,
        )
    if ab.method == "mann_whitney":
        return _mann_whitney_verdict(policy, evidence, base, memory)
    per_user = ab.method == "per_user"
    champion = evidence.champion.estimate(per_user)
    challenger = evidence.challenger.estimate(per_user)
    assert champion is not None and challenger is not None
    # One convention for every A/B rule: alpha is two-sided, each direction (win, loss) spends alpha / 2.
    verdict = ab_verdict(
        champion, challenger, min_improvement=ab.min_improvement, alpha=ab.alpha / 2, spread_under_null=True
    )
    numbers = {**base, "verdict": verdict.to_dict()}
    if verdict.outcome == "win":
        return Decision(Action.ADVANCE, Rule.AB_WIN, verdict.reason, numbers, memory=memory)
    rule = Rule.AB_LOSS if verdict.outcome == "loss" else Rule.AB_INCONCLUSIVE
    return Decision(
        Action.REJECT,
        rule,
        f"{verdict.reason} (at the planned sample size): the champion stays",
        numbers,
        memory=memory,
    )


def _mann_whitney_verdict(
    policy: Policy, evidence: Evidence, base: dict[str, Any], memory: SequentialMemory
) -> Decision:
    """Rank test of each user's mean error, with the margin: a win needs the challenger's users' errors
    below the champion's shrunk by it.

    Users, not requests, are ranked: a user's requests share its difficulty, so ranking requests as
    independent made most equal challengers win or lose. Under a scale shift (the challenger's errors
    are the champion's times a factor), comparing the challenger's with (1 - margin) x the champion's
    tests superiority by the margin. A loss is the plain comparison going the other way. Two-sided
    p-values with a direction: each of win and loss spends alpha / 2.
    """
    ab = policy.ab_test
    errors = evidence.user_mean_errors or {}
    champion, challenger = errors.get("champion", ()), errors.get("challenger", ())
    shrunk = [e * (1 - ab.min_improvement) for e in champion]
    beyond = mann_whitney_test(shrunk, challenger, alpha=ab.alpha)
    plain = mann_whitney_test(champion, challenger, alpha=ab.alpha)
    numbers = {**base, "test": beyond.to_dict(), "plain_test": plain.to_dict()}
    # `estimate` is P(challenger error > the other side's): below one half, the challenger does better.
    if beyond.p_value < ab.alpha and beyond.estimate < 0.5:
        return Decision(
            Action.ADVANCE,
            Rule.AB_WIN,
            f"Mann-Whitney: challenger errors lower than the champion's less the {ab.min_improvement:.0%} "
            f"margin (p = {beyond.p_value:.3g})",
            numbers,
            memory=memory,
        )
    lost = plain.p_value < ab.alpha and plain.estimate > 0.5
    return Decision(
        Action.REJECT,
        Rule.AB_LOSS if lost else Rule.AB_INCONCLUSIVE,
        f"Mann-Whitney: challenger errors {'higher' if lost else 'not lower by the margin'} "
        f"(p = {(plain if lost else beyond).p_value:.3g}): the champion stays",
        numbers,
        memory=memory,
    )


# -- ramp -----------------------------------------------------------------------------------------


def decide_ramp(
    rollout: RolloutState,
    policy: Policy,
    evidence: Evidence,
    now: datetime,
    look: HealthLook | None = None,
) -> Decision:
    """Guardrails at every look; after the dwell (or the step gate's `min_duration`), enough labels per
    arm and the step gate's labelled users and approval, the next step or promotion."""
    look = look or HealthLook(rollout, policy)
    ramp = policy.ramp
    shares = ramp_shares(policy)
    step = rollout.step or 0
    share = shares[step]
    elapsed = now - rollout.phase_started_at
    champion, challenger = compared_arms(rollout, policy, evidence)
    # The champion's p99 bound from every call it served since the rollout began: a step is too short
    # for one. At 100 % the champion serves nobody: its errors are compared in shadow, on the same
    # requests, and its latency is what it measured while it still served (a sampled shadow's load is
    # no baseline).
    baseline = latency_baseline(evidence.champion_calls, policy)
    base = {
        "step": step,
        "share": share,
        "elapsed_hours": elapsed.total_seconds() / 3600,
        "error_ratio": error_ratio(champion.error_mean, challenger.error_mean),
        "labelled": {"champion": champion.labelled, "challenger": challenger.labelled},
        "min_labeled_per_arm": ramp.min_labeled_per_arm,
    }
    ended = _guardrails(champion, challenger, policy, baseline, base, look)
    if ended is not None:
        return ended
    gate = GateProgress.of(rollout, policy, champion, challenger)
    if ramp.gate(share) != StepGate():
        base["gate"] = gate.to_json()
    if elapsed < gate.min_duration:
        reason = f"at {share:.0%} for {describe_span(elapsed)} of {describe_span(gate.min_duration)}"
        return Decision(Action.STAY, Rule.RAMP_DWELL, reason, base)
    if min(champion.labelled, challenger.labelled) < ramp.min_labeled_per_arm:
        return Decision(
            Action.STAY,
            Rule.RAMP_MIN_LABELED,
            f"at {share:.0%}: waiting for {ramp.min_labeled_per_arm} labelled requests per arm "
            f"({challenger.labelled} challenger, {champion.labelled} champion)",
            base,
        )
    if gate.labelled_users < gate.min_labelled_users:
        return Decision(
            Action.STAY,
            Rule.RAMP_MIN_USERS,
            f"at {share:.0%}: waiting for {gate.min_labelled_users} labelled users per arm "
            f"({gate.labelled_users_challenger} challenger, {gate.labelled_users_champion} champion)",
            base,
        )
    if gate.approval and gate.approved is None:
        return Decision(
            Action.STAY,
            Rule.RAMP_APPROVAL,
            f"at {share:.0%}: every other check is met; leaving this step needs a person's approval",
            base,
        )
    if step + 1 >= len(shares):
        reason = f"held 100 % for {describe_span(elapsed)} within every guardrail: promoted"
        return Decision(Action.PROMOTE, Rule.RAMP_COMPLETED, reason, base)
    return Decision(
        Action.ADVANCE,
        Rule.RAMP_STEP,
        f"{share:.0%} held for {describe_span(elapsed)} within every guardrail: "
        f"next step {shares[step + 1]:.0%}",
        base,
    )
