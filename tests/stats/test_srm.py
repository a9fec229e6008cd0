"""Sample-ratio mismatch: chi-square goodness of fit against scipy and by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from pitstop.stats import sample_ratio_mismatch, sequential_sample_ratio_mismatch


def test_srm_matches_scipy_chisquare() -> None:
    counts, shares = [90_412, 9_801], [0.9, 0.1]
    total = sum(counts)
    reference = stats.chisquare(counts, [total * s for s in shares])
    result = sample_ratio_mismatch(counts, shares)
    assert result.statistic == pytest.approx(reference.statistic, rel=1e-12)
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-10)
    assert (result.df, result.n, result.observed) == (1, total, (90_412, 9_801))


def test_srm_statistic_by_hand_for_an_even_split() -> None:
    # (50000 - 50250)^2 / 50250 + (50500 - 50250)^2 / 50250 = 2 * 62500 / 50250
    result = sample_ratio_mismatch([50_000, 50_500], [0.5, 0.5])
    assert result.statistic == pytest.approx(125_000 / 50_250, rel=1e-12)
    assert result.p_value == pytest.approx(stats.chi2.sf(125_000 / 50_250, 1), rel=1e-12)
    assert not result.mismatch
    assert result.observed_shares == pytest.approx((50_000 / 100_500, 50_500 / 100_500))


def test_a_lost_share_of_one_arm_is_a_mismatch_at_the_default_threshold() -> None:
    result = sample_ratio_mismatch([10_000, 900], [0.9, 0.1])  # the challenger lost ~17 % of its users
    assert result.p_value < 0.001
    assert result.mismatch
    assert result.threshold == 0.001


def test_the_threshold_is_a_policy_choice() -> None:
    counts, shares = [5_100, 4_900], [0.5, 0.5]  # p = 0.0455
    assert not sample_ratio_mismatch(counts, shares).mismatch
    assert sample_ratio_mismatch(counts, shares, threshold=0.05).mismatch


def test_three_arms_are_checked_with_two_degrees_of_freedom() -> None:
    reference = stats.chisquare([480, 260, 260], [500, 250, 250])
    result = sample_ratio_mismatch([480, 260, 260], [0.5, 0.25, 0.25])
    assert (result.df, result.p_value) == (2, pytest.approx(reference.pvalue, rel=1e-10))


def test_the_result_serialises_to_plain_json_types() -> None:
    data = sample_ratio_mismatch([50, 50], [0.5, 0.5]).to_dict()
    assert data["observed"] == [50, 50]
    assert data["mismatch"] is False


@pytest.mark.parametrize(
    ("counts", "shares", "kwargs", "message"),
    [
        ([10, 20], [1.2, -0.2], {}, "each share must be strictly between 0 and 1"),
        ([10, 20], [0.5, 0.6], {}, "shares must sum to 1"),
        ([10, 20, 30], [0.5, 0.5], {}, "same length"),
        ([10], [1.0], {}, "at least 2"),
        ([10, -1], [0.5, 0.5], {}, "at least 0"),
        ([10.5, 3], [0.5, 0.5], {}, "whole numbers"),
        ([0, 0], [0.5, 0.5], {}, "all zero"),
        ([10, 20], [0.5, 0.5], {"threshold": 0.0}, "threshold must be strictly between"),
        ([10, 20], [0.5, float("nan")], {}, "NaN"),
    ],
)
def test_invalid_srm_input_is_refused_naming_the_rule(
    counts: list[float], shares: list[float], kwargs: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        sample_ratio_mismatch(counts, shares, **kwargs)  # type: ignore[arg-type]


def test_sequential_srm_is_the_dirichlet_multinomial_bayes_factor_of_scipy() -> None:
    # BF = DirMult(x; 100 p) / Mult(x; p): the multinomial coefficients cancel (Lindon & Malek 2022)
    counts, shares = [9_041, 1_020], [0.9, 0.1]
    expected = stats.dirichlet_multinomial.logpmf(
        counts, [100 * s for s in shares], sum(counts)
    ) - stats.multinomial.logpmf(counts, sum(counts), shares)
    result = sequential_sample_ratio_mismatch(counts, shares)
    assert result.statistic == pytest.approx(expected, rel=1e-10)
    assert result.p_value == pytest.approx(min(1.0, math.exp(-expected)), rel=1e-9)
    assert result.method == "dirichlet_multinomial_msprt"


def test_sequential_srm_for_two_arms_integrates_the_beta_prior_by_hand() -> None:
    # two arms: BF = integral Beta(q; 100 p, 100 (1 - p)) q^x1 (1 - q)^x0 dq / (p^x1 (1 - p)^x0)
    champion, challenger, share = 900, 130, 0.1

    def integrand(q: float) -> float:
        log_lr = challenger * math.log(q / share) + champion * math.log((1 - q) / (1 - share))
        return float(stats.beta.pdf(q, 100 * share, 100 * (1 - share)) * math.exp(log_lr))

    bayes_factor, _ = integrate.quad(integrand, 0, 1, points=[0.1, 0.126], limit=200)
    result = sequential_sample_ratio_mismatch([champion, challenger], [1 - share, share])
    assert result.statistic == pytest.approx(math.log(bayes_factor), rel=1e-6)


def test_sequential_srm_rejects_once_the_bayes_factor_reaches_one_over_the_threshold() -> None:
    shares = [0.9, 0.1]
    assert not sequential_sample_ratio_mismatch([900, 100], shares).mismatch
    assert sequential_sample_ratio_mismatch([10_000, 900], shares).mismatch  # 17 % of one arm lost
    loose = sequential_sample_ratio_mismatch([5_100, 4_900], [0.5, 0.5], threshold=0.5)
    strict = sequential_sample_ratio_mismatch([5_100, 4_900], [0.5, 0.5])
    assert loose.p_value == strict.p_value and not strict.mismatch


def test_sequential_srm_keeps_its_false_alarm_rate_when_checked_after_every_unit() -> None:
    # Ville's inequality: sound splits checked after each of 3,000 units cross 1/alpha at most alpha
    rng = np.random.default_rng(7)
    alpha, runs, false_alarms = 0.05, 200, 0
    for _ in range(runs):
        challenger = np.cumsum(rng.random(3_000) < 0.1)
        for n in range(50, 3_001, 50):
            k = int(challenger[n - 1])
            if sequential_sample_ratio_mismatch([n - k, k], [0.9, 0.1], threshold=alpha).mismatch:
                false_alarms += 1
                break
    assert false_alarms / runs <= alpha


def test_sequential_srm_validates_like_the_chi_square() -> None:
    with pytest.raises(ValueError, match="shares must sum to 1"):
        sequential_sample_ratio_mismatch([10, 20], [0.5, 0.6])
    with pytest.raises(ValueError, match="concentration must be positive"):
        sequential_sample_ratio_mismatch([10, 20], [0.5, 0.5], concentration=0)
