"""Relative effect (challenger / champion - 1) with delta-method intervals, independent and paired."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from pitstop.stats import (
    arm_from_errors,
    arm_from_summary,
    arm_from_users,
    paired_relative_effect,
    relative_components,
    relative_effect,
)


def test_relative_effect_is_the_delta_method_formula_computed_by_hand() -> None:
    champion, challenger = arm_from_summary(400, 10.0, 36.0), arm_from_summary(300, 9.4, 30.0)
    v_a, v_b = 36.0 / 400, 30.0 / 300
    variance = v_b / 10.0**2 + 9.4**2 * v_a / 10.0**4
    result = relative_effect(champion, challenger, alpha=0.1)
    assert result.estimate == pytest.approx(-0.06)
    assert result.details["se"] == pytest.approx(math.sqrt(variance), rel=1e-12)
    half = stats.t.ppf(0.95, result.df) * math.sqrt(variance)
    assert (result.ci_low, result.ci_high) == pytest.approx((-0.06 - half, -0.06 + half), rel=1e-12)
    assert result.method == "welch_relative"
    assert 299 < result.df < 699


def test_relative_effect_interval_matches_a_numerical_delta_method_and_a_monte_carlo() -> None:
    champion, challenger = arm_from_summary(400, 10.0, 36.0), arm_from_summary(300, 9.4, 30.0)
    v_a, v_b = 36.0 / 400, 30.0 / 300
    result = relative_effect(champion, challenger)
    # Delta method with the gradient of m_b / m_a - 1 taken numerically (central differences, scipy's t).
    step = 1e-6
    grad_a = ((9.4 / (10.0 + step)) - (9.4 / (10.0 - step))) / (2 * step)
    grad_b = (((9.4 + step) / 10.0) - ((9.4 - step) / 10.0)) / (2 * step)
    se = math.sqrt(grad_a**2 * v_a + grad_b**2 * v_b)
    half = stats.t.ppf(0.975, result.df) * se
    assert (result.ci_low, result.ci_high) == pytest.approx((-0.06 - half, -0.06 + half), rel=1e-8)
    assert (result.ci_low, result.ci_high) == pytest.approx((-0.14319823, 0.02319823), abs=1e-8)
    # Monte Carlo of the estimator's sampling distribution at these means: the same spread up to the delta
    # method's second-order terms (~0.3 % here); the ratio's skew moves each end by about 0.003.
    rng = np.random.default_rng(24)
    draws = rng.normal(9.4, math.sqrt(v_b), 1_000_000) / rng.normal(10.0, math.sqrt(v_a), 1_000_000) - 1
    assert draws.std() == pytest.approx(se, rel=1e-2)
    low, high = np.quantile(draws, [0.025, 0.975])
    assert high - low == pytest.approx(result.ci_high - result.ci_low, rel=1e-2)


def test_relative_effect_variance_agrees_with_a_bootstrap() -> None:
    rng = np.random.default_rng(20)
    a, b = rng.exponential(5.0, 400), rng.exponential(4.5, 500)
    draws = rng.integers(0, 400, (4000, 400)), rng.integers(0, 500, (4000, 500))
    boot = b[draws[1]].mean(axis=1) / a[draws[0]].mean(axis=1) - 1
    _, se, _ = relative_components(arm_from_errors(a), arm_from_errors(b))
    assert se**2 == pytest.approx(boot.var(ddof=1), rel=0.1)


def test_relative_effect_test_of_a_null_shifts_the_statistic() -> None:
    champion, challenger = arm_from_summary(400, 10.0, 36.0), arm_from_summary(400, 9.4, 36.0)
    plain, shifted = relative_effect(champion, challenger), relative_effect(champion, challenger, null=-0.06)
    assert shifted.statistic == pytest.approx(0.0, abs=1e-12)
    assert shifted.p_value == pytest.approx(1.0)
    assert (shifted.ci_low, shifted.ci_high) == (plain.ci_low, plain.ci_high)


def test_relative_effect_works_on_per_user_estimates() -> None:
    result = relative_effect(
        arm_from_users([4.0, 6.0, 5.0], [2, 3, 2]), arm_from_users([3.0, 4.0, 4.0], [2, 2, 3])
    )
    assert result.estimate == pytest.approx((11 / 7) / (15 / 7) - 1)
    assert result.method == "per_user_relative"


def test_relative_effect_interval_covers_the_truth_at_its_nominal_rate() -> None:
    rng = np.random.default_rng(21)
    n, reps, sigma = 500, 2000, 8.0
    means = rng.normal([10.0, 9.0], sigma / math.sqrt(n), (reps, 2))
    variances = sigma**2 * rng.chisquare(n - 1, (reps, 2)) / (n - 1)
    covered = 0
    for (m_a, m_b), (v_a, v_b) in zip(means, variances, strict=True):
        result = relative_effect(arm_from_summary(n, m_a, v_a), arm_from_summary(n, m_b, v_b))
        covered += result.ci_low < -0.1 < result.ci_high
    assert covered / reps == pytest.approx(0.95, abs=0.015)


def test_paired_relative_effect_keeps_the_covariance_of_the_pairs() -> None:
    rng = np.random.default_rng(22)
    a = rng.exponential(4.0, 300)
    b = 0.95 * a + rng.normal(0, 0.3, 300)
    ratio = b.mean() / a.mean()
    n = a.size
    # Delta method for mean(b) / mean(a) on the same requests:
    # (Var(b) - 2 R Cov(a, b) + R^2 Var(a)) / (n mean(a)^2).
    cov = np.cov(a, b, ddof=1)
    variance = (cov[1, 1] - 2 * ratio * cov[0, 1] + ratio**2 * cov[0, 0]) / (n * a.mean() ** 2)
    result = paired_relative_effect(a, b)
    assert result.estimate == pytest.approx(ratio - 1, rel=1e-12)
    assert result.details["se"] == pytest.approx(math.sqrt(variance), rel=1e-10)
    # Ignoring the pairing would give a far wider interval.
    _, independent_se, _ = relative_components(arm_from_errors(a), arm_from_errors(b))
    assert result.details["se"] < independent_se / 5


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: relative_effect(arm_from_summary(9, 0.0, 1.0), arm_from_summary(9, 1.0, 1.0)), "positive"),
        (
            lambda: relative_effect(arm_from_summary(9, 2.0, 0.0), arm_from_summary(9, 1.0, 0.0)),
            "zero variance",
        ),
        (
            lambda: relative_effect(
                arm_from_summary(9, 2.0, 1.0), arm_from_summary(9, 1.0, 1.0), null=math.nan
            ),
            "null must be a finite number",
        ),
        (lambda: paired_relative_effect([1.0, 2.0, 3.0], [1.0, 2.0]), "same length"),
        (lambda: paired_relative_effect([1.0, 2.0], [2.0, 4.0]), "zero variance"),
        (lambda: paired_relative_effect([-1.0, 0.5], [2.0, 4.0]), "positive"),
    ],
)
def test_invalid_effect_input_is_refused_naming_the_rule(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]
