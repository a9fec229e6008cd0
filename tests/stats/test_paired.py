"""Paired shadow tests: paired t (R, scipy), Wilcoxon signed-rank (R, formula, brute-force Hodges-Lehmann),
Diebold-Mariano with the Harvey-Leybourne-Newbold correction (exact arithmetic, a port of R's
forecast::dm.test, statsmodels autocovariances)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.tsa.stattools import acovf

from pitstop.stats import (
    compare_paired,
    diebold_mariano_test,
    paired_t_from_summary,
    paired_t_test,
    wilcoxon_test,
)

SLEEP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]
# R: ?wilcox.test, depression scale (Hollander & Wolfe 1973, p. 29): x first visit, y second visit.
DEPRESSION_X = [1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30]
DEPRESSION_Y = [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29]


def test_paired_t_matches_r_on_the_sleep_data() -> None:
    # R> t.test(extra ~ group, data = sleep, paired = TRUE): t = -4.0621, df = 9, p-value = 0.002833,
    #    95 percent confidence interval: -2.4598858 -0.7001142; mean difference -1.58
    result = paired_t_test(SLEEP_2, SLEEP_1)
    assert result.statistic == pytest.approx(-4.0621, abs=5e-5)
    assert result.df == 9
    assert result.p_value == pytest.approx(0.002833, abs=5e-7)
    assert (result.ci_low, result.ci_high) == pytest.approx((-2.4598858, -0.7001142), abs=5e-8)
    assert result.estimate == pytest.approx(-1.58)


def test_paired_t_matches_scipy_and_its_summary_form() -> None:
    rng = np.random.default_rng(40)
    a = rng.exponential(3.0, 150)
    b = a * 0.97 + rng.normal(0, 0.2, 150)
    reference = stats.ttest_rel(b, a)
    result = paired_t_test(a, b)
    assert result.statistic == pytest.approx(reference.statistic, rel=1e-12)
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-10)
    d = b - a
    assert paired_t_from_summary(d.size, d.mean(), d.var(ddof=1)) == result


def test_wilcoxon_matches_r_and_the_normal_approximation_by_hand() -> None:
    # R> wilcox.test(x, y, paired = TRUE): V = 40 (exact p 0.03906 two-sided; we pin the normal approximation)
    result = wilcoxon_test(DEPRESSION_Y, DEPRESSION_X)
    assert result.statistic == 40.0
    n = 9
    z = (40 - n * (n + 1) / 4 - 0.5) / math.sqrt(n * (n + 1) * (2 * n + 1) / 24)
    assert result.p_value == pytest.approx(2 * stats.norm.sf(z), rel=1e-12)
    assert result.p_value == pytest.approx(0.04401, abs=5e-6)


def test_wilcoxon_drops_zeros_and_corrects_for_ties() -> None:
    a = np.array([3.0, 2.0, 5.0, 4.0, 6.0, 2.0, 7.0, 3.0, 5.0, 1.0, 4.0, 8.0])
    b = np.array([2.0, 2.0, 3.0, 3.0, 5.0, 1.0, 7.0, 4.0, 3.0, 1.0, 2.0, 5.0])
    d = (b - a)[b != a]  # zeros dropped: n = 9
    ranks = stats.rankdata(np.abs(d))
    v = ranks[d > 0].sum()
    _, ties = np.unique(np.abs(d), return_counts=True)
    sigma = math.sqrt(d.size * (d.size + 1) * (2 * d.size + 1) / 24 - (ties**3 - ties).sum() / 48)
    z = (v - d.size * (d.size + 1) / 4 + 0.5) / sigma  # v is below its mean: correction towards it
    result = wilcoxon_test(a, b)
    assert (result.statistic, result.details["nonzero"]) == (v, 9)
    assert result.p_value == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-12)
    reference = stats.wilcoxon(b - a, zero_method="wilcox", correction=True, method="approx")
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-12)


@pytest.mark.parametrize(("n", "seed"), [(9, 41), (40, 42), (300, 43), (1500, 44)])
def test_hodges_lehmann_estimate_and_interval_match_all_walsh_averages(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    d = np.round(rng.normal(-0.3, 1.0, n), 1)  # rounded: ties and zeros included
    walsh = np.sort((d[:, None] + d[None, :])[np.triu_indices(n)] / 2)
    m = walsh.size
    k = math.floor(m / 2 - stats.norm.ppf(0.975) * math.sqrt(n * (n + 1) * (2 * n + 1) / 24))
    result = wilcoxon_test(np.zeros(n), d)
    assert result.estimate == pytest.approx(np.median(walsh), abs=1e-12)
    assert result.ci_low == pytest.approx(walsh[max(k, 1) - 1], abs=1e-12)
    assert result.ci_high == pytest.approx(walsh[m - max(k, 1)], abs=1e-12)


def test_hodges_lehmann_with_mostly_zero_differences_matches_all_walsh_averages() -> None:
    rng = np.random.default_rng(49)
    d = np.where(rng.random(1500) < 0.7, 0.0, np.round(rng.normal(-0.5, 1.0, 1500), 2))
    walsh = np.sort((d[:, None] + d[None, :])[np.triu_indices(1500)] / 2)
    result = wilcoxon_test(np.zeros_like(d), d, alpha=0.01)
    k = math.floor(walsh.size / 2 - stats.norm.ppf(0.995) * math.sqrt(1500 * 1501 * 3001 / 24))
    assert (result.estimate, result.ci_low, result.ci_high) == pytest.approx(
        (np.median(walsh), walsh[k - 1], walsh[walsh.size - k]), abs=1e-12
    )
    assert result.details["nonzero"] == np.count_nonzero(d)


def test_hodges_lehmann_on_a_large_continuous_sample_is_quick_and_near_the_median_shift() -> None:
    rng = np.random.default_rng(45)
    d = rng.normal(-0.05, 1.0, 100_000)
    result = wilcoxon_test(np.zeros_like(d), d)
    assert result.ci_low < result.estimate < result.ci_high
    assert result.estimate == pytest.approx(-0.05, abs=0.01)


def test_diebold_mariano_with_hln_matches_a_hand_computation() -> None:
    a = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    b = np.array([0.8, 2.1, 2.5, 3.6, 4.9, 5.2])
    d, n, h = b - a, 6, 2
    dbar = sum(d) / n
    gamma = [sum((d[t] - dbar) * (d[t - k] - dbar) for t in range(k, n)) / n for k in range(h)]
    dm = dbar / math.sqrt((gamma[0] + 2 * gamma[1]) / n)
    hln = dm * math.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    result = diebold_mariano_test(a, b, horizon=h)
    assert result.details["dm"] == pytest.approx(dm, rel=1e-12)
    assert result.statistic == pytest.approx(hln, rel=1e-12)
    # Exact rational arithmetic: dbar = -19/60, V = 107/2700, DM^2 = 1624.5/107, HLN factor 5/9, so
    # DM*^2 = 1805/214 exactly.
    assert result.statistic == pytest.approx(-math.sqrt(1805 / 214), rel=1e-13)
    assert result.details["long_run_variance"] == pytest.approx(107 / 2700, rel=1e-13)
    assert result.p_value == pytest.approx(2 * stats.t.sf(abs(hln), n - 1), rel=1e-12)


# Losses of two forecasters in time order; the differentials are positively autocorrelated.
DM_CHAMPION = [2.1, 1.4, 3.3, 0.9, 2.8, 1.7, 2.2, 3.9, 1.1, 2.5, 1.8, 3.0, 2.4, 1.6, 2.9, 2.0]
DM_CHALLENGER = [1.8, 1.0, 3.1, 1.0, 3.0, 1.6, 1.7, 3.3, 0.9, 2.5, 1.9, 2.7, 2.0, 1.5, 3.1, 1.8]


def r_dm_test(e1: list[float], e2: list[float], h: int) -> tuple[float, float]:
    """A line-by-line port of R forecast::dm.test(e1, e2, h, power = 1) on losses (two-sided, "acf")."""
    d = np.asarray(e1) - np.asarray(e2)
    n = len(d)
    d_cov = acovf(d, adjusted=False, demean=True, fft=False, nlag=h - 1)  # acf(type = "covariance")
    d_var = (d_cov[0] + 2 * d_cov[1:].sum()) / n
    statistic = d.mean() / math.sqrt(d_var)
    k = math.sqrt((n + 1 - 2 * h + (h / n) * (h - 1)) / n)
    statistic *= k
    return statistic, 2 * stats.t.cdf(-abs(statistic), df=n - 1)


@pytest.mark.parametrize(
    ("h", "statistic", "p_value"),
    [(1, -2.76432803, 0.01446309), (2, -1.97383248, 0.06711276), (3, -2.87731155, 0.01151208)],
)
def test_diebold_mariano_matches_a_port_of_r_forecast_dm_test(
    h: int, statistic: float, p_value: float
) -> None:
    reference = r_dm_test(DM_CHALLENGER, DM_CHAMPION, h)
    assert reference == pytest.approx((statistic, p_value), abs=5e-8)
    result = diebold_mariano_test(DM_CHAMPION, DM_CHALLENGER, horizon=h)
    assert (result.statistic, result.p_value) == pytest.approx((statistic, p_value), abs=5e-8)
    if h == 1:  # and at h = 1 scipy's paired t-test gives the same numbers
        scipy_t = stats.ttest_rel(DM_CHALLENGER, DM_CHAMPION)
        assert (scipy_t.statistic, scipy_t.pvalue) == pytest.approx((statistic, p_value), abs=5e-8)


def test_diebold_mariano_long_run_variance_uses_the_standard_autocovariances() -> None:
    rng = np.random.default_rng(46)
    noise = rng.normal(0, 1, 501)
    d = -0.1 + noise[1:] + 0.6 * noise[:-1]  # MA(1) loss differential: autocorrelated at lag 1
    gamma = acovf(d, adjusted=False, fft=False, nlag=3)
    result = diebold_mariano_test(np.zeros_like(d), d, horizon=4)
    assert result.details["long_run_variance"] == pytest.approx(gamma[0] + 2 * gamma[1:4].sum(), rel=1e-12)


def test_diebold_mariano_at_horizon_one_is_the_paired_t_test() -> None:
    rng = np.random.default_rng(47)
    a, b = rng.exponential(2.0, 80), rng.exponential(1.9, 80)
    dm, t = diebold_mariano_test(a, b), paired_t_test(a, b)
    assert dm.statistic == pytest.approx(t.statistic, rel=1e-12)
    assert (dm.p_value, dm.ci_low, dm.ci_high) == pytest.approx((t.p_value, t.ci_low, t.ci_high), rel=1e-10)


def test_compare_paired_accepts_every_test_the_shadow_policy_allows() -> None:
    a, b = [1.0, 2.0, 3.0, 4.0, 5.0], [0.9, 1.7, 3.1, 3.6, 4.2]
    for method in ("paired_t", "wilcoxon", "diebold_mariano"):
        assert compare_paired(method, a, b).method == method
    assert compare_paired("diebold_mariano", a, b, horizon=2) == diebold_mariano_test(a, b, horizon=2)


def test_the_paired_false_positive_rate_is_near_alpha_under_no_difference() -> None:
    rng = np.random.default_rng(48)
    reps = 600
    shared = rng.exponential(3.0, (reps, 1, 60))
    errors = shared + rng.normal(0, 0.5, (reps, 2, 60))
    rejects = {"paired_t": 0, "wilcoxon": 0}
    for a, b in errors:
        for method in rejects:
            rejects[method] += compare_paired(method, a, b).p_value < 0.05
    assert rejects["paired_t"] / reps == pytest.approx(0.05, abs=0.02)
    assert rejects["wilcoxon"] / reps == pytest.approx(0.05, abs=0.02)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: paired_t_test([1.0, 2.0, 3.0], [1.0, 2.0]), "same length"),
        (lambda: paired_t_test([1.0, 2.0], [2.0, 3.0]), "zero variance"),
        (lambda: paired_t_test([1.0], [2.0]), "at least 2"),
        (lambda: paired_t_from_summary(1, 0.1, 1.0), "n must be a whole number of at least 2"),
        (lambda: wilcoxon_test([1.0, 2.0], [1.0, 2.0]), "every difference is zero"),
        (lambda: wilcoxon_test([1.0, 2.0], [1.0, math.inf]), "NaN or infinite"),
        (lambda: diebold_mariano_test([1.0, 2.0, 3.0], [2.0, 1.0, 3.5], horizon=3), "horizon must be below"),
        (
            lambda: diebold_mariano_test([1.0, 2.0, 3.0], [2.0, 1.0, 3.5], horizon=0),
            "horizon must be a whole",
        ),
        (lambda: diebold_mariano_test([0.0] * 6, [1.0, -1.0] * 3, horizon=2), "long-run variance"),
        (lambda: compare_paired("sign", [1.0, 2.0], [2.0, 1.0]), "method must be one of paired_t"),
    ],
)
def test_invalid_paired_input_is_refused_naming_the_rule(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]
