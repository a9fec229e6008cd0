"""The accumulation curve of distinct users: finite populations found, unbounded ones not invented."""

from __future__ import annotations

import numpy as np
import pytest

from pitstop.stats import UserCurve, fit_user_curve

MARKS = [24.0 * (k + 1) / 8 for k in range(8)]  # a day's shadow, eight counts


def first_seen(visits_per_user: np.ndarray, rng: np.random.Generator, hours: float = 24.0) -> list[int]:
    """Distinct users first seen by each mark, for users visiting as Poisson processes of these rates
    (visits an hour): a user's first visit is exponential with its rate."""
    first = rng.exponential(1 / visits_per_user)
    return [int(np.sum(first <= mark * hours / 24)) for mark in MARKS]


def test_a_small_city_of_riders_is_found_finite() -> None:
    """1,500 riders ordering about daily: a day shows ~950 of them, and the curve finds about 1,500
    (over 100 seeds: 5 % and 95 % percentiles 1,343 and 1,708)."""
    rng = np.random.default_rng(3)
    curve = fit_user_curve(MARKS, first_seen(np.full(1500, 1 / 24), rng))
    assert curve.population == pytest.approx(1500, rel=0.15)
    assert curve.users_by(14 * 24) == pytest.approx(1500, rel=0.15)
    assert curve.hours_to(2000) is None  # more users than there are: never


def test_new_users_at_a_steady_rate_are_not_taken_for_a_finite_population() -> None:
    """Users who come once, 300 an hour: in 200 seeded days the fit calls the population finite at
    most as often as its test's level (1 %), and extrapolates about 300 an hour."""
    rng = np.random.default_rng(5)
    finite, rates = 0, []
    for _ in range(200):
        arrivals = np.sort(rng.uniform(0, 24, rng.poisson(300 * 24)))
        curve = fit_user_curve(MARKS, [int(np.searchsorted(arrivals, m, side="right")) for m in MARKS])
        finite += curve.population is not None
        rates.append(curve.users_by(14 * 24) / (14 * 24))
    assert finite <= 4
    assert np.median(rates) == pytest.approx(300, rel=0.02)


def test_an_unbounded_curve_extrapolates_linearly() -> None:
    curve = UserCurve(rate_per_hour=50.0, population=None, theta_hours=None, seen=1200, window_hours=24.0)
    assert (curve.users_by(48), curve.hours_to(4800)) == (2400.0, 96.0)


@pytest.mark.parametrize(
    ("hours", "users", "message"),
    [
        ([1, 2, 3], [1, 2], "same length"),
        ([0, 1, 2], [0, 1, 2], "hours must be positive and increasing"),
        ([1, 3, 2], [1, 2, 3], "hours must be positive and increasing"),
        ([1, 2, 3], [5, 4, 6], "non-decreasing"),
    ],
)
def test_counts_that_are_no_accumulation_are_refused(
    hours: list[float], users: list[int], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        fit_user_curve(hours, users)
