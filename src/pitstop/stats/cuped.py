"""CUPED: variance reduction with a pre-experiment covariate (optional).

Each unit's metric is adjusted by a covariate measured before the experiment (e.g. each user's error
under the champion the week before), which the treatment cannot have changed:

    Y_adj = Y - theta (X - Xbar),   theta = Cov(Y, X) / Var(X)

The difference between arms keeps its expectation and loses the share rho^2 of its variance that X
explains (Deng, Xu, Kohavi & Walker 2013, "Improving the Sensitivity of Online Controlled Experiments
by Utilizing Pre-Experiment Data", WSDM). theta is pooled within arms, so the adjusted difference equals
the arm coefficient of the regression Y ~ 1 + arm + X (ANCOVA; Lin 2013, Ann. Appl. Stat. 7(1)).
Per-user ratio metrics are adjusted through their delta-method linearisation
u_i = (S_i - R N_i) / Nbar (Deng, Knoblich & Lu 2018, KDD, section 4.3); plain per-unit values through
u_i = Y_i - Ybar.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pitstop.stats import _checks as check
from pitstop.stats._checks import FloatArray
from pitstop.stats.arms import ArmEstimate, arm_from_errors, arm_from_users
from pitstop.stats.twosample import UserErrors


@dataclass(frozen=True)
class CupedResult:
    """The adjusted arm estimates and the adjustment; not a test result.

    `champion` and `challenger` carry the adjusted mean, its variance, `n` and `method` (`cuped_` + the
    arm's method); test them with `mean_difference`, `relative_effect` or `ab_verdict`, which return
    the statistic, p-value, estimate, interval, n and method. `theta` is the pooled coefficient,
    `variance_reduction` 1 - Var(adjusted difference) / Var(raw difference).
    """

    champion: ArmEstimate
    challenger: ArmEstimate
    theta: float
    variance_reduction: float


def cuped(
    champion: UserErrors | npt.ArrayLike,
    challenger: UserErrors | npt.ArrayLike,
    champion_covariate: npt.ArrayLike,
    challenger_covariate: npt.ArrayLike,
) -> CupedResult:
    """Adjust both arms with a pre-period covariate (one value per unit: per user with `UserErrors`).

    Y_adj = Y - theta (X - Xbar), theta = sum_arms Cov(u, X) / sum_arms Var(X) pooled within arms, u the
    unit's (linearised) metric (Deng, Xu, Kohavi & Walker 2013, WSDM; ratio metrics: Deng, Knoblich & Lu
    2018, KDD, section 4.3). An adjustment, a building block rather than a test: it returns the adjusted
    arms (`CupedResult`); `mean_difference(result.champion, result.challenger)` is the test.

    >>> result = cuped([3.0, 5.0, 4.0, 6.0], [2.0, 5.5, 3.0, 6.5], [2.9, 5.2, 4.1, 5.8], [2.2, 5.1, 3.3, 6.0])
    >>> round(result.theta, 3), round(result.challenger.mean - result.champion.mean, 3)
    (1.142, 0.15)
    >>> round(result.variance_reduction, 3)
    0.982
    >>> from pitstop.stats.twosample import mean_difference
    >>> test = mean_difference(result.champion, result.challenger)
    >>> test.method, round(test.p_value, 3), test.n
    ('cuped_welch', 0.399, 8)
    """
    arms = [
        _linearise(name, data, covariate)
        for name, data, covariate in (
            ("champion", champion, champion_covariate),
            ("challenger", challenger, challenger_covariate),
        )
    ]
    raw = arms[0][0].variance + arms[1][0].variance
    if raw == 0:
        raise ValueError("the outcome has zero variance in both arms: there is nothing to adjust or test")
    centred = [x - x.mean() for _, _, x in arms]
    spread = sum(float(np.dot(c, c)) for c in centred)
    if spread == 0:
        raise ValueError("the covariate has zero variance within the arms: it cannot explain anything")
    theta = sum(float(np.dot(u, c)) for (_, u, _), c in zip(arms, centred, strict=True)) / spread
    overall = float(np.concatenate([x for _, _, x in arms]).mean())
    adjusted = [
        ArmEstimate(
            mean=estimate.mean - theta * (float(x.mean()) - overall),
            variance=float(np.sum((u - theta * c) ** 2)) / (u.size * (u.size - 1)),
            n=estimate.n,
            requests=estimate.requests,
            method=f"cuped_{estimate.method}",
        )
        for (estimate, u, x), c in zip(arms, centred, strict=True)
    ]
    reduction = 1 - (adjusted[0].variance + adjusted[1].variance) / raw
    return CupedResult(adjusted[0], adjusted[1], theta, reduction)


def _linearise(
    arm: str, data: UserErrors | npt.ArrayLike, covariate: npt.ArrayLike
) -> tuple[ArmEstimate, FloatArray, FloatArray]:
    """(the arm's estimate, each unit's linearised deviation u_i, the covariate)."""
    if isinstance(data, UserErrors):
        estimate = arm_from_users(data.sums, data.counts)
        sums = check.sample(f"{arm} sums", data.sums)
        counts = check.sample(f"{arm} counts", data.counts)
        deviations = (sums - estimate.mean * counts) / counts.mean()
    else:
        values = check.sample(f"{arm} values", data, min_size=2)
        estimate = arm_from_errors(values)
        deviations = values - values.mean()
    x = check.sample(f"{arm}_covariate", covariate, min_size=2)
    check.same_length(f"{arm} units", deviations, f"{arm}_covariate", x)
    return estimate, deviations, x
