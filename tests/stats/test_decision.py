"""The A/B rule: superiority by a margin, and a power analysis that agrees with it."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize, stats

from pitstop.stats import (
    ArmEstimate,
    ab_verdict,
    arm_from_summary,
    arm_from_users,
    mean_difference,
    relative_effect,
    sample_size,
    sample_size_margin,
)

MEAN, STD = 10.0, 20.0  # error per request: coefficient of variation 2, as absolute errors often have


def simulated_arms(
    n_champion: int,
    n_challenger: int,
    effect: float,
    *,
    seed: int,
    reps: int = 2000,
    mean: float = MEAN,
    std: float = STD,
) -> list[tuple[ArmEstimate, ArmEstimate]]:
    """`reps` experiments on normal errors, drawn as summaries: normal means, scaled chi-square variances."""
    rng = np.random.default_rng(seed)
    sizes = np.array([n_champion, n_challenger])
    means = rng.normal([mean, mean * (1 + effect)], std / np.sqrt(sizes), (reps, 2))
    variances = std**2 * rng.chisquare(sizes - 1, (reps, 2)) / (sizes - 1)
    return [
        (arm_from_summary(n_champion, m_a, v_a), arm_from_summary(n_challenger, m_b, v_b))
        for (m_a, m_b), (v_a, v_b) in zip(means, variances, strict=True)
    ]


def simulated_verdicts(
    n_champion: int, n_challenger: int, effect: float, *, seed: int, reps: int = 2000, margin: float = 0.01
) -> list[str]:
    return [
        ab_verdict(champion, challenger, min_improvement=margin).outcome
        for champion, challenger in simulated_arms(n_champion, n_challenger, effect, seed=seed, reps=reps)
    ]


def binomial_tolerance(rate: float, reps: int) -> float:
    """Three standard deviations of a simulated rate."""
    return 3 * math.sqrt(rate * (1 - rate) / reps)


def test_a_clear_improvement_beyond_the_margin_wins() -> None:
    verdict = ab_verdict(arm_from_summary(50_000, 10.0, 400.0), arm_from_summary(50_000, 9.5, 400.0))
    assert verdict.outcome == "win"
    assert verdict.ci_high < -verdict.margin
    assert verdict.p_value < verdict.alpha
    assert "lower by more than the 1.00% margin" in verdict.reason


def test_a_significant_improvement_smaller_than_the_margin_is_inconclusive() -> None:
    champion, challenger = arm_from_summary(2_000_000, 10.0, 100.0), arm_from_summary(2_000_000, 9.95, 100.0)
    assert mean_difference(champion, challenger).p_value < 0.001
    verdict = ab_verdict(champion, challenger)
    assert verdict.outcome == "inconclusive"
    assert "not shown to be lower by more than" in verdict.reason


def test_a_significantly_worse_challenger_loses() -> None:
    verdict = ab_verdict(arm_from_summary(50_000, 10.0, 400.0), arm_from_summary(50_000, 10.6, 400.0))
    assert verdict.outcome == "loss"
    assert verdict.ci_low > 0


def test_too_little_data_is_inconclusive() -> None:
    verdict = ab_verdict(arm_from_summary(100, 10.0, 400.0), arm_from_summary(100, 9.0, 400.0))
    assert verdict.outcome == "inconclusive"
    assert "not enough evidence" in verdict.reason


def test_win_exactly_when_the_one_sided_p_value_is_below_alpha() -> None:
    for challenger_mean in np.linspace(9.5, 10.3, 41):
        verdict = ab_verdict(
            arm_from_summary(40_000, 10.0, 400.0), arm_from_summary(40_000, challenger_mean, 400.0)
        )
        assert (verdict.outcome == "win") == (verdict.p_value < 0.05)
        assert verdict.confidence == pytest.approx(0.9)


def test_the_verdict_uses_per_user_estimates_when_given_them() -> None:
    verdict = ab_verdict(
        arm_from_users([4.0, 6.0, 5.0], [2, 3, 2]), arm_from_users([3.0, 4.0, 4.0], [2, 2, 3])
    )
    assert (verdict.method, verdict.n_champion, verdict.n_challenger) == ("per_user", 3, 3)


def test_the_rule_reaches_the_planned_power_at_the_planned_effect() -> None:
    plan = sample_size_margin(MEAN, STD, mde=0.03, margin=0.01, power=0.8, share=0.2)
    outcomes = simulated_verdicts(plan.n_champion, plan.n_challenger, -0.03, seed=30)
    assert outcomes.count("win") / len(outcomes) == pytest.approx(0.8, abs=0.03)


def test_a_true_effect_exactly_at_the_margin_wins_at_rate_alpha() -> None:
    plan = sample_size_margin(MEAN, STD, mde=0.03, margin=0.01, share=0.5)
    outcomes = simulated_verdicts(plan.n_champion, plan.n_challenger, -0.01, seed=31)
    assert outcomes.count("win") / len(outcomes) == pytest.approx(0.05, abs=0.015)


def test_no_true_effect_almost_never_wins() -> None:
    plan = sample_size_margin(MEAN, STD, mde=0.03, margin=0.01, share=0.5)
    outcomes = simulated_verdicts(plan.n_champion, plan.n_challenger, 0.0, seed=32)
    assert outcomes.count("win") / len(outcomes) < 0.01  # about 0.002: (0 + m) / se = 1.24 from the margin
    assert outcomes.count("loss") / len(outcomes) == pytest.approx(0.05, abs=0.015)


SMALL = {"mean": 10.0, "std": 5.0}  # coefficient of variation 0.5: a 30 % improvement needs only dozens


@pytest.mark.parametrize(("share", "seed"), [(0.5, 34), (0.2, 35)])
def test_a_small_plan_reaches_its_power_and_holds_alpha_at_the_margin(share: float, seed: int) -> None:
    plan = sample_size_margin(10.0, 5.0, mde=0.3, margin=0.01, share=share)
    assert plan.n_total < 130
    reps = 4000
    wins = [
        sum(
            ab_verdict(champion, challenger).outcome == "win"
            for champion, challenger in simulated_arms(
                plan.n_champion, plan.n_challenger, effect, seed=seed + offset, reps=reps, **SMALL
            )
        )
        / reps
        for offset, effect in ((0, -0.3), (100, -0.01))
    ]
    assert wins[0] == pytest.approx(0.8, abs=binomial_tolerance(0.8, reps))
    assert wins[1] <= 0.05 + binomial_tolerance(0.05, reps)


def test_the_delta_method_form_of_the_rule_would_exceed_alpha_at_a_small_size() -> None:
    # (r_hat + m) / se_delta(r_hat) < -t: the ratio's skew makes it win too often at the margin.
    reps, margin = 4000, 0.01
    arms = simulated_arms(38, 38, -margin, seed=36, reps=reps, **SMALL)
    delta_wins = fieller_wins = 0
    for champion, challenger in arms:
        shifted = relative_effect(champion, challenger, null=-margin)
        delta_wins += shifted.statistic < -stats.t.ppf(0.95, shifted.df)
        fieller_wins += ab_verdict(champion, challenger, min_improvement=margin).outcome == "win"
    assert delta_wins / reps > 0.05 + binomial_tolerance(0.05, reps)
    assert fieller_wins / reps <= 0.05 + binomial_tolerance(0.05, reps)


def test_the_interval_is_fiellers_found_by_root_finding() -> None:
    champion, challenger = arm_from_summary(400, 10.0, 36.0), arm_from_summary(300, 9.4, 30.0)
    verdict = ab_verdict(champion, challenger)
    v_a, v_b = 36.0 / 400, 30.0 / 300
    t = stats.t.ppf(0.95, verdict.df)

    def pivot(rho: float) -> float:  # Fieller's pivot for rho = m_b / m_a
        return (9.4 - rho * 10.0) / math.sqrt(v_b + rho**2 * v_a)

    low = optimize.brentq(lambda rho: pivot(rho) - t, 0.5, 0.94) - 1
    high = optimize.brentq(lambda rho: pivot(rho) + t, 0.94, 1.5) - 1
    assert (verdict.ci_low, verdict.ci_high) == pytest.approx((low, high), rel=1e-10)
    assert (verdict.ci_low, verdict.ci_high) == pytest.approx((-0.127614022, 0.012216040), abs=1e-9)
    assert verdict.statistic == pytest.approx(pivot(0.99), rel=1e-12)
    assert verdict.outcome == "inconclusive"


def test_a_champion_mean_not_significantly_above_zero_gives_an_unbounded_interval() -> None:
    verdict = ab_verdict(arm_from_summary(3, 1.0, 30.0), arm_from_summary(3, 0.5, 30.0))
    assert (verdict.ci_low, verdict.ci_high) == (-math.inf, math.inf)
    assert verdict.outcome == "inconclusive"
    assert verdict.to_dict()["ci_high"] is None


def test_the_rejected_alternative_would_halve_the_planned_power() -> None:
    # "p < alpha against zero and point estimate beyond the margin", planned classically for the margin:
    # at a true effect exactly at the margin it wins about half the time, not the planned 80 %.
    plan = sample_size(MEAN, STD, mde=0.01, power=0.8)
    rng = np.random.default_rng(33)
    se = STD * math.sqrt(1 / plan.n_champion + 1 / plan.n_challenger)
    differences = rng.normal(-0.01 * MEAN, se, 4000)
    naive_wins = (np.abs(differences / se) > 1.96) & (differences < -0.01 * MEAN)
    assert naive_wins.mean() == pytest.approx(0.5, abs=0.03)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_improvement": 1.0}, "min_improvement must be below 1"),
        ({"min_improvement": -0.01}, "min_improvement must not be negative"),
        ({"alpha": 0.5}, "alpha must be below 0.5"),
        ({"alpha": 0.0}, "alpha must be strictly between 0 and 1"),
    ],
)
def test_invalid_rule_parameters_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ab_verdict(arm_from_summary(100, 10.0, 4.0), arm_from_summary(100, 9.0, 4.0), **kwargs)


def test_arms_estimated_differently_are_refused() -> None:
    with pytest.raises(ValueError, match="estimated differently"):
        ab_verdict(arm_from_summary(3, 10.0, 4.0), arm_from_users([4.0, 6.0, 5.0], [2, 3, 2]))
