"""Two-sample comparison of the arms' mean per-request error: per-user (default), Welch, Mann-Whitney U.

Every result is challenger minus champion: a negative estimate means the challenger errs less.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from scipy import stats

from pitstop.stats import _checks as check
from pitstop.stats.arms import PER_USER, WELCH, ArmEstimate, arm_from_errors, arm_from_users
from pitstop.stats.results import TestResult

MANN_WHITNEY = "mann_whitney"
METHODS = (PER_USER, WELCH, MANN_WHITNEY)


class UserErrors(NamedTuple):
    """One arm's data per user: each user's summed error and number of requests."""

    sums: npt.ArrayLike
    counts: npt.ArrayLike


def welch_df(champion: ArmEstimate, challenger: ArmEstimate) -> float:
    """Welch-Satterthwaite degrees of freedom of `Var(champion) + Var(challenger)`.

    df = (v_a + v_b)^2 / (v_a^2 / (n_a - 1) + v_b^2 / (n_b - 1)), v = squared standard errors
    (Welch 1947, Biometrika 34; Satterthwaite 1946).

    >>> from pitstop.stats.arms import arm_from_summary
    >>> round(welch_df(arm_from_summary(10, 0.0, 1.0), arm_from_summary(10, 0.0, 1.0)), 6)
    18.0
    """
    return satterthwaite((champion.variance, champion.df), (challenger.variance, challenger.df))


def satterthwaite(*components: tuple[float, float]) -> float:
    """Satterthwaite (1946) df of a sum of independent variance estimates given as (variance, df) pairs.

    >>> round(satterthwaite((1.0, 9.0), (1.0, 9.0)), 6)
    18.0
    """
    total = sum(variance for variance, _ in components)
    denominator = sum(variance**2 / df for variance, df in components)
    return math.inf if denominator == 0 else total**2 / denominator


def mean_difference(champion: ArmEstimate, challenger: ArmEstimate, *, alpha: float = 0.05) -> TestResult:
    """Welch-type test of the difference of mean errors, challenger - champion, from two arm estimates.

    t = (m_b - m_a) / sqrt(v_a + v_b) against Student's t with Welch-Satterthwaite df; the confidence
    interval is (m_b - m_a) +- t_{1-alpha/2, df} sqrt(v_a + v_b). With per-user estimates
    (`arm_from_users`) this is the per-user delta-method test (Deng et al. 2018); with request-level
    ones (`arm_from_errors`) it is exactly Welch's t-test (Welch 1947).

    >>> from pitstop.stats.arms import arm_from_summary
    >>> result = mean_difference(arm_from_summary(100, 10.0, 4.0), arm_from_summary(100, 9.5, 4.0))
    >>> result.method, round(result.statistic, 4), round(result.p_value, 4), round(result.df, 1)
    ('welch', -1.7678, 0.0786, 198.0)
    """
    alpha = check.alpha_level(alpha)
    check.same_method(champion, challenger)
    variance = check.some_variance(champion.variance + challenger.variance)
    se = math.sqrt(variance)
    df = welch_df(champion, challenger)
    difference = challenger.mean - champion.mean
    statistic = difference / se
    half_width = float(stats.t.ppf(1 - alpha / 2, df)) * se
    return TestResult(
        method=champion.method,
        statistic=statistic,
        p_value=float(2 * stats.t.sf(abs(statistic), df)),
        estimate=difference,
        ci_low=difference - half_width,
        ci_high=difference + half_width,
        n=champion.n + challenger.n,
        alpha=alpha,
        df=df,
        details=_arm_details(champion, challenger) | {"se": se},
    )


def _arm_details(champion: ArmEstimate, challenger: ArmEstimate) -> dict[str, float]:
    return {
        "mean_champion": champion.mean,
        "mean_challenger": challenger.mean,
        "n_champion": champion.n,
        "n_challenger": challenger.n,
        "requests_champion": champion.requests,
        "requests_challenger": challenger.requests,
    }


def per_user_test(
    champion_sums: npt.ArrayLike,
    champion_counts: npt.ArrayLike,
    challenger_sums: npt.ArrayLike,
    challenger_counts: npt.ArrayLike,
    *,
    alpha: float = 0.05,
) -> TestResult:
    """Per-user comparison of the mean per-request error (the default A/B method).

    Each arm's mean is the ratio R = sum(S_i) / sum(N_i) over its users with delta-method variance
    v = sum_i (S_i - R N_i)^2 / (K (K - 1) Nbar^2) (Deng, Knoblich & Lu 2018, KDD); the difference is
    tested Welch-style, t = (R_b - R_a) / sqrt(v_a + v_b) (`mean_difference`). Users are the randomised
    unit, so they are the unit of analysis: a request-level test would treat one heavy user's correlated
    errors as independent evidence.

    >>> result = per_user_test([3.0, 1.0, 4.0, 2.0], [2, 1, 3, 2], [1.0, 2.0, 1.0, 2.0], [2, 2, 1, 3])
    >>> result.method, round(result.estimate, 4), round(result.p_value, 4), result.n
    ('per_user', -0.5, 0.0212, 8)
    """
    champion = arm_from_users(champion_sums, champion_counts)
    challenger = arm_from_users(challenger_sums, challenger_counts)
    return mean_difference(champion, challenger, alpha=alpha)


def welch_test(
    champion_errors: npt.ArrayLike, challenger_errors: npt.ArrayLike, *, alpha: float = 0.05
) -> TestResult:
    """Request-level Welch t-test of the mean error (unequal variances), challenger - champion.

    t = (mean_b - mean_a) / sqrt(s_a^2/n_a + s_b^2/n_b), Welch-Satterthwaite df (Welch 1947). Valid when
    requests are independent; with several requests per user prefer `per_user_test`.
    Example: R's `t.test(extra ~ group, data = sleep)` gives t = -1.8608, df = 17.776, p = 0.07939.

    >>> group1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
    >>> group2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]
    >>> result = welch_test(group2, group1)
    >>> round(result.statistic, 4), round(result.df, 3), round(result.p_value, 5)
    (-1.8608, 17.776, 0.07939)
    """
    return mean_difference(
        arm_from_errors(_named("champion_errors", champion_errors)),
        arm_from_errors(_named("challenger_errors", challenger_errors)),
        alpha=alpha,
    )


def _named(name: str, values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    return check.sample(name, values, min_size=2)


def mann_whitney_test(
    champion_errors: npt.ArrayLike, challenger_errors: npt.ArrayLike, *, alpha: float = 0.05
) -> TestResult:
    """Request-level Mann-Whitney U (Wilcoxon rank-sum) test, challenger against champion.

    `statistic` is U = #{(a, b): b > a} + #{b == a} / 2 over champion errors a and challenger errors b;
    the p-value is scipy's normal approximation with tie and continuity correction (method pinned to
    `asymptotic`: A/B samples are large, and the result must not switch methods with the sample size;
    R: `wilcox.test(b, a, exact = FALSE, correct = TRUE)`). `estimate` is the probability of superiority
    theta = U / (n_a n_b) = P(b > a) + P(b = a) / 2 (0.5: no difference; below 0.5: the challenger errs
    less), with a DeLong confidence interval from the placement values (DeLong, DeLong & Clarke-Pearson
    1988, Biometrics 44; the same variance as Brunner & Munzel 2000). Mann & Whitney (1947), Ann. Math. Stat.

    Example: R's `wilcox.test(x, y)` on its help page data gives W = 35.

    >>> x = [0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46]
    >>> y = [1.15, 0.88, 0.90, 0.74, 1.21]
    >>> result = mann_whitney_test(y, x)
    >>> result.statistic, round(result.estimate, 2), round(result.p_value, 4)
    (35.0, 0.7, 0.2446)
    """
    alpha = check.alpha_level(alpha)
    champion = _named("champion_errors", champion_errors)
    challenger = _named("challenger_errors", challenger_errors)
    pooled = np.concatenate([champion, challenger])
    if np.all(pooled == pooled[0]):
        raise ValueError("every error in both arms is the same: there is nothing to rank")
    test = stats.mannwhitneyu(
        challenger, champion, alternative="two-sided", use_continuity=True, method="asymptotic"
    )
    n_a, n_b = champion.size, challenger.size
    ranks = stats.rankdata(pooled)
    # Placement of each value among the other arm: its pooled midrank minus its midrank within its own arm.
    place_a = (ranks[:n_a] - stats.rankdata(champion)) / n_b  # share of challenger errors below each a
    place_b = (ranks[n_a:] - stats.rankdata(challenger)) / n_a  # share of champion errors below each b
    theta = float(place_b.mean())
    se = math.sqrt(float(place_b.var(ddof=1)) / n_b + float(place_a.var(ddof=1)) / n_a)
    half_width = float(stats.norm.ppf(1 - alpha / 2)) * se
    return TestResult(
        method=MANN_WHITNEY,
        statistic=float(test.statistic),
        p_value=float(test.pvalue),
        estimate=theta,
        ci_low=max(0.0, theta - half_width),
        ci_high=min(1.0, theta + half_width),
        n=n_a + n_b,
        alpha=alpha,
        details={
            "mean_champion": float(champion.mean()),
            "mean_challenger": float(challenger.mean()),
            "n_champion": n_a,
            "n_challenger": n_b,
            "se": se,
        },
    )


def compare_arms(
    method: str,
    champion: UserErrors | npt.ArrayLike,
    challenger: UserErrors | npt.ArrayLike,
    *,
    alpha: float = 0.05,
) -> TestResult:
    """Compare the arms with the policy's method: `per_user` (default), `welch` or `mann_whitney`.

    `per_user` takes `UserErrors(sums, counts)` per arm (a plain array counts as one request per user);
    `welch` and `mann_whitney` take per-request errors (or `UserErrors` whose counts are all 1).
    Formulas and sources are each method's: `per_user_test` t = (R_b - R_a) / sqrt(v_a + v_b) with
    delta-method v (Deng, Knoblich & Lu 2018); `welch_test` t = (xbar_b - xbar_a) / sqrt(s_a^2/n_a +
    s_b^2/n_b) (Welch 1947); `mann_whitney_test` U = #{b > a} + #{b = a} / 2 (Mann & Whitney 1947).

    >>> result = compare_arms("welch", [1.0, 2.0, 3.0, 4.0], [0.5, 1.5, 2.0, 3.0])
    >>> result.method, round(result.estimate, 3)
    ('welch', -0.75)
    """
    if method == PER_USER:
        a, b = _users("champion", champion), _users("challenger", challenger)
        return per_user_test(a.sums, a.counts, b.sums, b.counts, alpha=alpha)
    if method == WELCH:
        return welch_test(_requests("champion", champion), _requests("challenger", challenger), alpha=alpha)
    if method == MANN_WHITNEY:
        return mann_whitney_test(
            _requests("champion", champion), _requests("challenger", challenger), alpha=alpha
        )
    raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")


def _users(arm: str, data: UserErrors | npt.ArrayLike) -> UserErrors:
    if isinstance(data, UserErrors):
        return data
    errors = check.sample(f"{arm} errors", data, min_size=2)
    return UserErrors(errors, np.ones_like(errors))


def _requests(arm: str, data: UserErrors | npt.ArrayLike) -> npt.ArrayLike:
    if not isinstance(data, UserErrors):
        return data
    counts = check.counts(f"{arm} counts", data.counts, minimum=1)
    if np.any(counts != 1):
        raise ValueError(f"{arm}: a request-level method needs per-request errors, not per-user sums")
    return data.sums
