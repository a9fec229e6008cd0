"""Two-sample tests of the arms' mean error: per-user delta method, Welch, Mann-Whitney U."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from pitstop.config import ABMethod
from pitstop.stats import (
    ArmEstimate,
    UserErrors,
    arm_from_summary,
    compare_arms,
    mann_whitney_test,
    mean_difference,
    per_user_test,
    welch_test,
)

# R: sleep data, extra ~ group (Student 1908 / Cushny & Peebles).
SLEEP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]
# R: ?wilcox.test, "Another example" (Hollander & Wolfe 1973, p. 69).
WILCOX_X = [0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46]
WILCOX_Y = [1.15, 0.88, 0.90, 0.74, 1.21]


def test_welch_matches_r_t_test_on_the_sleep_data() -> None:
    # R> t.test(extra ~ group, data = sleep): t = -1.8608, df = 17.776, p-value = 0.07939,
    #    95 percent confidence interval: -3.3654832  0.2054832
    result = welch_test(SLEEP_2, SLEEP_1)
    assert result.statistic == pytest.approx(-1.8608, abs=5e-5)
    assert result.df == pytest.approx(17.776, abs=5e-4)
    assert result.p_value == pytest.approx(0.07939, abs=5e-6)
    assert (result.ci_low, result.ci_high) == pytest.approx((-3.3654832, 0.2054832), abs=5e-8)
    assert result.estimate == pytest.approx(-1.58)


def test_welch_matches_scipy_unequal_variance_t_test() -> None:
    rng = np.random.default_rng(10)
    champion, challenger = rng.normal(5, 1, 80), rng.normal(4.7, 2, 50)
    reference = stats.ttest_ind(challenger, champion, equal_var=False)
    result = welch_test(champion, challenger, alpha=0.1)
    assert result.statistic == pytest.approx(reference.statistic, rel=1e-12)
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-10)
    assert result.df == pytest.approx(reference.df, rel=1e-12)
    interval = reference.confidence_interval(0.9)
    assert (result.ci_low, result.ci_high) == pytest.approx((interval.low, interval.high), rel=1e-10)
    assert (result.method, result.n) == ("welch", 130)


def test_mean_difference_from_summaries_equals_welch_on_the_raw_errors() -> None:
    rng = np.random.default_rng(11)
    a, b = rng.exponential(3.0, 200), rng.exponential(2.8, 300)
    from_summary = mean_difference(
        arm_from_summary(a.size, a.mean(), a.var(ddof=1)), arm_from_summary(b.size, b.mean(), b.var(ddof=1))
    )
    raw = welch_test(a, b)
    assert from_summary.p_value == pytest.approx(raw.p_value, rel=1e-10)
    assert from_summary.ci_high == pytest.approx(raw.ci_high, rel=1e-10)


def test_per_user_test_is_welch_on_the_delta_method_estimates() -> None:
    sums_a, counts_a = np.array([3.0, 1.0, 4.0, 2.0, 6.0]), np.array([2, 1, 3, 2, 4])
    sums_b, counts_b = np.array([1.0, 2.0, 1.0, 2.0]), np.array([2, 2, 1, 3])

    def by_hand(sums: np.ndarray, counts: np.ndarray) -> tuple[float, float]:
        ratio = sums.sum() / counts.sum()
        k = sums.size
        return ratio, ((sums - ratio * counts) ** 2).sum() / (k * (k - 1) * counts.mean() ** 2)

    (mean_a, var_a), (mean_b, var_b) = by_hand(sums_a, counts_a), by_hand(sums_b, counts_b)
    t = (mean_b - mean_a) / math.sqrt(var_a + var_b)
    df = (var_a + var_b) ** 2 / (var_a**2 / 4 + var_b**2 / 3)
    result = per_user_test(sums_a, counts_a, sums_b, counts_b)
    assert result.statistic == pytest.approx(t, rel=1e-12)
    assert result.df == pytest.approx(df, rel=1e-12)
    assert result.p_value == pytest.approx(2 * stats.t.sf(abs(t), df), rel=1e-10)
    assert (result.method, result.n, result.details["requests_champion"]) == ("per_user", 9, 12)


def test_per_user_test_keeps_its_false_positive_rate_when_a_request_level_test_does_not() -> None:
    # Users are randomised; each has 5 requests sharing a user effect (intra-class correlation 0.5).
    rng = np.random.default_rng(12)
    reps, users, per_user = 1000, 100, 5
    errors = 10 + rng.normal(0, 1, (reps, 2, users, 1)) + rng.normal(0, 1, (reps, 2, users, per_user))
    counts = np.full(users, per_user)
    per_user_rejects = request_rejects = 0
    for rep in errors:
        sums = rep.sum(axis=2)
        per_user_rejects += per_user_test(sums[0], counts, sums[1], counts).p_value < 0.05
        request_rejects += welch_test(rep[0].ravel(), rep[1].ravel()).p_value < 0.05
    assert 0.025 < per_user_rejects / reps < 0.075
    assert request_rejects / reps > 0.2


def test_mann_whitney_statistic_matches_r_and_its_p_value_the_normal_approximation_by_hand() -> None:
    # R> wilcox.test(x, y): W = 35 (x the challenger here, y the champion).
    result = mann_whitney_test(WILCOX_Y, WILCOX_X)
    assert result.statistic == 35.0
    n1, n2 = 10, 5
    z = (35 - n1 * n2 / 2 - 0.5) / math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12)
    assert result.p_value == pytest.approx(2 * stats.norm.sf(z), rel=1e-12)
    assert result.estimate == pytest.approx(35 / 50)


def test_mann_whitney_p_value_with_ties_matches_the_tie_corrected_formula() -> None:
    rng = np.random.default_rng(13)
    a, b = rng.integers(0, 6, 40).astype(float), rng.integers(0, 5, 30).astype(float)
    pooled = np.concatenate([a, b])
    ranks = stats.rankdata(pooled)
    u = ranks[40:].sum() - 30 * 31 / 2
    _, ties = np.unique(pooled, return_counts=True)
    n = 70
    variance = 40 * 30 / 12 * ((n + 1) - (ties**3 - ties).sum() / (n * (n - 1)))
    z = (abs(u - 40 * 30 / 2) - 0.5) / math.sqrt(variance)
    result = mann_whitney_test(a, b)
    assert result.statistic == pytest.approx(u)
    assert result.p_value == pytest.approx(2 * stats.norm.sf(z), rel=1e-10)


def test_mann_whitney_estimate_is_the_auc_and_its_interval_the_delong_variance() -> None:
    rng = np.random.default_rng(14)
    a, b = np.round(rng.exponential(2.0, 60), 1), np.round(rng.exponential(1.6, 45), 1)
    auc = roc_auc_score(np.r_[np.zeros(60), np.ones(45)], np.r_[a, b])  # P(b > a) + P(b = a) / 2
    psi = (b[:, None] > a[None, :]) + 0.5 * (b[:, None] == a[None, :])  # brute-force placements
    se = math.sqrt(psi.mean(axis=1).var(ddof=1) / 45 + psi.mean(axis=0).var(ddof=1) / 60)
    result = mann_whitney_test(a, b)
    assert result.estimate == pytest.approx(auc, rel=1e-12)
    assert result.ci_low == pytest.approx(max(0.0, auc - 1.959963984540054 * se), rel=1e-9)
    assert result.ci_high == pytest.approx(min(1.0, auc + 1.959963984540054 * se), rel=1e-9)


def test_compare_arms_dispatches_on_the_policy_method() -> None:
    rng = np.random.default_rng(15)
    a, b = rng.exponential(2.0, 30), rng.exponential(1.5, 30)
    users_a = UserErrors(a[:10] * 3, np.full(10, 3))
    users_b = UserErrors(b[:12] * 2, np.full(12, 2))
    assert compare_arms("per_user", users_a, users_b) == per_user_test(*users_a, *users_b)
    assert compare_arms("welch", a, b) == welch_test(a, b)
    assert compare_arms("mann_whitney", a, b) == mann_whitney_test(a, b)


def test_compare_arms_accepts_every_method_the_policy_allows() -> None:
    a, b = [1.0, 2.5, 3.0, 4.0], [0.5, 1.5, 2.0, 3.5]
    assert {compare_arms(method, a, b).method for method in ABMethod} == {m.value for m in ABMethod}


def test_per_user_with_one_request_each_equals_welch() -> None:
    a, b = [1.0, 2.5, 3.0, 4.0, 2.0], [0.5, 1.5, 2.0, 3.5]
    per_user, welch = compare_arms("per_user", a, b), compare_arms("welch", UserErrors(a, [1] * 5), b)
    assert per_user.p_value == pytest.approx(welch.p_value, rel=1e-12)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: compare_arms("median", [1.0, 2.0], [1.0, 3.0]), "method must be one of per_user"),
        (lambda: compare_arms("welch", UserErrors([1.0, 2.0], [2, 1]), [1.0, 3.0]), "per-request errors"),
        (lambda: welch_test([1.0, 1.0], [2.0, 2.0]), "zero variance"),
        (lambda: welch_test([], [2.0, 2.0]), "champion_errors needs at least 2"),
        (lambda: welch_test([1.0, 2.0], [2.0, float("nan")]), "challenger_errors contains NaN"),
        (lambda: welch_test([1.0, 2.0], [2.0, 3.0], alpha=1.5), "alpha must be strictly between 0 and 1"),
        (lambda: mann_whitney_test([1.0, 1.0], [1.0, 1.0]), "nothing to rank"),
        (lambda: per_user_test([1.0, 2.0], [1, 1], [1.0], [1]), "at least 2"),
        (
            lambda: mean_difference(arm_from_summary(5, 1, 1), ArmEstimate(1, 0.1, 5, 9, "per_user")),
            "estimated differently",
        ),
    ],
)
def test_invalid_two_sample_input_is_refused_naming_the_rule(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]
