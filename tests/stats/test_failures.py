"""The always-valid failure-rate comparison against scipy's beta-binomial and by simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from pitstop.stats import failure_rate_test


def test_the_bayes_factor_is_scipys_beta_binomial_over_the_binomial() -> None:
    # conditional on F failures, BF = BetaBinom(x_b; F, c pi_0, c (1 - pi_0)) / Binom(x_b; F, pi_0)
    x_a, n_a, x_b, n_b = 31, 9_000, 12, 1_000
    share, total = n_b / (n_a + n_b), x_a + x_b
    expected = stats.betabinom.logpmf(x_b, total, 10 * share, 10 * (1 - share)) - stats.binom.logpmf(
        x_b, total, share
    )
    look = failure_rate_test(x_a, n_a, x_b, n_b)
    assert look.statistic == pytest.approx(expected, rel=1e-10)
    assert look.p_value == pytest.approx(min(1.0, math.exp(-expected)), rel=1e-9)
    assert look.estimate == pytest.approx(x_b / n_b - x_a / n_a)


def test_a_challenger_failing_less_is_evidence_but_never_harm() -> None:
    look = failure_rate_test(500, 9_000, 0, 1_000)
    assert look.p_value < 0.01 and look.estimate < 0


def test_equal_rates_checked_after_every_batch_rarely_reject() -> None:
    # Ville's inequality: checked after each of 40 batches of 250 requests, at most alpha of runs reject
    rng = np.random.default_rng(11)
    alpha, runs, rejected = 0.05, 300, 0
    for _ in range(runs):
        on_b = rng.random(10_000) < 0.1
        failed = rng.random(10_000) < 0.01
        for end in range(250, 10_001, 250):
            b, f = on_b[:end], failed[:end]
            look = failure_rate_test(
                int(f[~b].sum()), int((~b).sum()), int(f[b].sum()), int(b.sum()), alpha=alpha
            )
            if look.p_value < alpha:
                rejected += 1
                break
    assert rejected / runs <= alpha


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((5, 4, 0, 10), "failures must not exceed requests"),
        ((0, 0, 0, 10), "champion_requests must be a whole number of at least 1"),
        ((0, 10, -1, 10), "challenger_failures must be a whole number of at least 0"),
    ],
)
def test_inputs_are_checked(args: tuple[int, int, int, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        failure_rate_test(*args)
