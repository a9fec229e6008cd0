"""Per-user (delta-method) and request-level arm estimates, checked against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm

from pitstop.stats import (
    ArmEstimate,
    arm_from_errors,
    arm_from_summary,
    arm_from_user_moments,
    arm_from_users,
)


def clustered_users(seed: int, users: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(per-request errors, user ids, per-user sums, per-user counts); users differ in activity and error."""
    rng = np.random.default_rng(seed)
    counts = 1 + rng.poisson(4, users)
    scale = rng.gamma(2.0, 1.0, users)
    user_ids = np.repeat(np.arange(users), counts)
    errors = rng.exponential(scale[user_ids])
    sums = np.bincount(user_ids, weights=errors)
    return errors, user_ids, sums, counts


def test_per_user_variance_is_the_delta_method_formula_computed_by_hand() -> None:
    sums, counts = np.array([3.0, 1.0, 4.0, 2.0, 6.0]), np.array([2, 1, 3, 2, 4])
    k, ratio = sums.size, sums.sum() / counts.sum()
    # Deng, Knoblich & Lu (2018): Var(S/N) ~ (var_S - 2 R cov_SN + R^2 var_N) / (K mean_N^2), ddof 1.
    cov = np.cov(sums, counts, ddof=1)
    expected = (cov[0, 0] - 2 * ratio * cov[0, 1] + ratio**2 * cov[1, 1]) / (k * counts.mean() ** 2)
    arm = arm_from_users(sums, counts)
    assert arm.mean == pytest.approx(ratio)
    assert arm.variance == pytest.approx(expected, rel=1e-12)
    assert (arm.n, arm.requests, arm.method) == (5, 12, "per_user")


def test_per_user_variance_equals_the_cluster_robust_variance_of_the_mean() -> None:
    errors, user_ids, sums, counts = clustered_users(seed=1)
    fit = sm.OLS(errors, np.ones_like(errors)).fit(cov_type="cluster", cov_kwds={"groups": user_ids})
    arm = arm_from_users(sums, counts)
    assert arm.mean == pytest.approx(fit.params[0], rel=1e-12)
    assert arm.variance == pytest.approx(fit.bse[0] ** 2, rel=1e-9)


def test_per_user_variance_agrees_with_a_bootstrap_over_users() -> None:
    _, _, sums, counts = clustered_users(seed=2)
    rng = np.random.default_rng(3)
    resample = rng.integers(0, sums.size, size=(4000, sums.size))
    ratios = sums[resample].sum(axis=1) / counts[resample].sum(axis=1)
    assert arm_from_users(sums, counts).variance == pytest.approx(ratios.var(ddof=1), rel=0.1)


def test_request_level_variance_understates_the_uncertainty_of_clustered_errors() -> None:
    errors, _, sums, counts = clustered_users(seed=4)
    assert arm_from_errors(errors).mean == pytest.approx(arm_from_users(sums, counts).mean)
    assert arm_from_errors(errors).variance < 0.7 * arm_from_users(sums, counts).variance


def test_sql_moments_give_the_same_estimate_as_per_user_arrays() -> None:
    _, _, sums, counts = clustered_users(seed=5)
    from_moments = arm_from_user_moments(
        sums.size, sums.sum(), counts.sum(), (sums**2).sum(), (counts**2).sum(), (sums * counts).sum()
    )
    from_arrays = arm_from_users(sums, counts)
    assert from_moments.mean == pytest.approx(from_arrays.mean, rel=1e-12)
    assert from_moments.variance == pytest.approx(from_arrays.variance, rel=1e-8)
    assert (from_moments.n, from_moments.requests) == (from_arrays.n, from_arrays.requests)


def test_one_request_per_user_reduces_to_the_request_level_estimate() -> None:
    errors = np.random.default_rng(6).exponential(2.0, 50)
    per_user, per_request = arm_from_users(errors, np.ones(50)), arm_from_errors(errors)
    assert per_user.mean == pytest.approx(per_request.mean)
    assert per_user.variance == pytest.approx(per_request.variance, rel=1e-12)


def test_summary_estimate_is_the_variance_over_n() -> None:
    errors = np.array([1.0, 4.0, 2.0, 8.0])
    summary = arm_from_summary(4, errors.mean(), errors.var(ddof=1))
    assert summary == arm_from_errors(errors)
    assert summary.unit_std == pytest.approx(errors.std(ddof=1))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: arm_from_users([1.0, 2.0], [1, 2, 3]), "same length"),
        (lambda: arm_from_users([1.0, 2.0], [1, 0]), "at least 1"),
        (lambda: arm_from_users([1.0, 2.0], [1, 1.5]), "whole numbers"),
        (lambda: arm_from_users([1.0], [1]), "at least 2"),
        (lambda: arm_from_users([1.0, np.nan], [1, 1]), "NaN"),
        (lambda: arm_from_errors([]), "at least 2"),
        (lambda: arm_from_errors([[1.0, 2.0]]), "one-dimensional"),
        (lambda: arm_from_errors(["a", "b"]), "must be numbers"),
        (lambda: arm_from_summary(1, 1.0, 1.0), "n must be a whole number of at least 2"),
        (lambda: arm_from_summary(10, 1.0, -1.0), "variance must not be negative"),
        (lambda: arm_from_user_moments(3, 8.0, 6, 1.0, 14, 19.0), "inconsistent"),
        (lambda: arm_from_user_moments(3, 8.0, 2, 26.0, 14, 19.0), "request_sum"),
        (lambda: ArmEstimate(1.0, 0.1, 10, 5, "welch"), "requests"),
    ],
)
def test_invalid_arm_input_is_refused_naming_the_rule(build: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()  # type: ignore[operator]
