"""Relative effect of the challenger, challenger mean / champion mean - 1, with a delta-method interval.

Negative means the challenger errs less: -0.03 is a 3 % lower error. A decision can then require
practical significance (a whole interval beyond a margin), not just a p-value.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import stats

from pitstop.stats import _checks as check
from pitstop.stats.arms import ArmEstimate
from pitstop.stats.results import TestResult
from pitstop.stats.twosample import satterthwaite


def relative_components(champion: ArmEstimate, challenger: ArmEstimate) -> tuple[float, float, float]:
    """(relative effect r, its delta-method standard error, Welch-Satterthwaite df) of independent arms.

    r = m_b / m_a - 1,   Var(r) ~= v_b / m_a^2 + m_b^2 v_a / m_a^4
    (first-order Taylor expansion of the ratio of independent means; Deng, Knoblich & Lu 2018, KDD,
    section 3.2 "percent change"; Kohavi, Tang & Xu 2020, "Trustworthy Online Controlled Experiments",
    ch. 18). The df combine the two variance terms as Welch does.

    >>> from pitstop.stats.arms import arm_from_summary
    >>> r, se, df = relative_components(arm_from_summary(100, 10.0, 4.0), arm_from_summary(100, 9.0, 4.0))
    >>> round(r, 4), round(se, 5), round(df, 1)
    (-0.1, 0.02691, 195.8)
    """
    check.same_method(champion, challenger)
    if champion.mean <= 0:
        raise ValueError(
            f"the champion's mean error must be positive for a relative effect, got {champion.mean}"
        )
    term_b = challenger.variance / champion.mean**2
    term_a = challenger.mean**2 * champion.variance / champion.mean**4
    check.some_variance(term_a + term_b)
    df = satterthwaite((term_a, champion.df), (term_b, challenger.df))
    return challenger.mean / champion.mean - 1, math.sqrt(term_a + term_b), df


def relative_effect(
    champion: ArmEstimate, challenger: ArmEstimate, *, null: float = 0.0, alpha: float = 0.05
) -> TestResult:
    """Relative effect of independent arms with a delta-method confidence interval and a test of `null`.

    t = (r - null) / se(r) against Student's t with Welch-Satterthwaite df, CI r +- t_{1-alpha/2, df}
    se(r), Var(r) ~= v_b / m_a^2 + m_b^2 v_a / m_a^4 (`relative_components`; Deng, Knoblich & Lu 2018,
    KDD, section 3.2). `null = -0.01` tests "exactly 1 % better". The A/B rule (`ab_verdict`) tests its
    margin with Fieller's form instead, which keeps its size in small samples.

    >>> from pitstop.stats.arms import arm_from_summary
    >>> result = relative_effect(arm_from_summary(100, 10.0, 4.0), arm_from_summary(100, 9.0, 4.0))
    >>> round(result.estimate, 3), round(result.ci_low, 3), round(result.ci_high, 3)
    (-0.1, -0.153, -0.047)
    """
    alpha = check.alpha_level(alpha)
    check.finite("null", null)
    estimate, se, df = relative_components(champion, challenger)
    return _result(
        f"{champion.method}_relative",
        estimate,
        se,
        df,
        null,
        alpha,
        champion.n + challenger.n,
        {
            "mean_champion": champion.mean,
            "mean_challenger": challenger.mean,
            "se": se,
            "null": null,
            "n_champion": champion.n,
            "n_challenger": challenger.n,
        },
    )


def paired_relative_effect(
    champion_errors: npt.ArrayLike,
    challenger_errors: npt.ArrayLike,
    *,
    null: float = 0.0,
    alpha: float = 0.05,
) -> TestResult:
    """Relative effect of two models scored on the same requests (shadow), delta method with covariance.

    R = sum(b) / sum(a),  Var(R) ~= sum_i (b_i - R a_i)^2 / (n (n - 1) abar^2),  r = R - 1, df = n - 1:
    the ratio-estimator variance (Cochran 1977, "Sampling Techniques", 3rd ed., section 6.4), which keeps
    the covariance of the paired errors (the term the independent-arm formula would drop). The shadow
    rule "challenger error <= 1.05 x champion's" holds with confidence when `ci_high < 0.05`.

    >>> result = paired_relative_effect([1.0, 2.0, 3.0, 4.0], [1.1, 1.9, 2.7, 3.7])
    >>> round(result.estimate, 3), round(result.ci_low, 3), round(result.ci_high, 3)
    (-0.06, -0.137, 0.017)
    """
    alpha = check.alpha_level(alpha)
    check.finite("null", null)
    a = check.sample("champion_errors", champion_errors, min_size=2)
    b = check.sample("challenger_errors", challenger_errors, min_size=2)
    check.same_length("champion_errors", a, "challenger_errors", b)
    if a.sum() <= 0:
        raise ValueError("the champion's mean error must be positive for a relative effect")
    ratio = float(b.sum() / a.sum())
    variance = float(np.sum((b - ratio * a) ** 2)) / (a.size * (a.size - 1) * float(a.mean()) ** 2)
    if variance == 0:
        raise ValueError("the challenger's errors are an exact multiple of the champion's: zero variance")
    se = math.sqrt(variance)
    return _result(
        "paired_relative",
        ratio - 1,
        se,
        float(a.size - 1),
        null,
        alpha,
        a.size,
        {"mean_champion": float(a.mean()), "mean_challenger": float(b.mean()), "se": se, "null": null},
    )


def _result(
    method: str,
    estimate: float,
    se: float,
    df: float,
    null: float,
    alpha: float,
    n: int,
    details: dict[str, float],
) -> TestResult:
    statistic = (estimate - null) / se
    half_width = float(stats.t.ppf(1 - alpha / 2, df)) * se
    return TestResult(
        method=method,
        statistic=statistic,
        p_value=float(2 * stats.t.sf(abs(statistic), df)),
        estimate=estimate,
        ci_low=estimate - half_width,
        ci_high=estimate + half_width,
        n=n,
        alpha=alpha,
        df=df,
        details=details,
    )
