"""The A/B plan, made when the shadow passes: how many users the configured test needs, how many the
model will have, and so whether the test can conclude within `ab_test.max_duration` at all.

Pure: from the policy and the shadow's evidence (the champion's per-user spread, the effect seen on
the same requests, and how distinct users accumulated over the shadow window).
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import timedelta

from pitstop.config import ABMethod, ABStopping, Policy
from pitstop.durations import describe_span
from pitstop.rollout.evidence import Evidence
from pitstop.rollout.plan import AbPlan, Supply
from pitstop.stats import sample_size_margin
from pitstop.stats.population import UserCurve, fit_user_curve
from pitstop.stats.power import sample_size_sequential
from pitstop.stats.results import SampleSize


def unit_supply(policy: Policy, evidence: Evidence) -> Supply:
    """What the shadow saw of the model's users, and the curve that extrapolates them."""
    ab, champion = policy.ab_test, evidence.champion
    hours = evidence.window_hours
    maturation = ab.label_maturation.total_seconds() / 3600
    if ab.method is not ABMethod.PER_USER:
        # Requests do not run out: every request is a new unit, at the shadow's rate.
        rate = champion.requests / hours if hours > 0 else 0.0
        share = champion.labelled / champion.requests if champion.requests else 0.0
        curve = UserCurve(rate, None, None, champion.requests, hours)
        how = f"{champion.requests:,} requests in {hours:.3g} h of shadow, {share:.0%} labelled, at that rate"
        return Supply("requests", champion.requests, hours, share, maturation, curve, how)
    share = champion.moments.users / champion.units if champion.units else 0.0
    fitted = _fitted(evidence)
    curve = fitted or UserCurve(
        champion.units / hours if hours > 0 else 0.0, None, None, champion.units, hours
    )
    if fitted is None:
        shape = "no accumulation curve recorded: extrapolated at that rate"
    elif curve.population is None:
        shape = f"new users keep arriving at {curve.rate_per_hour:,.4g} an hour (fitted accumulation curve)"
    else:
        shape = (
            f"fitted accumulation curve: a population of about {curve.population:,.0f} users, each back "
            f"every {describe_span(timedelta(hours=curve.theta_hours or 0))} on average"
        )
    how = f"{champion.units:,} distinct users in {hours:.3g} h of shadow, {share:.0%} with a label; {shape}"
    return Supply("users", champion.units, hours, share, maturation, curve, how)


def _fitted(evidence: Evidence) -> UserCurve | None:
    points = [(hours, users) for hours, users in evidence.users_seen if hours > 0]
    if not points:
        return None
    try:
        return fit_user_curve([h for h, _ in points], [u for _, u in points])
    except ValueError:  # counts that are no accumulation (cannot come from the SQL): plan without it
        return None


def plan_ab_test(policy: Policy, evidence: Evidence) -> AbPlan:
    """The A/B plan from the shadow data: the effect and spread to expect, the units per arm the
    configured stopping rule needs to win with `ab_test.power`, the units the model will have, and
    whether the test can reach its plan within `ab_test.max_duration` (`reachable`)."""
    ab, paired = policy.ab_test, evidence.paired
    assert paired.champion_mean is not None and paired.challenger_mean is not None
    observed = paired.challenger_mean / paired.champion_mean - 1 if paired.champion_mean > 0 else 0.0
    champion = evidence.champion.estimate(per_user=ab.method is ABMethod.PER_USER)
    # The unit's spread: per user when the analysis is per user (errors of one user are correlated).
    unit_std = champion.unit_std if champion is not None else math.sqrt(paired.champion_var or 0.0)
    plausible = -observed > ab.min_improvement
    planned_effect = -observed if plausible else 2 * ab.min_improvement
    # The mSPRT finds effects near its tau soonest; fixed here, before the test sees its own data.
    tau = max(ab.tau, planned_effect if plausible else 0.0)
    supply = unit_supply(policy, evidence)
    max_hours = ab.max_duration.total_seconds() / 3600
    plan = AbPlan(
        shadow_effect=observed,
        planned_effect=planned_effect,
        baseline_mean=paired.champion_mean,
        baseline_std=unit_std,
        win_plausible=plausible,
        stopping=ab.stopping,
        units_per_hour=supply.curve.rate_per_hour,
        tau=tau * paired.champion_mean,
        supply=supply,
        available_by_max_duration=supply.labelled_by(max_hours),
        max_duration_hours=max_hours,
        summary="A/B sample size unknown (no spread in the shadow data)",
    )
    if unit_std <= 0 or paired.champion_mean <= 0:
        return plan
    size = _sample_size(policy, paired.champion_mean, unit_std, planned_effect, tau)
    floor = ab.min_users_per_arm if ab.stopping is ABStopping.SEQUENTIAL else 2
    n_champion, n_challenger = max(size.n_champion, floor), max(size.n_challenger, floor)
    # Both arms fill together, in the share's proportion: the slower one sets the pace.
    needed = max(n_challenger / ab.share, n_champion / (1 - ab.share))
    hours = supply.hours_to(needed)
    if hours is not None:
        hours = max(hours, ab.min_duration.total_seconds() / 3600)
    reachable = hours is not None and hours <= max_hours
    summary = _summary(policy, supply, n_champion, n_challenger, planned_effect, hours, reachable)
    if not plausible:
        summary += (
            f"; the shadow effect ({observed:+.1%}) makes an A/B win implausible: expect an inconclusive test"
        )
    return replace(
        plan,
        n_champion=n_champion,
        n_challenger=n_challenger,
        needed_total=math.ceil(needed),
        expected_hours=hours,
        reachable=reachable,
        summary=summary,
    )


def _sample_size(policy: Policy, mean: float, std: float, effect: float, tau: float) -> SampleSize:
    """Units per arm for the configured stopping rule to win at `effect` with the policy's power."""
    ab = policy.ab_test
    common = {"margin": ab.min_improvement, "alpha": ab.alpha, "power": ab.power, "share": ab.share}
    if ab.stopping is ABStopping.SEQUENTIAL:
        return sample_size_sequential(mean, std, effect, tau=tau, **common)
    # the fixed rule spends alpha / 2 on a win (one convention: alpha is two-sided), so its plan does too
    return sample_size_margin(mean, std, effect, **{**common, "alpha": ab.alpha / 2})


def _summary(
    policy: Policy,
    supply: Supply,
    n_champion: int,
    n_challenger: int,
    effect: float,
    hours: float | None,
    reachable: bool,
) -> str:
    ab = policy.ab_test
    rule = "sequential test" if ab.stopping is ABStopping.SEQUENTIAL else "fixed-horizon test"
    need = (
        f"A/B plan ({rule}): {n_challenger:,} challenger and {n_champion:,} champion labelled "
        f"{supply.unit} to detect a {effect:.1%} improvement beyond the {ab.min_improvement:.0%} margin "
        f"with {ab.power:.0%} power"
    )
    limit = describe_span(ab.max_duration)
    available = supply.labelled_by(ab.max_duration.total_seconds() / 3600)
    expect = f"about {available:,.0f} labelled {supply.unit} expected within {limit} ({supply.how})"
    when = (
        f"about {describe_span(timedelta(hours=hours))} at the current traffic"
        if hours is not None
        else "never at the current traffic: the model has fewer users"
    )
    if reachable:
        return f"{need}, {when}; {expect}"
    return f"{need}: {when}, beyond the {limit} maximum; {expect}"
