"""One arm's mean per-request error and the variance of that estimate, from raw data or from SQL aggregates.

Users are randomised, requests are analysed. The errors of one user's requests are correlated, so the
request-level variance `s^2 / n_requests` understates the uncertainty of the mean. The per-user
estimate treats the mean per-request error as a ratio of per-user sums,

    R = sum_i S_i / sum_i N_i        (S_i: user i's summed error, N_i: user i's requests),

and takes its variance from the delta method (users i = 1..K independent):

    Var(R) ~= sum_i (S_i - R N_i)^2 / (K (K - 1) Nbar^2),        Nbar = sum_i N_i / K

Source: Deng, Knoblich & Lu (2018), "Applying the Delta Method in Metric Analytics", KDD, section 3.3;
the same number as the cluster-robust (clustered by user) variance of the mean with the usual G/(G-1)
small-sample factor. When every user has one request it is exactly `s^2 / n`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pitstop.stats import _checks as check

PER_USER = "per_user"
WELCH = "welch"


@dataclass(frozen=True)
class ArmEstimate:
    """An arm's mean per-request error, `variance` = the squared standard error of that mean.

    `n` counts the independent units behind it (users for the per-user estimate, requests otherwise),
    `requests` the requests, `method` the analysis it came from; estimates are only compared with
    estimates of the same method.

    >>> arm = ArmEstimate(mean=2.0, variance=0.01, n=100, requests=250, method="per_user")
    >>> round(arm.se, 3), round(arm.unit_std, 3)
    (0.1, 1.0)
    """

    mean: float
    variance: float
    n: int
    requests: int
    method: str

    def __post_init__(self) -> None:
        check.finite("mean", self.mean)
        check.non_negative("variance", self.variance)
        check.whole("n", self.n, minimum=2)
        check.whole("requests", self.requests, minimum=self.n)

    @property
    def se(self) -> float:
        """Standard error of the mean."""
        return math.sqrt(self.variance)

    @property
    def df(self) -> float:
        """Degrees of freedom of the variance estimate: units - 1."""
        return float(self.n - 1)

    @property
    def unit_std(self) -> float:
        """Standard deviation per unit, `sqrt(variance * n)`: the `baseline_std` for planning in units."""
        return math.sqrt(self.variance * self.n)


def arm_from_errors(errors: npt.ArrayLike) -> ArmEstimate:
    """Request-level estimate from per-request errors: mean and `s^2 / n` (sample variance, ddof 1).

    Var(mean) = s^2 / n, s^2 = sum (x_i - xbar)^2 / (n - 1): the variance of a mean of independent draws
    (Cochran 1977, "Sampling Techniques", 3rd ed., ch. 2). Right when requests are independent, e.g.
    every user sends one request.

    >>> arm = arm_from_errors([1.0, 2.0, 3.0, 4.0])
    >>> arm.mean, round(arm.variance, 4), arm.n
    (2.5, 0.4167, 4)
    """
    values = check.sample("errors", errors, min_size=2)
    return ArmEstimate(
        float(values.mean()), float(values.var(ddof=1)) / values.size, values.size, values.size, WELCH
    )


def arm_from_summary(n: int, mean: float, variance: float) -> ArmEstimate:
    """Request-level estimate from SQL aggregates: request count, mean error, sample variance (ddof 1).

    Var(mean) = s^2 / n, as `arm_from_errors` (Cochran 1977, "Sampling Techniques", 3rd ed., ch. 2).

    >>> round(arm_from_summary(400, 2.0, 4.0).se, 3)
    0.1
    """
    count = check.whole("n", n, minimum=2)
    check.non_negative("variance", variance)
    return ArmEstimate(check.finite("mean", mean), float(variance) / count, count, count, WELCH)


def arm_from_users(error_sums: npt.ArrayLike, request_counts: npt.ArrayLike) -> ArmEstimate:
    """Per-user estimate from each user's summed error and request count (delta method).

    R = sum S_i / sum N_i,  Var(R) ~= sum_i (S_i - R N_i)^2 / (K (K - 1) Nbar^2) over the K users
    (Deng, Knoblich & Lu 2018, "Applying the Delta Method in Metric Analytics", KDD, section 3.3).

    >>> arm = arm_from_users([3.0, 1.0, 4.0], [2, 1, 3])
    >>> round(arm.mean, 4), round(arm.variance, 6), arm.n, arm.requests
    (1.3333, 0.009259, 3, 6)
    """
    sums = check.sample("error_sums", error_sums, min_size=2)
    counts = check.counts("request_counts", request_counts, min_size=2, minimum=1)
    check.same_length("error_sums", sums, "request_counts", counts)
    ratio = float(sums.sum() / counts.sum())
    residual_ss = float(np.sum((sums - ratio * counts) ** 2))
    return _per_user(sums.size, ratio, residual_ss, float(counts.sum()))


def arm_from_user_moments(
    users: int,
    error_sum: float,
    request_sum: float,
    error_sq_sum: float,
    request_sq_sum: float,
    cross_sum: float,
) -> ArmEstimate:
    """Per-user estimate from five SQL aggregates over users, so the controller never needs raw rows.

    With S_i, N_i each user's summed error and request count (one `GROUP BY user_id`), pass
    K = count(*), sum(S), sum(N), sum(S*S), sum(N*N), sum(S*N). Then
    sum_i (S_i - R N_i)^2 = sum(S^2) - 2 R sum(S N) + R^2 sum(N^2), and the rest is `arm_from_users`
    (the delta-method variance of Deng, Knoblich & Lu 2018, KDD, section 3.3, expanded).

    >>> arm = arm_from_user_moments(3, 8.0, 6, 26.0, 14, 19.0)
    >>> round(arm.mean, 4), round(arm.variance, 6)
    (1.3333, 0.009259)
    """
    k = check.whole("users", users, minimum=2)
    total_requests = check.whole("request_sum", request_sum, minimum=k)
    ratio = check.finite("error_sum", error_sum) / total_requests
    parts = (
        check.finite("error_sq_sum", error_sq_sum),
        2 * ratio * check.finite("cross_sum", cross_sum),
        ratio**2 * check.finite("request_sq_sum", request_sq_sum),
    )
    residual_ss = parts[0] - parts[1] + parts[2]
    # The exact value is >= 0; allow rounding error of the large sums, reject inconsistent inputs.
    if residual_ss < -1e-9 * max(abs(part) for part in parts):
        raise ValueError("the moments are inconsistent: sum(S^2) - 2 R sum(S N) + R^2 sum(N^2) is negative")
    return _per_user(k, ratio, max(residual_ss, 0.0), float(total_requests))


def _per_user(k: int, ratio: float, residual_ss: float, total_requests: float) -> ArmEstimate:
    mean_requests = total_requests / k
    variance = residual_ss / (k * (k - 1) * mean_requests**2)
    return ArmEstimate(ratio, variance, k, round(total_requests), PER_USER)
