"""The A/B rule: superiority by a margin, and a power analysis that agrees with it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pitstop.stats import (
    ab_verdict,
    arm_from_summary,
    arm_from_users,
    mean_difference,
    sample_size,
    sample_size_margin,
)

MEAN, STD = 10.0, 20.0  # error per request: coefficient of variation 2, as absolute errors often have


def simulated_verdicts(
    n_champion: int, n_challenger: int, effect: float, *, seed: int, reps: int = 2000, margin: float = 0.01
) -> list[str]:
    """Verdicts on `reps` experiments drawn as summaries: normal means, scaled chi-square variances."""
    rng = np.random.default_rng(seed)
    sizes = np.array([n_champion, n_challenger])
    means = rng.normal([MEAN, MEAN * (1 + effect)], STD / np.sqrt(sizes), (reps, 2))
    variances = STD**2 * rng.chisquare(sizes - 1, (reps, 2)) / (sizes - 1)
    return [
        ab_verdict(
            arm_from_summary(n_champion, m_a, v_a),
            arm_from_summary(n_challenger, m_b, v_b),
            min_improvement=margin,
        ).outcome
        for (m_a, m_b), (v_a, v_b) in zip(means, variances, strict=True)
    ]


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
