"""Sample-ratio mismatch: were units split between the arms in the shares the router was told to use?

A mismatch (users lost by one arm's logging, bots, a broken hash) biases any comparison, so it
invalidates the experiment whatever the other numbers say. Fabijan et al. (2019), "Diagnosing Sample
Ratio Mismatch in Online Controlled Experiments", KDD.

Two tests. `sample_ratio_mismatch` is Pearson's chi-square, valid when looked at once.
`sequential_sample_ratio_mismatch` is the Dirichlet-multinomial mixture SPRT of Lindon & Malek (2022),
valid when looked at after every batch for the whole test: the controller uses it, because a
chi-square at p < 0.001 re-tested at every look ends 1-4 % of sound experiments as "invalid".
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats
from scipy.special import gammaln

from pitstop.stats import _checks as check
from pitstop.stats._checks import FloatArray
from pitstop.stats.results import SRMResult

DEFAULT_THRESHOLD = 0.001
DEFAULT_CONCENTRATION = 100.0  # Lindon & Malek's prior: Dirichlet(100 x expected shares)


def sample_ratio_mismatch(
    counts: Sequence[int], shares: Sequence[float], *, threshold: float = DEFAULT_THRESHOLD
) -> SRMResult:
    """Chi-square goodness of fit of units per arm against the expected shares; mismatch when p < threshold.

    chi2 = sum_k (o_k - e_k)^2 / e_k with e_k = N p_k, df = arms - 1 (Pearson 1900; scipy
    `chisquare(counts, N * shares)`). The threshold is strict (default 0.001) because the check runs on
    every look and a false alarm stops a sound experiment.

    >>> result = sample_ratio_mismatch([50_000, 50_500], [0.5, 0.5])
    >>> round(result.statistic, 4), round(result.p_value, 4), result.mismatch
    (2.4876, 0.1147, False)
    >>> sample_ratio_mismatch([9_000, 1_300], [0.9, 0.1]).mismatch
    True
    """
    observed, expected_shares, total = _counts_and_shares(counts, shares)
    threshold = check.open_unit("threshold", threshold)
    expected = total * expected_shares
    statistic = float(np.sum((observed - expected) ** 2 / expected))
    p_value = float(stats.chi2.sf(statistic, observed.size - 1))
    return _result("chi_square", statistic, p_value, observed, expected_shares, threshold)


def sequential_sample_ratio_mismatch(
    counts: Sequence[int],
    shares: Sequence[float],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    concentration: float = DEFAULT_CONCENTRATION,
) -> SRMResult:
    """Always-valid test of units per arm against the expected shares; mismatch when 1 / BF < threshold.

    The Bayes factor of a Dirichlet(a) prior on the arms' shares, a = concentration x shares, against
    the expected shares p, for counts x_k of n units (Lindon & Malek 2022, "Anytime-valid inference
    for multinomial count data", NeurIPS, section 3):

        BF = Gamma(A) / Gamma(A + n) * prod_k Gamma(a_k + x_k) / Gamma(a_k) / prod_k p_k^x_k,  A = sum a_k.

    Under the expected shares BF is a non-negative martingale with mean 1 as units arrive, so by
    Ville's inequality P(BF ever >= 1 / threshold) <= threshold: the check may run after every batch
    for the whole test and ends a sound experiment as "invalid" with probability at most `threshold`.
    `statistic` is log BF, `p_value` this look's always-valid p-value min(1, 1 / BF).

    >>> result = sequential_sample_ratio_mismatch([50_000, 50_500], [0.5, 0.5])
    >>> round(result.statistic, 3), result.mismatch
    (-2.217, False)
    >>> sequential_sample_ratio_mismatch([9_000, 1_300], [0.9, 0.1]).mismatch
    True
    """
    observed, expected_shares, total = _counts_and_shares(counts, shares)
    threshold = check.open_unit("threshold", threshold)
    prior = check.positive("concentration", concentration) * expected_shares
    log_bf = float(
        gammaln(prior.sum())
        - gammaln(prior.sum() + total)
        + np.sum(gammaln(prior + observed) - gammaln(prior))
        - np.sum(observed * np.log(expected_shares))
    )
    p_value = 1.0 if log_bf <= 0 else math.exp(-log_bf)
    return _result("dirichlet_multinomial_msprt", log_bf, p_value, observed, expected_shares, threshold)


def _result(
    method: str,
    statistic: float,
    p_value: float,
    observed: FloatArray,
    expected_shares: FloatArray,
    threshold: float,
) -> SRMResult:
    total = float(observed.sum())
    return SRMResult(
        method=method,
        statistic=statistic,
        p_value=p_value,
        df=observed.size - 1,
        n=round(total),
        observed=tuple(round(c) for c in observed),
        expected_shares=tuple(float(s) for s in expected_shares),
        observed_shares=tuple(float(c / total) for c in observed),
        threshold=threshold,
        mismatch=p_value < threshold,
    )


def _counts_and_shares(
    counts: Sequence[int], shares: Sequence[float]
) -> tuple[FloatArray, FloatArray, float]:
    observed = check.counts("counts", counts, min_size=2)
    expected_shares = check.sample("shares", shares, min_size=2)
    check.same_length("counts", observed, "shares", expected_shares)
    for share in expected_shares:
        check.open_unit("each share", share)
    if abs(expected_shares.sum() - 1) > 1e-9:
        raise ValueError(f"shares must sum to 1, got {expected_shares.sum()}")
    total = float(observed.sum())
    if total == 0:
        raise ValueError("counts are all zero: no units to check")
    return observed, expected_shares, total
