"""Sample-ratio mismatch: were units split between the arms in the shares the router was told to use?

A mismatch (users lost by one arm's logging, bots, a broken hash) biases any comparison, so it
invalidates the experiment whatever the other numbers say. Fabijan et al. (2019), "Diagnosing Sample
Ratio Mismatch in Online Controlled Experiments", KDD.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

from pitstop.stats import _checks as check
from pitstop.stats.results import SRMResult

DEFAULT_THRESHOLD = 0.001


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
    observed = check.counts("counts", counts, min_size=2)
    expected_shares = check.sample("shares", shares, min_size=2)
    check.same_length("counts", observed, "shares", expected_shares)
    for share in expected_shares:
        check.open_unit("each share", share)
    if abs(expected_shares.sum() - 1) > 1e-9:
        raise ValueError(f"shares must sum to 1, got {expected_shares.sum()}")
    threshold = check.open_unit("threshold", threshold)
    total = float(observed.sum())
    if total == 0:
        raise ValueError("counts are all zero: no units to check")
    expected = total * expected_shares
    statistic = float(np.sum((observed - expected) ** 2 / expected))
    p_value = float(stats.chi2.sf(statistic, observed.size - 1))
    return SRMResult(
        method="chi_square",
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
