"""Always-valid inference: the mixture sequential probability ratio test (mSPRT) and its confidence sequence.

For the difference of mean errors theta = m_b - m_a, estimated by theta_hat with variance
V = v_a + v_b (v = squared standard error of an arm's mean), mixing the alternative over
theta ~ N(theta_0, tau^2) gives the likelihood ratio

    Lambda = sqrt(V / (V + tau^2)) exp( tau^2 (theta_hat - theta_0)^2 / (2 V (V + tau^2)) ),

with balanced arms of n each and known variance sigma^2 (V = 2 sigma^2 / n) exactly the closed form of
Johari, Pekelis & Walsh (2017/2022), "Always Valid Inference: Continuous Monitoring of A/B Tests",
Operations Research 70(3), section 4:

    Lambda_n = sqrt(2 sigma^2 / (2 sigma^2 + n tau^2))
               * exp(n^2 tau^2 (ybar - xbar - theta_0)^2 / (4 sigma^2 (2 sigma^2 + n tau^2))).

Lambda is a martingale under theta_0 as information 1/V grows, so by Ville's inequality
P(Lambda ever >= 1/alpha) <= alpha: the p-value p_n = min(p_{n-1}, 1 / Lambda_n) may be checked after
every batch, and stopping when p_n < alpha keeps the false positive rate below alpha. Inverting it
gives the confidence sequence, valid at all looks simultaneously,

    theta_hat +- sqrt( V (V + tau^2) / tau^2 * (2 log(1/alpha) + log((V + tau^2) / V)) )

(Howard, Ramdas, McAuliffe & Sekhon 2021, Ann. Stat. 49(2), normal mixture boundary), intersected over
looks. The arm variances are plugged in from the data at each look, as JPW do.

tau, the mixture's standard deviation, is the size of effect the test is tuned to find: effects near tau
are detected soonest; any tau > 0 keeps the guarantee. It is in error units: the policy's `tau` is a
fraction of the champion's mean error, so pass `policy.tau * champion.mean`.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from pitstop.stats import _checks as check
from pitstop.stats._checks import FloatArray
from pitstop.stats.arms import ArmEstimate
from pitstop.stats.results import TestResult


def log_likelihood_ratio(
    estimate: npt.ArrayLike, variance: npt.ArrayLike, *, tau: float, null: float = 0.0
) -> FloatArray:
    """log Lambda of the normal-mixture SPRT at each look; arrays broadcast.

    log Lambda = 1/2 log(V / (V + tau^2)) + tau^2 (theta_hat - theta_0)^2 / (2 V (V + tau^2)): the
    likelihood ratio of N(theta_hat; theta, V) mixed over theta ~ N(theta_0, tau^2) against theta_0
    (Robbins 1970; Johari, Pekelis & Walsh 2022, "Always Valid Inference: Continuous Monitoring of A/B
    Tests", Operations Research 70(3), section 4). A building block, not a test: it returns an array;
    the test with a result object is `msprt`.

    >>> round(float(log_likelihood_ratio(0.3, 2 / 100, tau=0.1)), 4)
    0.5473
    """
    theta = np.asarray(estimate, dtype=np.float64)
    v = np.asarray(variance, dtype=np.float64)
    tau2 = check.positive("tau", tau) ** 2
    check.finite("null", null)
    if not (np.all(np.isfinite(theta)) and np.all(np.isfinite(v))):
        raise ValueError("estimates and variances must be finite")
    if np.any(v <= 0):
        raise ValueError("variances must be positive")
    result: FloatArray = 0.5 * np.log(v / (v + tau2)) + tau2 * (theta - null) ** 2 / (2 * v * (v + tau2))
    return result


def always_valid_p_values(
    estimates: npt.ArrayLike, variances: npt.ArrayLike, *, tau: float, null: float = 0.0
) -> FloatArray:
    """Always-valid p-values of a sequence of looks: the running minimum of min(1, 1 / Lambda_n).

    p_n = min(p_{n-1}, 1 / Lambda_n), valid at every look at once by Ville's inequality (Johari, Pekelis
    & Walsh 2022, Operations Research 70(3), sections 3-4). `estimates` and `variances` are theta_hat and
    V at each look, in order (cumulative data). A building block for replays and simulations, not a test:
    it returns one p-value per look; one look with a result object is `msprt`.

    >>> always_valid_p_values([0.1, 0.3, 0.2], [0.04, 0.02, 0.01], tau=0.1).round(4).tolist()
    [1.0, 0.5785, 0.5203]
    """
    theta = check.sample("estimates", estimates)
    v = check.sample("variances", variances)
    check.same_length("estimates", theta, "variances", v)
    p_looks = np.minimum(1.0, np.exp(-log_likelihood_ratio(theta, v, tau=tau, null=null)))
    result: FloatArray = np.minimum.accumulate(p_looks)
    return result


def confidence_sequence(
    estimates: npt.ArrayLike, variances: npt.ArrayLike, *, tau: float, alpha: float = 0.05
) -> tuple[FloatArray, FloatArray]:
    """Running (lower, upper) bounds of the 1 - alpha confidence sequence for theta at each look.

    [low_n, high_n] = theta_hat_n -+ sqrt(V_n (V_n + tau^2) / tau^2 (2 log(1/alpha) + log(1 + tau^2/V_n))),
    intersected over looks: the two-sided normal-mixture boundary of Howard, Ramdas, McAuliffe & Sekhon
    (2021), "Time-uniform, nonparametric, nonasymptotic confidence sequences", Ann. Statist. 49(2), the
    set of theta_0 the mSPRT does not reject (Johari, Pekelis & Walsh 2022). A building block for
    replays and simulations, not a test: it returns the two arrays of bounds; one look with a result
    object is `msprt`.

    >>> low, high = confidence_sequence([0.3, 0.25], [0.02, 0.01], tau=0.1)
    >>> low.round(4).tolist(), high.round(4).tolist()
    ([-0.3195, -0.1156], [0.9195, 0.6156])
    """
    theta = check.sample("estimates", estimates)
    v = check.sample("variances", variances)
    check.same_length("estimates", theta, "variances", v)
    half = _half_width(v, check.positive("tau", tau) ** 2, check.alpha_level(alpha))
    low: FloatArray = np.maximum.accumulate(theta - half)
    high: FloatArray = np.minimum.accumulate(theta + half)
    return low, high


def _half_width(v: FloatArray, tau2: float, alpha: float) -> FloatArray:
    if np.any(v <= 0):
        raise ValueError("variances must be positive")
    result: FloatArray = np.sqrt(v * (v + tau2) / tau2 * (2 * math.log(1 / alpha) + np.log((v + tau2) / v)))
    return result


def msprt(
    champion: ArmEstimate,
    challenger: ArmEstimate,
    *,
    tau: float,
    null: float = 0.0,
    alpha: float = 0.05,
    previous_p_value: float = 1.0,
    previous_ci: tuple[float, float] | None = None,
) -> TestResult:
    """One look of the mSPRT on challenger - champion mean error, from the arms' summary statistics.

    theta_hat = m_b - m_a, V = v_a + v_b, p = min(previous p, 1 / Lambda) with Lambda the normal-mixture
    likelihood ratio (`log_likelihood_ratio`; Johari, Pekelis & Walsh 2022, Operations Research 70(3)),
    interval theta_hat +- sqrt(V (V + tau^2) / tau^2 (2 log(1/alpha) + log((V + tau^2) / V))) intersected
    with the previous one (Howard, Ramdas, McAuliffe & Sekhon 2021, Ann. Statist. 49(2)).
    Pass the previous look's `p_value` and `(ci_low, ci_high)` to keep the running minimum and the
    running intersection (the controller stores them on the rollout); the first look passes nothing.
    `statistic` is log Lambda; `details` holds this look's own p-value and interval. Harm: `p_value <
    alpha` with `estimate > 0` (or `ci_low > 0`); a win by a margin m: `ci_high < -m * champion.mean`.
    Keep `null` fixed over the looks of one experiment.

    >>> from pitstop.stats.arms import arm_from_summary
    >>> look = msprt(arm_from_summary(2000, 10.0, 25.0), arm_from_summary(2000, 10.5, 25.0), tau=0.5)
    >>> round(look.p_value, 4), round(look.ci_low, 3), round(look.ci_high, 3)
    (0.0352, 0.02, 0.98)
    """
    alpha = check.alpha_level(alpha)
    if not 0 < previous_p_value <= 1:
        raise ValueError(f"previous_p_value must be in (0, 1], got {previous_p_value}")
    if previous_ci is not None:
        check.finite("previous_ci low", previous_ci[0])
        check.finite("previous_ci high", previous_ci[1])
        if previous_ci[0] > previous_ci[1]:
            raise ValueError(f"previous_ci must have low <= high, got {previous_ci}")
    check.same_method(champion, challenger)
    variance = check.some_variance(champion.variance + challenger.variance)
    estimate = challenger.mean - champion.mean
    log_lr = float(log_likelihood_ratio(estimate, variance, tau=tau, null=null))
    p_look = min(1.0, math.exp(-log_lr)) if log_lr > -700 else 1.0
    half = float(_half_width(np.array([variance]), tau**2, alpha)[0])
    low, high = estimate - half, estimate + half
    if previous_ci is not None:
        joined = (max(low, previous_ci[0]), min(high, previous_ci[1]))
        # An empty intersection can only come from the plug-in variances moving; keep this look's interval.
        low, high = joined if joined[0] <= joined[1] else (low, high)
    return TestResult(
        method="msprt",
        statistic=log_lr,
        p_value=min(previous_p_value, p_look),
        estimate=estimate,
        ci_low=low,
        ci_high=high,
        n=champion.n + challenger.n,
        alpha=alpha,
        details={
            "p_value_look": p_look,
            "ci_low_look": estimate - half,
            "ci_high_look": estimate + half,
            "tau": tau,
            "null": null,
            "variance": variance,
            "mean_champion": champion.mean,
            "mean_challenger": challenger.mean,
        },
    )
