"""The always-valid quantile tests behind the latency guardrail: against a numerical integral of the
mixture, and by simulation at every look."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from pitstop.stats import exceedance_test, quantile_upper_rank
from pitstop.stats.exceedance import log_bayes_factor


def integrated_log_bf(k: int, n: int, p0: float, *, above: bool, c: float = 10.0) -> float:
    """The mixture written out: the Beta(c p0, c (1 - p0)) density on one side of p0, renormalised,
    times the likelihood ratio against p0, integrated numerically."""
    a, b = c * p0, c * (1 - p0)
    low, high = (p0, 1.0) if above else (0.0, p0)
    mass = stats.beta.sf(p0, a, b) if above else stats.beta.cdf(p0, a, b)

    def integrand(q: float) -> float:
        ratio = k * math.log(q / p0) + (n - k) * math.log((1 - q) / (1 - p0))
        return float(stats.beta.pdf(q, a, b) * math.exp(ratio))

    value, _ = integrate.quad(integrand, low, high, points=[p0 / 4, p0 * 1.5, p0 * 4][: 2 if above else 1])
    return math.log(value / mass)


@pytest.mark.parametrize(("k", "n", "above"), [(12, 800, True), (30, 1500, True), (3, 800, False)])
def test_the_bayes_factor_is_the_integral_of_the_one_sided_mixture(k: int, n: int, above: bool) -> None:
    expected = integrated_log_bf(k, n, 0.01, above=above)
    assert float(log_bayes_factor(k, n, 0.01, above=above, concentration=10.0)) == pytest.approx(
        expected, abs=1e-6
    )


def test_more_slow_calls_are_more_evidence_and_fewer_are_never() -> None:
    upper = log_bayes_factor(np.arange(0, 200), 5_000, 0.01, above=True, concentration=10.0)
    lower = log_bayes_factor(np.arange(0, 51), 5_000, 0.01, above=False, concentration=10.0)
    assert np.all(np.diff(upper) > 0) and np.all(np.diff(lower) < 0)
    assert exceedance_test(0, 5_000).p_value == 1.0  # no slow call is no evidence of a slow p99


def test_a_p99_within_the_limit_is_rarely_called_above_it_however_often_one_looks() -> None:
    """400 sequences of 3,000 calls, 1 % slower than the limit (the p99 exactly at it), a look every
    25 calls: the test ever rejects at alpha 5 % in at most 5 % of them."""
    rng = np.random.default_rng(11)
    slow = np.cumsum(rng.random((400, 3_000)) < 0.01, axis=1)
    ever = np.zeros(400, bool)
    for n in range(25, 3_001, 25):
        log_bf = log_bayes_factor(slow[:, n - 1], n, 0.01, above=True, concentration=10.0)
        ever |= log_bf >= math.log(1 / 0.05)
    assert ever.mean() <= 0.05


def test_a_p99_twice_the_limit_is_found() -> None:
    """Calls 4 % slower than the limit: rejected at alpha 0.00125 within 1,500 calls in each of 50 runs."""
    rng = np.random.default_rng(12)
    for _ in range(50):
        slow = np.cumsum(rng.random(1_500) < 0.04)
        assert exceedance_test(int(slow[-1]), 1_500, alpha=0.00125).p_value < 0.00125


def test_the_upper_bound_on_a_quantile_holds_at_every_look() -> None:
    """300 sequences of 10,000 calls: the d-th slowest call is at or above the true p99 at every look
    (every 100 calls) in at least 95 % of them at alpha 5 %, and the bound tightens with the calls."""
    rng = np.random.default_rng(13)
    at_or_above = np.cumsum(rng.random((300, 10_000)) < 0.01, axis=1)  # calls at or above the p99
    held = np.ones(300, bool)
    for n in range(100, 10_001, 100):
        d = quantile_upper_rank(n, alpha=0.05)
        held &= (d == 0) | (at_or_above[:, n - 1] >= d)  # the d-th slowest is at or above the p99
    assert held.mean() >= 0.95
    assert quantile_upper_rank(100) == 0  # too few calls to bound a p99
    assert 0 < quantile_upper_rank(2_000) < quantile_upper_rank(20_000) < 200


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: exceedance_test(5, 3), "exceeding must not exceed trials"),
        (lambda: exceedance_test(1, 10, share=1.0), "share must be between 0 and 1"),
        (lambda: quantile_upper_rank(10, alpha=0.0), "alpha"),
    ],
)
def test_invalid_input_is_refused(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]
