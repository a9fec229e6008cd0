"""mSPRT: the closed form of Johari, Pekelis & Walsh, the mixture integral, and validity under peeking."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from pitstop.stats import (
    always_valid_p_values,
    arm_from_summary,
    confidence_sequence,
    log_likelihood_ratio,
    msprt,
)


def test_likelihood_ratio_is_the_johari_pekelis_walsh_closed_form() -> None:
    # Balanced arms, n each, known variance sigma^2 (JPW 2022, section 4):
    # Lambda = sqrt(2s2 / (2s2 + n tau2)) exp(n^2 tau2 (ybar - xbar - theta0)^2 / (4 s2 (2s2 + n tau2)))
    sigma2, n, tau, difference, theta0 = 4.0, 250, 0.3, 0.45, 0.05
    tau2 = tau**2
    closed = math.sqrt(2 * sigma2 / (2 * sigma2 + n * tau2)) * math.exp(
        n**2 * tau2 * (difference - theta0) ** 2 / (4 * sigma2 * (2 * sigma2 + n * tau2))
    )
    ours = float(log_likelihood_ratio(difference, 2 * sigma2 / n, tau=tau, null=theta0))
    assert ours == pytest.approx(math.log(closed), rel=1e-12)


def test_likelihood_ratio_is_the_normal_mixture_integral() -> None:
    estimate, variance, tau = 0.2, 0.01, 0.15

    def joint(theta: float) -> float:
        return float(stats.norm.pdf(estimate, theta, math.sqrt(variance)) * stats.norm.pdf(theta, 0.0, tau))

    mixture, _ = integrate.quad(joint, -2, 2, points=[0.0, estimate])
    ratio = mixture / stats.norm.pdf(estimate, 0.0, math.sqrt(variance))
    assert float(log_likelihood_ratio(estimate, variance, tau=tau)) == pytest.approx(
        math.log(ratio), rel=1e-9
    )


def test_confidence_sequence_is_the_set_the_test_does_not_reject() -> None:
    estimate, variance, tau, alpha = 0.3, 0.02, 0.1, 0.05
    low, high = confidence_sequence([estimate], [variance], tau=tau, alpha=alpha)
    for edge in (low[0], high[0]):
        p = always_valid_p_values([estimate], [variance], tau=tau, null=edge)[0]
        assert p == pytest.approx(alpha, rel=1e-9)
    inside = always_valid_p_values([estimate], [variance], tau=tau, null=(low[0] + high[0]) / 2)[0]
    assert inside > alpha


@pytest.mark.parametrize(("looks", "sigma2", "tau"), [(50, 1.0, 0.1), (400, 25.0, 0.5), (7, 4.0, 2.0)])
def test_confidence_sequence_is_the_howard_normal_mixture_boundary(
    looks: int, sigma2: float, tau: float
) -> None:
    # Howard, Ramdas, McAuliffe & Sekhon (2021), two-sided normal mixture: a sum S_t of t draws with
    # variance sigma^2 (intrinsic time v = t sigma^2) stays within
    # sqrt((v + rho) log((v + rho) / (rho alpha^2))) of t theta at every t with probability 1 - alpha.
    # Mixing theta ~ N(theta_0, tau^2) is mixing their lambda = (theta - theta_0) / sigma^2 ~ N(0, 1 / rho)
    # with rho = sigma^4 / tau^2. On the mean's scale:
    estimate, alpha = 0.3, 0.05
    v, rho = looks * sigma2, sigma2**2 / tau**2
    half = math.sqrt((v + rho) * math.log((v + rho) / (rho * alpha**2))) / looks
    low, high = confidence_sequence([estimate], [sigma2 / looks], tau=tau, alpha=alpha)
    assert (low[0], high[0]) == pytest.approx((estimate - half, estimate + half), rel=1e-12)


def test_confidence_sequence_matches_the_boundary_worked_by_hand() -> None:
    # t = 50, sigma = 1, tau = 0.1: rho = 100, sqrt(150 log(600)) / 50 = 0.6195287 (by hand, 7 digits)
    low, high = confidence_sequence([0.3], [0.02], tau=0.1)
    assert (low[0], high[0]) == pytest.approx((0.3 - 0.6195287, 0.3 + 0.6195287), abs=1e-7)


def test_p_values_are_a_running_minimum_and_intervals_a_running_intersection() -> None:
    estimates, variances = [0.5, 0.1, 0.3, 0.2], [0.04, 0.02, 0.01, 0.005]
    p = always_valid_p_values(estimates, variances, tau=0.2)
    assert np.all(np.diff(p) <= 0)
    low, high = confidence_sequence(estimates, variances, tau=0.2)
    assert np.all(np.diff(low) >= 0) and np.all(np.diff(high) <= 0)


def test_msprt_looks_carry_the_previous_state_like_the_vectorised_path() -> None:
    rng = np.random.default_rng(50)
    a, b = rng.normal(10, 5, 4000), rng.normal(11, 5, 4000)
    p, ci, estimates, variances = 1.0, None, [], []
    for n in range(400, 4001, 400):
        champion = arm_from_summary(n, a[:n].mean(), a[:n].var(ddof=1))
        challenger = arm_from_summary(n, b[:n].mean(), b[:n].var(ddof=1))
        look = msprt(champion, challenger, tau=0.5, previous_p_value=p, previous_ci=ci)
        p, ci = look.p_value, (look.ci_low, look.ci_high)
        estimates.append(challenger.mean - champion.mean)
        variances.append(champion.variance + challenger.variance)
    assert p == pytest.approx(always_valid_p_values(estimates, variances, tau=0.5)[-1], rel=1e-12)
    low, high = confidence_sequence(estimates, variances, tau=0.5)
    assert ci == pytest.approx((low[-1], high[-1]), rel=1e-12)
    assert p < 0.05 and ci[0] > 0  # a true 10 % harm is caught


def peeking_experiments(
    effect: float, *, seed: int, reps: int = 400, looks: int = 40, batch: int = 50
) -> dict[str, np.ndarray]:
    """Per look of `reps` experiments on errors N(10, 5^2) (challenger + effect): estimates, variances, n."""
    rng = np.random.default_rng(seed)
    data = rng.normal(10.0, 5.0, (reps, 2, looks * batch))
    data[:, 1] += effect
    ends = np.arange(batch, looks * batch + 1, batch)
    sums, squares = np.cumsum(data, axis=2)[..., ends - 1], np.cumsum(data**2, axis=2)[..., ends - 1]
    means = sums / ends
    variances = (squares - ends * means**2) / (ends - 1)
    return {
        "estimate": means[:, 1] - means[:, 0],
        "variance": (variances[:, 0] + variances[:, 1]) / ends,
        "n": ends,
    }


def test_the_sequential_test_stays_below_alpha_when_checked_after_every_batch() -> None:
    runs = peeking_experiments(0.0, seed=51)
    # Naive: a Welch t-test at each of the 40 looks, stopping at the first p < 0.05.
    z = np.abs(runs["estimate"]) / np.sqrt(runs["variance"])
    naive_p = 2 * stats.t.sf(z, 2 * runs["n"] - 2)
    naive_rate = np.mean(naive_p.min(axis=1) < 0.05)
    fixed_rate = np.mean(naive_p[:, -1] < 0.05)  # one look at the planned horizon
    sequential_rate = np.mean(
        [
            always_valid_p_values(estimates, variances, tau=0.5)[-1] < 0.05
            for estimates, variances in zip(runs["estimate"], runs["variance"], strict=True)
        ]
    )
    assert sequential_rate <= 0.05
    assert naive_rate > 0.15
    assert fixed_rate == pytest.approx(0.05, abs=0.025)


def test_the_sequential_test_finds_a_real_difference() -> None:
    runs = peeking_experiments(-0.5, seed=52, reps=100, batch=100)  # a 5 % lower error
    found = [
        always_valid_p_values(estimates, variances, tau=0.5)[-1] < 0.05
        for estimates, variances in zip(runs["estimate"], runs["variance"], strict=True)
    ]
    assert np.mean(found) > 0.8


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: log_likelihood_ratio(0.1, 0.01, tau=0.0), "tau must be positive"),
        (lambda: log_likelihood_ratio(0.1, 0.0, tau=0.1), "variances must be positive"),
        (lambda: log_likelihood_ratio(math.nan, 0.01, tau=0.1), "must be finite"),
        (lambda: always_valid_p_values([0.1, 0.2], [0.01], tau=0.1), "same length"),
        (lambda: always_valid_p_values([], [], tau=0.1), "at least 1"),
        (lambda: confidence_sequence([0.1], [0.01], tau=0.1, alpha=1.0), "alpha must be strictly between"),
        (
            lambda: msprt(
                arm_from_summary(9, 1.0, 1.0), arm_from_summary(9, 1.0, 1.0), tau=0.1, previous_p_value=0
            ),
            "previous_p_value",
        ),
        (
            lambda: msprt(arm_from_summary(9, 1.0, 0.0), arm_from_summary(9, 1.0, 0.0), tau=0.1),
            "zero variance",
        ),
        (
            lambda: msprt(
                arm_from_summary(9, 1.0, 1.0),
                arm_from_summary(9, 2.0, 1.0),
                tau=0.5,
                previous_ci=(math.nan, math.nan),
            ),
            "previous_ci low must be a finite number",
        ),
        (
            lambda: msprt(
                arm_from_summary(9, 1.0, 1.0),
                arm_from_summary(9, 2.0, 1.0),
                tau=0.5,
                previous_ci=(0.0, math.inf),
            ),
            "previous_ci high must be a finite number",
        ),
        (
            lambda: msprt(
                arm_from_summary(9, 1.0, 1.0), arm_from_summary(9, 2.0, 1.0), tau=0.5, previous_ci=(5.0, -5.0)
            ),
            "previous_ci must have low <= high",
        ),
        (
            lambda: msprt(arm_from_summary(9, 1.0, 1.0), arm_from_summary(9, 1.0, 1.0), tau=-1.0),
            "tau must be",
        ),
    ],
)
def test_invalid_sequential_input_is_refused_naming_the_rule(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]
