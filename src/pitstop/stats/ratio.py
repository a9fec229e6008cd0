"""The shadow's paired error ratio: per-user (clustered) delta-method variance and an always-valid bound.

Both models predict the same requests. With A_i and B_i user i's summed champion and challenger error
(i = 1..K users, independent; a user's requests are not), the error ratio is the ratio estimator

    r = sum_i B_i / sum_i A_i,

and its delta-method variance over users (Deng, Knoblich & Lu 2018, "Applying the Delta Method in
Metric Analytics", KDD, section 3.3; the cluster-robust variance with the G/(G-1) factor)

    Var(r) ~= sum_i (B_i - r A_i)^2 / (K (K - 1) Abar^2),        Abar = sum_i A_i / K,

with sum_i (B_i - r A_i)^2 = sum(B^2) - 2 r sum(A B) + r^2 sum(A^2), so five sums over users (one
`GROUP BY user_id` in SQL, then sums of the per-user sums) are all a look needs. On the log scale,
Var(log r) ~= Var(r) / r^2. The bound is the normal-mixture confidence sequence on log r (Howard,
Ramdas, McAuliffe & Sekhon 2021, Ann. Statist. 49(2); `pitstop.stats.sequential`): valid at every look
at once, so the controller may look as often as it likes.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm

from pitstop.stats import _checks as check
from pitstop.stats.results import TestResult
from pitstop.stats.sequential import _half_width


def log_ratio_variance(
    users: int,
    champion_sum: float,
    challenger_sum: float,
    champion_sq: float,
    challenger_sq: float,
    cross: float,
) -> float:
    """Var(log r) of r = sum B / sum A by the delta method over K users, from five sums over users.

    Var(log r) = sum_i (B_i - r A_i)^2 / (K (K - 1) Abar^2 r^2), the sum expanded as sum(B^2) -
    2 r sum(A B) + r^2 sum(A^2) (Deng, Knoblich & Lu 2018, "Applying the Delta Method in Metric
    Analytics", KDD, section 3.3).

    >>> round(log_ratio_variance(3, 6.0, 6.6, 14.0, 16.94, 15.4), 6)
    0.0
    >>> round(log_ratio_variance(3, 6.0, 6.0, 14.0, 12.0, 12.5), 6)
    0.041667
    """
    k = check.whole("users", users, minimum=2)
    a = check.positive("champion_sum", champion_sum)
    r = check.positive("challenger_sum", challenger_sum) / a
    parts = (
        check.finite("challenger_sq", challenger_sq),
        2 * r * check.finite("cross", cross),
        r**2 * check.finite("champion_sq", champion_sq),
    )
    residual_ss = parts[0] - parts[1] + parts[2]
    if residual_ss < -1e-9 * max(abs(part) for part in parts):
        raise ValueError("the sums are inconsistent: sum(B^2) - 2 r sum(A B) + r^2 sum(A^2) is negative")
    mean_a = a / k
    return max(residual_ss, 0.0) / (k * (k - 1) * mean_a**2) / r**2


def paired_ratio_sequence(
    users: int,
    champion_sum: float,
    challenger_sum: float,
    champion_sq: float,
    challenger_sq: float,
    cross: float,
    *,
    tau: float,
    alpha: float = 0.05,
    margin: float = 1.0,
) -> TestResult:
    """One look of the always-valid test of the challenger/champion error ratio against `margin`.

    estimate = log r; [ci_low, ci_high] = log r -+ sqrt(V (V + tau^2) / tau^2 (2 log(1/alpha) +
    log((V + tau^2) / V))), V = `log_ratio_variance`: a 1 - alpha confidence sequence for the log
    ratio, valid over all looks (Howard et al. 2021). `tau` is the mixture scale in log-ratio units (the
    size of a log ratio the bound is tightest for). `p_value` is this look's always-valid p-value of
    the null log r = log `margin` (1 / the mixture likelihood ratio; Johari, Pekelis & Walsh 2022),
    `details` hold the ratio and its bounds (exp of the log bounds). Non-inferiority at `margin`:
    `ci_high < log(margin)`; inferiority: `ci_low > log(margin)`. `n` is the number of users.

    >>> look = paired_ratio_sequence(200, 1000.0, 1000.0, 7000.0, 7000.0, 6990.0, tau=0.05, margin=1.05)
    >>> round(look.details["ratio_high"], 4), look.ci_high < math.log(1.05)
    (1.0149, True)
    """
    alpha = check.alpha_level(alpha)
    null = math.log(check.positive("margin", margin))
    variance = log_ratio_variance(users, champion_sum, challenger_sum, champion_sq, challenger_sq, cross)
    estimate = math.log(challenger_sum / champion_sum)
    tau2 = check.positive("tau", tau) ** 2
    if variance == 0:  # every user's challenger errors are r x its champion's (e.g. equal predictions):
        half = 0.0  # the ratio is measured exactly, and the bound is the ratio itself
        log_lr = 0.0 if estimate == null else 700.0  # p ~ 1e-304: certain, and finite for JSON
    else:
        half = float(_half_width(np.array([variance]), tau2, alpha)[0])
        log_lr = 0.5 * math.log(variance / (variance + tau2)) + tau2 * (estimate - null) ** 2 / (
            2 * variance * (variance + tau2)
        )
    p_value = min(1.0, math.exp(-log_lr)) if log_lr > -700 else 1.0
    return _log_ratio_result(
        "paired_ratio_sequence", log_lr, p_value, estimate, half, users, alpha, margin, variance, tau=tau
    )


def paired_ratio_final(
    users: int,
    champion_sum: float,
    challenger_sum: float,
    champion_sq: float,
    challenger_sq: float,
    cross: float,
    *,
    alpha: float = 0.025,
    margin: float = 1.0,
) -> TestResult:
    """The one fixed-sample look at the end of a sequence: log r -+ z(1 - alpha) sqrt(V), each side a
    one-sided 1 - alpha bound (V = `log_ratio_variance`). Valid for a single look only: the shadow
    takes it once, when `max_duration` is reached, with the share of alpha the confidence sequence
    did not spend. `p_value` is the one-sided p-value of log r >= log `margin` (non-inferiority).

    >>> final = paired_ratio_final(200, 1000.0, 1000.0, 7000.0, 7000.0, 6990.0, alpha=0.025, margin=1.05)
    >>> round(final.details["ratio_high"], 4), final.ci_high < math.log(1.05)
    (1.0088, True)
    """
    alpha = check.alpha_level(alpha)
    null = math.log(check.positive("margin", margin))
    variance = log_ratio_variance(users, champion_sum, challenger_sum, champion_sq, challenger_sq, cross)
    estimate = math.log(challenger_sum / champion_sum)
    half = float(norm.ppf(1 - alpha)) * math.sqrt(variance)
    # with no spread the ratio is exact: certainly on one side of the margin, or at it
    z = (estimate - null) / math.sqrt(variance) if variance > 0 else math.copysign(math.inf, estimate - null)
    if variance == 0 and estimate == null:
        z = 0.0
    return _log_ratio_result(
        "paired_ratio_final", z, float(norm.cdf(z)), estimate, half, users, alpha, margin, variance
    )


def _log_ratio_result(
    method: str,
    statistic: float,
    p_value: float,
    estimate: float,
    half: float,
    users: int,
    alpha: float,
    margin: float,
    variance: float,
    **extra: float,
) -> TestResult:
    """A look at the log error ratio: its bounds estimate -+ `half`, and the ratio scale in `details`."""
    return TestResult(
        method=method,
        statistic=statistic,
        p_value=p_value,
        estimate=estimate,
        ci_low=estimate - half,
        ci_high=estimate + half,
        n=users,
        alpha=alpha,
        details={
            "ratio": math.exp(estimate),
            "ratio_low": math.exp(estimate - half),
            "ratio_high": math.exp(estimate + half),
            "margin": margin,
            **extra,
            "variance": variance,
        },
    )
