"""How many distinct users a model will see: an accumulation curve fitted to first-seen counts.

A test randomised by user needs users, and a model's users are finite: the 1,500 riders of a small
city come back every day, so a week brings far fewer *new* users than a week's requests suggest. The
curve of distinct users seen by time t, for a population of N users who each return at rate lambda
(Poisson, the same for all), is

    D(t) = N (1 - exp(-t / theta)),   theta = 1 / lambda,

which grows linearly (D = r t, r = N / theta) while few users have come back and flattens at N. It is
fitted by maximum likelihood to the users first seen in each of several intervals of one window
(`fit_user_curve`); the limit theta -> infinity is the straight line through the origin (new users
keep coming, the population is unbounded at this scale), kept unless the data show the curve bend.

Users who come rarely keep arriving after the regular ones have all been seen, so on a population
of mixed habits the curve underestimates the users a longer test would meet: a conservative count.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import optimize, stats

from pitstop.stats import _checks as check
from pitstop.stats._checks import FloatArray

# theta beyond this many windows is indistinguishable from a straight line over any horizon we plan.
LINEAR_BEYOND = 1e4


@dataclass(frozen=True)
class UserCurve:
    """A fitted accumulation curve D(t) = population (1 - exp(-t / theta)) of distinct users by hour t.

    `population` is None for the unbounded (straight-line) fit, when `rate_per_hour` users a hour
    keep arriving; `theta_hours` is the mean time between a user's visits (None when unbounded).
    """

    rate_per_hour: float  # new users an hour at the start (D'(0))
    population: float | None
    theta_hours: float | None
    seen: int  # distinct users seen in the fitted window
    window_hours: float

    def users_by(self, hours: float) -> float:
        """Distinct users expected within `hours` of the start.

        >>> UserCurve(100.0, None, None, 200, 2.0).users_by(10)
        1000.0
        >>> round(UserCurve(100.0, 1000.0, 10.0, 632, 10.0).users_by(10))
        632
        """
        if hours <= 0:
            return 0.0
        if self.population is None or self.theta_hours is None:
            return self.rate_per_hour * hours
        return self.population * -math.expm1(-hours / self.theta_hours)

    def hours_to(self, users: float) -> float | None:
        """Hours until `users` distinct users have been seen (None: the population is smaller).

        >>> UserCurve(100.0, None, None, 200, 2.0).hours_to(500)
        5.0
        >>> UserCurve(100.0, 1000.0, 10.0, 632, 10.0).hours_to(1000) is None
        True
        """
        if users <= 0:
            return 0.0
        if self.population is None or self.theta_hours is None:
            return users / self.rate_per_hour if self.rate_per_hour > 0 else None
        if users >= self.population:
            return None
        return -self.theta_hours * math.log1p(-users / self.population)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fit_user_curve(hours: list[float], users: list[int], *, alpha: float = 0.01) -> UserCurve:
    """Fit the accumulation curve to distinct users first seen by each time (hours from the window's
    start, ascending; the last is the window's end).

    The negative exponential accumulation model of Soberón & Llorente (1993, "The use of species
    accumulation functions for the prediction of species richness", Conservation Biology 7(3)), with
    the new users of each interval counted as Poisson with mean
    N (exp(-t_{k-1}/theta) - exp(-t_k/theta)) (t_0 = 0), fitted by maximum likelihood: for a fixed
    theta, N = D(T) / (1 - exp(-T/theta)), and theta by a bounded one-dimensional search (scipy). A
    finite population is believed only when the data show it: the likelihood-ratio test of this curve
    against new users at a constant rate (the straight line D = r t, r = D(T) / T) at level `alpha`,
    since the noise of a few hours of arrivals bends any line a little, and a wrongly finite
    population would call winnable tests unwinnable.

    >>> fit = fit_user_curve([1, 2, 3, 4], [100, 200, 300, 400])
    >>> fit.population is None, round(fit.rate_per_hour, 6)
    (True, 100.0)
    >>> fit = fit_user_curve([1, 2, 4, 8], [393, 632, 865, 982])  # N = 1000, theta = 2 h
    >>> round(fit.population, -1), round(fit.theta_hours, 1)
    (1000.0, 2.0)
    """
    t = check.sample("hours", hours)
    d = check.sample("users", users)
    check.same_length("hours", t, "users", d)
    check.alpha_level(alpha)
    if np.any(t <= 0) or np.any(np.diff(t) <= 0):
        raise ValueError("hours must be positive and increasing")
    if np.any(d < 0) or np.any(np.diff(d) < 0):
        raise ValueError("users must be non-negative and non-decreasing (first-seen counts)")
    seen, window = int(d[-1]), float(t[-1])
    linear = UserCurve(seen / window, None, None, seen, window)
    if seen == 0 or len(t) < 3:
        return linear
    new = np.diff(d, prepend=0.0)
    edges = np.concatenate([[0.0], t])

    def log_likelihood(means: FloatArray) -> float:
        used = new > 0  # a zero count adds only -mean, summed below
        return float(np.sum(new[used] * np.log(means[used])) - np.sum(means))

    def curve_fit(log_theta: float) -> tuple[float, float]:
        theta = math.exp(log_theta)
        population = seen / -math.expm1(-window / theta)
        means = population * -np.diff(np.exp(-edges / theta))
        if np.any(means[new > 0] <= 0):  # later intervals underflow at tiny theta: no fit there
            return population, -math.inf
        return population, log_likelihood(means)

    found = optimize.minimize_scalar(
        lambda log_theta: -curve_fit(log_theta)[1],
        bounds=(math.log(window / 100), math.log(window * LINEAR_BEYOND)),
        method="bounded",
    )
    population, fitted = curve_fit(float(found.x))
    straight = log_likelihood(linear.rate_per_hour * np.diff(edges))
    if 2 * (fitted - straight) <= stats.chi2.ppf(1 - alpha, 1):
        return linear
    theta = math.exp(float(found.x))
    return UserCurve(population / theta, population, theta, seen, window)
