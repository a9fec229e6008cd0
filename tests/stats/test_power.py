"""Sample sizes against R's power.t.test, statsmodels (small and large sizes), and the margin rule's
closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.power import TTestPower, tt_ind_solve_power

from pitstop.stats import (
    confidence_sequence,
    power_paired,
    power_two_sample,
    sample_size,
    sample_size_margin,
    sample_size_paired,
    sample_size_sequential,
)


@pytest.mark.parametrize(
    ("delta", "power", "r_n"),
    [
        (1.0, 0.8, 16.71477),  # R> power.t.test(delta = 1, sd = 1, power = 0.8)
        (1.0, 0.9, 22.02110),  # R> power.t.test(power = .90, delta = 1)  (its help page)
        (0.5, 0.8, 63.76576),  # R> power.t.test(delta = 0.5, sd = 1, power = 0.8)
    ],
)
def test_two_sample_sizes_match_r_power_t_test(delta: float, power: float, r_n: float) -> None:
    assert power_two_sample(delta, r_n, r_n) == pytest.approx(power, abs=2e-5)
    plan = sample_size(baseline_mean=2.0, baseline_std=1.0, mde=delta / 2, power=power)
    assert (plan.n_champion, plan.n_challenger, plan.n_total) == (
        math.ceil(r_n),
        math.ceil(r_n),
        2 * math.ceil(r_n),
    )
    assert plan.effect_size == pytest.approx(delta)


def test_paired_size_matches_r_power_t_test_paired() -> None:
    # R> power.t.test(delta = 1, sd = 1, power = 0.8, type = "paired"): n = 9.937864 pairs
    assert power_paired(1.0, 9.937864) == pytest.approx(0.8, abs=2e-6)
    # sd of the differences sqrt(2 (1 - 0.5)) = 1, planned difference 0.5 * 2 = 1
    assert sample_size_paired(2.0, 1.0, 0.5, correlation=0.5).n_total == 10


@pytest.mark.parametrize(
    ("mean", "std", "mde", "alpha", "power", "share"),
    [
        (10.0, 20.0, 0.01, 0.05, 0.8, 0.5),
        (10.0, 20.0, 0.02, 0.05, 0.8, 0.1),
        (3.0, 2.0, 0.05, 0.01, 0.9, 0.25),
        (1.0, 0.5, 0.2, 0.1, 0.7, 0.7),
    ],
)
def test_two_sample_sizes_match_statsmodels_with_unequal_allocation(
    mean: float, std: float, mde: float, alpha: float, power: float, share: float
) -> None:
    ratio = share / (1 - share)
    n_champion = tt_ind_solve_power(effect_size=mde * mean / std, alpha=alpha, power=power, ratio=ratio)
    plan = sample_size(mean, std, mde, alpha=alpha, power=power, share=share)
    assert plan.n_champion == math.ceil(n_champion)
    assert plan.n_challenger == math.ceil(n_champion * ratio)
    assert plan.n_total == plan.n_champion + plan.n_challenger
    assert (plan.alpha, plan.power, plan.mde, plan.share) == (alpha, power, mde, share)


@pytest.mark.parametrize(
    ("d", "share", "alpha", "power"),
    [
        (2.0, 0.5, 0.05, 0.8),
        (1.2, 0.5, 0.05, 0.8),
        (0.8, 0.3, 0.05, 0.9),
        (1.5, 0.2, 0.01, 0.8),
        (0.9, 0.7, 0.1, 0.7),
    ],
)
def test_small_two_sample_sizes_match_statsmodels(d: float, share: float, alpha: float, power: float) -> None:
    ratio = share / (1 - share)
    n_champion = tt_ind_solve_power(effect_size=d, alpha=alpha, power=power, ratio=ratio)
    plan = sample_size(1.0, 0.5 / d, 0.5, alpha=alpha, power=power, share=share)
    assert plan.n_champion < 60
    assert (plan.n_champion, plan.n_challenger) == (math.ceil(n_champion), math.ceil(n_champion * ratio))


@pytest.mark.parametrize(
    ("correlation", "alpha", "power"), [(0.9, 0.05, 0.8), (0.5, 0.01, 0.9), (-0.3, 0.1, 0.8)]
)
def test_paired_sizes_match_statsmodels(correlation: float, alpha: float, power: float) -> None:
    d = 0.05 * 10.0 / (20.0 * math.sqrt(2 * (1 - correlation)))
    n = TTestPower().solve_power(effect_size=d, alpha=alpha, power=power)
    assert sample_size_paired(
        10.0, 20.0, 0.05, correlation=correlation, alpha=alpha, power=power
    ).n_total == (math.ceil(n))


def test_correlated_shadow_pairs_need_far_fewer_samples_than_two_arms() -> None:
    paired = sample_size_paired(10.0, 20.0, 0.02, correlation=0.9)
    assert paired.n_total < sample_size(10.0, 20.0, 0.02).n_total / 15


def test_unequal_allocation_keeps_the_share_and_costs_more_in_total() -> None:
    balanced, skewed = sample_size(10.0, 20.0, 0.02), sample_size(10.0, 20.0, 0.02, share=0.1)
    assert skewed.n_challenger / skewed.n_total == pytest.approx(0.1, abs=1e-4)
    assert skewed.n_total > 2.5 * balanced.n_total


@pytest.mark.parametrize(
    ("mean", "std", "mde", "margin", "share"),
    [(10.0, 20.0, 0.05, 0.01, 0.5), (10.0, 20.0, 0.03, 0.01, 0.2), (10.0, 20.0, 0.02, 0.0, 0.5)],
)
def test_large_margin_rule_sizes_are_the_normal_closed_form(
    mean: float, std: float, mde: float, margin: float, share: float
) -> None:
    # N = (z_{1-alpha} + z_{1-beta})^2 CV^2 (1/s + (1 - m)^2/(1 - s)) / (mde - m)^2, by hand
    z = stats.norm.ppf(0.95) + stats.norm.ppf(0.8)
    total = z**2 * (std / mean) ** 2 * (1 / share + (1 - margin) ** 2 / (1 - share)) / (mde - margin) ** 2
    plan = sample_size_margin(mean, std, mde, margin=margin, share=share)
    assert plan.n_champion == pytest.approx(total * (1 - share), rel=1e-4)
    assert plan.n_challenger == pytest.approx(total * share, rel=1e-4)
    assert plan.method == "superiority_by_margin"


@pytest.mark.parametrize(
    ("mean", "std", "mde", "margin", "alpha", "power", "statsmodels_n"),
    [
        (10.0, 5.0, 0.3, 0.01, 0.05, 0.8, 37.079626),
        (1.0, 0.8, 0.25, 0.05, 0.05, 0.9, 261.327749),
        (10.0, 20.0, 0.05, 0.01, 0.05, 0.8, 30605.873548),
    ],
)
def test_margin_rule_sizes_match_statsmodels_with_the_margin_shifted_effect(
    mean: float, std: float, mde: float, margin: float, alpha: float, power: float, statsmodels_n: float
) -> None:
    # The rule tests the contrast m_b - (1 - m) m_a, variance sigma^2 (1/n_b + (1 - m)^2/n_a): a one-sided
    # two-sample t-test of effect (mde - m) / CV with the champion arm counted as n_a / (1 - m)^2 units.
    # statsmodels (pooled df) and the rule (Welch df) agree at equal allocation.
    ratio = 1 / (1 - margin) ** 2
    n = tt_ind_solve_power(
        effect_size=(mde - margin) * mean / std, alpha=alpha, power=power, ratio=ratio, alternative="larger"
    )
    assert n == pytest.approx(statsmodels_n, abs=1e-5)  # the statsmodels 0.14-0.15 value, pinned
    plan = sample_size_margin(mean, std, mde, margin=margin, alpha=alpha, power=power)
    assert (plan.n_champion, plan.n_challenger) == (math.ceil(statsmodels_n), math.ceil(statsmodels_n))


def test_with_unequal_allocation_the_rule_needs_a_little_more_than_pooled_df_suggest() -> None:
    # Welch df of unequal arms are below the pooled n_a + n_b - 2 that statsmodels assumes.
    share, margin = 0.2, 0.01
    ratio = (1 - share) / (share * (1 - margin) ** 2)
    n_b = tt_ind_solve_power(
        effect_size=(0.3 - margin) * 10.0 / 5.0, alpha=0.05, power=0.8, ratio=ratio, alternative="larger"
    )
    plan = sample_size_margin(10.0, 5.0, 0.3, margin=margin, share=share)
    assert n_b == pytest.approx(23.152696, abs=1e-5)
    n_a = n_b * ratio * (1 - margin) ** 2
    assert math.ceil(n_b) <= plan.n_challenger <= 1.1 * n_b
    assert math.ceil(n_a) <= plan.n_champion <= 1.1 * n_a


def test_margin_rule_without_margin_is_about_the_one_sided_classic_size() -> None:
    one_sided_like = sample_size(10.0, 20.0, 0.02, alpha=0.1)  # two-sided 0.1 = one-sided 0.05
    rule = sample_size_margin(10.0, 20.0, 0.02, margin=0.0)
    assert rule.n_total == pytest.approx(one_sided_like.n_total, rel=0.03)


def test_a_planned_effect_inside_the_margin_is_refused_not_silently_planned() -> None:
    with pytest.raises(ValueError, match="must exceed the margin"):
        sample_size_margin(10.0, 20.0, 0.01, margin=0.01)


def sequential_wins_by(n_a: int, n_b: int, mde: float, *, tau: float, runs: int, looks: int) -> float:
    """Share of simulated always-valid tests (normal errors, CV 1, `looks` evenly spaced looks) whose
    running upper bound on the relative effect has gone below -1 % by n_a and n_b units."""
    rng = np.random.default_rng(11)
    ka, kb = (np.linspace(0, n, looks + 1)[1:].round() for n in (n_a, n_b))
    # each arm's running sum at the looks, from normal increments (exactly the sum of its units' errors)
    sum_a = np.cumsum(rng.normal(np.diff(ka, prepend=0), np.sqrt(np.diff(ka, prepend=0)), (runs, looks)), 1)
    spread_b = np.sqrt(np.diff(kb, prepend=0)) * (1 - mde)
    sum_b = np.cumsum(rng.normal(np.diff(kb, prepend=0) * (1 - mde), spread_b, (runs, looks)), 1)
    variances = 1 / ka + (1 - mde) ** 2 / kb
    wins = 0
    for estimates in sum_b / kb - sum_a / ka:
        _, high = confidence_sequence(estimates, variances, tau=tau, alpha=0.05)
        wins += bool(high[-1] < -0.01)
    return wins / runs


@pytest.mark.parametrize(("mde", "share"), [(0.05, 0.5), (0.03, 0.5), (0.05, 0.1)])
def test_the_sequential_plan_wins_with_its_power_by_its_size(mde: float, share: float) -> None:
    """The always-valid rule looked at 20 times up to the planned size wins about 80 % of the time;
    the fixed-horizon size, which planned it before, gives it about half that."""
    plan = sample_size_sequential(1.0, 1.0, mde, margin=0.01, tau=0.05, share=share)
    power = sequential_wins_by(plan.n_champion, plan.n_challenger, mde, tau=0.05, runs=1000, looks=20)
    assert 0.78 <= power <= 0.92
    fixed = sample_size_margin(1.0, 1.0, mde, margin=0.01, share=share)
    assert sequential_wins_by(fixed.n_champion, fixed.n_challenger, mde, tau=0.05, runs=500, looks=20) < 0.6


def test_a_sequential_plan_needs_about_twice_the_fixed_horizon_units() -> None:
    sequential = sample_size_sequential(10.0, 20.0, 0.05, margin=0.01, tau=0.05, share=0.1)
    fixed = sample_size_margin(10.0, 20.0, 0.05, margin=0.01, share=0.1)
    assert 1.8 < sequential.n_total / fixed.n_total < 3
    assert sequential.n_challenger / sequential.n_total == pytest.approx(0.1, abs=1e-3)


def test_a_sequential_plan_inside_the_margin_is_refused() -> None:
    with pytest.raises(ValueError, match="must exceed the margin"):
        sample_size_sequential(10.0, 20.0, 0.01, margin=0.01)


def test_huge_effects_need_at_least_two_units_per_arm() -> None:
    plan = sample_size(1.0, 0.001, 0.5)
    assert (plan.n_champion, plan.n_challenger) == (2, 2)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: sample_size(10.0, 20.0, 0.0), "mde must be strictly between 0 and 1"),
        (lambda: sample_size(10.0, 20.0, 1.0), "mde must be strictly between 0 and 1"),
        (lambda: sample_size(10.0, 0.0, 0.01), "baseline_std must be positive"),
        (lambda: sample_size(-1.0, 2.0, 0.01), "baseline_mean must be positive"),
        (lambda: sample_size(10.0, 20.0, 0.01, share=1.0), "share must be strictly between 0 and 1"),
        (lambda: sample_size(10.0, 20.0, 0.01, share=0.0), "share must be strictly between 0 and 1"),
        (lambda: sample_size(10.0, 20.0, 0.01, alpha=0.0), "alpha must be strictly between 0 and 1"),
        (lambda: sample_size(10.0, 20.0, 0.01, power=1.0), "power must be strictly between 0 and 1"),
        (lambda: sample_size(10.0, 20.0, 0.01, power=0.04), "power must exceed alpha"),
        (lambda: sample_size(10.0, math.nan, 0.01), "baseline_std must be a finite number"),
        (lambda: sample_size_margin(10.0, 20.0, 0.02, margin=-0.01), "margin must not be negative"),
        (lambda: sample_size_margin(10.0, 20.0, 0.02, alpha=0.6), "alpha must be below 0.5"),
        (lambda: sample_size_sequential(10.0, 20.0, 0.02, tau=0.0), "tau must be positive"),
        (
            lambda: sample_size_paired(10.0, 20.0, 0.02, correlation=1.0),
            "correlation must be strictly between",
        ),
        (lambda: sample_size_paired(10.0, 20.0, 0.02, correlation=0.5, challenger_std=0.0), "challenger_std"),
        (lambda: power_two_sample(1.0, 1, 1), "must exceed 2"),
        (lambda: power_paired(1.0, 1), "n must exceed 1"),
    ],
)
def test_invalid_power_input_is_refused_naming_the_rule(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]
