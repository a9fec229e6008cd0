"""Always-valid comparison of two failure rates: does the challenger fail more often than the champion?

Checked at every look of a rollout, so it must be valid under continuous monitoring. Conditional on
the failures seen, a failure under equal rates lands on the challenger with probability
pi_0 = n_b / (n_a + n_b) (its share of the requests), whatever the common rate is: the rate itself
is a nuisance the test never estimates. Mixing the alternative over a Beta prior centred on pi_0
gives a Bayes factor that is a martingale under equal rates (the beta-binomial case of the
Dirichlet-multinomial test of Lindon & Malek 2022, as in `srm`), so Ville's inequality bounds the
chance it ever reaches 1 / alpha by alpha, however often it is looked at.
"""

from __future__ import annotations

import math

from scipy.special import betaln

from pitstop.stats import _checks as check
from pitstop.stats.results import TestResult

DEFAULT_CONCENTRATION = 10.0  # Beta(10 pi_0, 10 (1 - pi_0)): wide, so large harms are found soonest


def failure_rate_test(
    champion_failures: int,
    champion_requests: int,
    challenger_failures: int,
    challenger_requests: int,
    *,
    alpha: float = 0.01,
    concentration: float = DEFAULT_CONCENTRATION,
) -> TestResult:
    """Always-valid one-look test of equal failure rates; harm when `p_value < alpha` and `estimate > 0`.

    With x_a, x_b failures of n_a, n_b requests, pi_0 = n_b / (n_a + n_b) and a Beta(c pi_0, c (1 - pi_0))
    prior on the share of failures that are the challenger's,

        BF = B(c pi_0 + x_b, c (1 - pi_0) + x_a) / B(c pi_0, c (1 - pi_0)) / (pi_0^x_b (1 - pi_0)^x_a),

    the beta-binomial Bayes factor of Lindon & Malek (2022), "Anytime-valid inference for multinomial
    count data", NeurIPS. `p_value` = min(1, 1 / BF) (two-sided: either arm failing more moves it),
    `statistic` = log BF, `estimate` = challenger rate - champion rate. Only a positive estimate is
    harm; a challenger that fails less is never a breach.

    >>> look = failure_rate_test(45, 9_000, 25, 1_000)
    >>> round(look.estimate, 4), look.p_value < 0.01
    (0.02, True)
    >>> failure_rate_test(45, 9_000, 6, 1_000).p_value
    1.0
    """
    n_a = check.whole("champion_requests", champion_requests, minimum=1)
    n_b = check.whole("challenger_requests", challenger_requests, minimum=1)
    x_a = check.whole("champion_failures", champion_failures, minimum=0)
    x_b = check.whole("challenger_failures", challenger_failures, minimum=0)
    if x_a > n_a or x_b > n_b:
        raise ValueError("failures must not exceed requests")
    alpha = check.alpha_level(alpha)
    c = check.positive("concentration", concentration)
    share = n_b / (n_a + n_b)
    a, b = c * share, c * (1 - share)
    log_bf = betaln(a + x_b, b + x_a) - betaln(a, b) - x_b * math.log(share) - x_a * math.log1p(-share)
    p_value = 1.0 if log_bf <= 0 else math.exp(-log_bf)
    return TestResult(
        method="failure_rate_msprt",
        statistic=float(log_bf),
        p_value=p_value,
        estimate=x_b / n_b - x_a / n_a,
        ci_low=math.nan,
        ci_high=math.nan,
        n=n_a + n_b,
        alpha=alpha,
        details={
            "champion_rate": x_a / n_a,
            "challenger_rate": x_b / n_b,
            "challenger_share": share,
            "concentration": c,
        },
    )
