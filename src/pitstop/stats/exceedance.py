"""Always-valid inference on how often values exceed a threshold: a quantile against a limit.

The latency guardrail asks whether the challenger's p99 is above a limit. Its p99 is above the limit
exactly when more than 1 % of its calls are slower than the limit, so the question is one of a
binomial share: do the calls above the limit exceed the share p0 = 0.01? Checked at every look, the
test must hold under continuous monitoring. Mixing the likelihood ratio (q / p0)^k ((1 - q) / (1 -
p0))^(n - k) over q with a Beta prior restricted to q > p0 gives a Bayes factor that is a
supermartingale whenever the true share is at most p0 (each factor has expectation at most one
there), so by Ville's inequality it reaches 1 / alpha with probability at most alpha, however often
it is looked at: the one-sided beta-binomial mixture (Robbins 1970; the two-sided form is the
`failures` and `srm` test of Lindon & Malek 2022). The mirror mixture, over q < p0, bounds how few
values can be at or above a quantile at every sample size at once, so an order statistic bounds
the quantile from above at every look (Howard & Ramdas 2022, "Sequential estimation of quantiles
with applications to A/B-testing and best-arm identification", Bernoulli 28(3), use the same
reduction of a quantile to a binomial share).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy.special import betainc, betaincc, betaln

from pitstop.stats import _checks as check
from pitstop.stats.results import TestResult

DEFAULT_CONCENTRATION = 10.0  # Beta(10 p0, 10 (1 - p0)): wide, so large departures are found soonest


def log_bayes_factor(
    exceeding: npt.ArrayLike, trials: int, share: float, *, above: bool, concentration: float
) -> npt.NDArray[np.float64]:
    """log BF of a share above `share` (`above`) or below it, for each count of `exceeding` of `trials`.

    BF = B(a + k, b + n - k) P(q on that side | a + k, b + n - k) / (B(a, b) P(q on that side | a, b))
    / (p0^k (1 - p0)^(n - k)), a = c p0, b = c (1 - p0): the Beta(a, b) mixture restricted to one side
    of p0, over the binomial likelihood at p0.

    >>> [round(float(v), 4) for v in log_bayes_factor([0, 10, 40], 1000, 0.01, above=True, concentration=10)]
    [-3.2431, -1.8558, 23.9892]
    """
    k = np.asarray(exceeding, dtype=float)
    n, p0 = float(trials), share
    a, b = concentration * p0, concentration * (1 - p0)
    side = betaincc if above else betainc  # the Beta distribution's mass above / below p0
    with np.errstate(divide="ignore"):  # a side with no mass left is log 0: no evidence that way
        posterior, prior = np.log(side(a + k, b + n - k, p0)), math.log(side(a, b, p0))
    mixture = betaln(a + k, b + n - k) - betaln(a, b) + posterior - prior
    result: npt.NDArray[np.float64] = mixture - k * math.log(p0) - (n - k) * math.log1p(-p0)
    return result


def exceedance_test(
    exceeding: int,
    trials: int,
    *,
    share: float = 0.01,
    alpha: float = 0.01,
    concentration: float = DEFAULT_CONCENTRATION,
) -> TestResult:
    """Always-valid one-look test that more than `share` of the values exceed a threshold.

    `exceeding` of `trials` values exceeded it; `p_value` = min(1, 1 / BF) with BF the one-sided
    beta-binomial mixture over shares above `share` (`log_bayes_factor`), valid at every look at once
    while the true share is at most `share`; `statistic` = log BF, `estimate` = exceeding / trials.
    With share 0.01 this tests "the 99th percentile is above the threshold". The one-sided mixture
    of Robbins (1970), "Statistical methods related to the law of the iterated logarithm", Ann. Math.
    Stat. 41(5); Ville's inequality (Ville 1939) makes it valid at every look.

    >>> exceedance_test(40, 1000).p_value < 0.01  # 4 % of calls above: the p99 is above the limit
    True
    >>> exceedance_test(15, 1000).p_value  # 1.5 %: not evidence enough
    1.0
    """
    n = check.whole("trials", trials, minimum=1)
    k = check.whole("exceeding", exceeding, minimum=0)
    if k > n:
        raise ValueError(f"exceeding must not exceed trials, got {k} of {n}")
    p0 = _share(share)
    alpha = check.alpha_level(alpha)
    c = check.positive("concentration", concentration)
    log_bf = float(log_bayes_factor(k, n, p0, above=True, concentration=c))
    return TestResult(
        method="exceedance_msprt",
        statistic=log_bf,
        p_value=1.0 if log_bf <= 0 else math.exp(-log_bf),
        estimate=k / n,
        ci_low=math.nan,
        ci_high=math.nan,
        n=n,
        alpha=alpha,
        details={"share": p0, "concentration": c},
    )


def quantile_upper_rank(
    trials: int, *, share: float = 0.01, alpha: float = 0.01, concentration: float = DEFAULT_CONCENTRATION
) -> int:
    """d such that the d-th largest of `trials` values is at or above their (1 - share) quantile, at
    every number of trials at once with probability at least 1 - alpha (0: no bound yet).

    At least d of n values lie at or above the quantile while the count there, at least
    Binomial(n, share), keeps the lower-side mixture (`log_bayes_factor`, `above=False`) below
    1 / alpha; d is the smallest count that does. That mixture is a supermartingale while the true
    share at or above the quantile is at least `share`, so the bound fails at some look with
    probability at most alpha. The reduction of a quantile to a binomial count is the order-statistic
    bound (Hahn & Meeker 1991, 5.2) made time-uniform, as in Howard & Ramdas (2022), Bernoulli 28(3).

    >>> quantile_upper_rank(100), quantile_upper_rank(2000), quantile_upper_rank(100_000)
    (0, 6, 867)
    """
    n = check.whole("trials", trials, minimum=0)
    p0 = _share(share)
    alpha = check.alpha_level(alpha)
    c = check.positive("concentration", concentration)
    threshold = math.log(1 / alpha)
    # the lower-side BF falls as the count rises, and is at most 1 from n p0 on: bisect for the first
    # count below the threshold (looked up at every look, so a few evaluations, not one per count)
    low, high = 0, math.ceil(n * p0)
    while low < high:
        middle = (low + high) // 2
        if log_bayes_factor(middle, n, p0, above=False, concentration=c) < threshold:
            high = middle
        else:
            low = middle + 1
    return low


def _share(share: float) -> float:
    if not 0 < share < 1:
        raise ValueError(f"share must be between 0 and 1, got {share}")
    return float(share)
