"""Power analysis: units needed per arm to detect a relative improvement of the mean error.

`mde` is relative: the planned improvement is `mde * baseline_mean` in error units (0.01 = 1 % lower
error). `share` is the challenger's share of units (users), so n_challenger / n_champion = s / (1 - s).
For the per-user analysis pass the per-user standard deviation (`ArmEstimate.unit_std` of a pilot or
pre-period estimate); the counts are then users.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from scipy import optimize, stats

from pitstop.stats import _checks as check
from pitstop.stats.results import SampleSize
from pitstop.stats.twosample import satterthwaite


def power_two_sample(
    effect_size: float, n_champion: float, n_challenger: float, *, alpha: float = 0.05
) -> float:
    """Power of the two-sided two-sample t-test (equal variances) at standardised effect d = delta / sigma.

    power = P(T > t_{1-alpha/2}) + P(T < -t_{1-alpha/2}),  T ~ noncentral t(df = n_a + n_b - 2,
    ncp = d / sqrt(1/n_a + 1/n_b)); both tails as statsmodels `TTestIndPower` and G*Power count them
    (R's `power.t.test` counts the upper one; the other is ~1e-6 at usual powers). Cohen (1988),
    "Statistical Power Analysis for the Behavioral Sciences", 2nd ed., ch. 2.

    >>> round(power_two_sample(1.0, 17, 17), 4)
    0.807
    """
    check.finite("effect_size", effect_size)
    alpha = check.alpha_level(alpha)
    n_a, n_b = check.positive("n_champion", n_champion), check.positive("n_challenger", n_challenger)
    df = n_a + n_b - 2
    if df <= 0:
        raise ValueError("n_champion + n_challenger must exceed 2")
    return _t_power(effect_size / math.sqrt(1 / n_a + 1 / n_b), df, alpha)


def power_paired(effect_size: float, n: float, *, alpha: float = 0.05) -> float:
    """Power of the two-sided paired (one-sample) t-test at d = mean difference / sd of the differences.

    T ~ noncentral t(df = n - 1, ncp = d sqrt(n)); as statsmodels `TTestPower`, R `power.t.test(type =
    "paired")`. Cohen (1988), "Statistical Power Analysis for the Behavioral Sciences", 2nd ed., ch. 2.

    >>> round(power_paired(1.0, 10), 4)
    0.8031
    """
    check.finite("effect_size", effect_size)
    alpha = check.alpha_level(alpha)
    n = check.positive("n", n)
    if n <= 1:
        raise ValueError(f"n must exceed 1, got {n}")
    return _t_power(effect_size * math.sqrt(n), n - 1, alpha)


def _t_power(ncp: float, df: float, alpha: float) -> float:
    critical = float(stats.t.ppf(1 - alpha / 2, df))
    return float(stats.nct.sf(critical, df, ncp) + stats.nct.cdf(-critical, df, ncp))


def sample_size(
    baseline_mean: float,
    baseline_std: float,
    mde: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    share: float = 0.5,
) -> SampleSize:
    """Units per arm for the classic two-sided two-sample t-test, as standard power calculators give them.

    Solves `power_two_sample(d, n_a, n_a s / (1 - s)) = power` for n_a (noncentral t, Brent's method
    started from the normal approximation n_a = (z_{1-alpha/2} + z_{power})^2 (1 + (1 - s)/s) / d^2), with
    d = mde * baseline_mean / baseline_std, and rounds each arm up. Same numbers as R's
    `power.t.test(delta = 1, sd = 1, power = 0.8)` (n = 16.71477 per arm, so 17) and statsmodels
    `tt_ind_solve_power`, small sizes included (Cohen 1988, "Statistical Power Analysis for the
    Behavioral Sciences", 2nd ed., ch. 2).

    >>> plan = sample_size(baseline_mean=10.0, baseline_std=20.0, mde=0.05)
    >>> plan.n_champion, plan.n_challenger, plan.n_total
    (25118, 25118, 50236)
    >>> sample_size(10.0, 20.0, 0.05, share=0.1).n_challenger
    13954
    """
    d = _effect_size(baseline_mean, baseline_std, mde)
    alpha, power, share = _levels(alpha, power, share)
    ratio = share / (1 - share)
    start = (_z(1 - alpha / 2) + _z(power)) ** 2 * (1 + 1 / ratio) / d**2
    n_a = _solve(lambda n: power_two_sample(d, n, n * ratio, alpha=alpha) - power, start, max(2.0, 2 / ratio))
    return _plan("two_sample_t", n_a, n_a * ratio, alpha, power, mde, share, d)


def sample_size_margin(
    baseline_mean: float,
    baseline_std: float,
    mde: float,
    *,
    margin: float = 0.01,
    alpha: float = 0.05,
    power: float = 0.8,
    share: float = 0.5,
) -> SampleSize:
    """Units per arm for the A/B decision rule (`ab_verdict`): superiority by `margin`, one-sided alpha.

    The rule's statistic t = (m_b - (1 - m) m_a) / sqrt(v_b + (1 - m)^2 v_a), at a true relative effect
    -mde with equal standard deviations in both arms, is noncentral t with
    ncp = -(mde - m) / (CV sqrt(1/n_b + (1 - m)^2/n_a)) (CV = baseline_std / baseline_mean) and the
    test's Welch df (of sigma^2/n_b and (1 - mde)^2 sigma^2/n_a). `power = P(T < -t_{1-alpha, df})` is
    solved for n_champion with n_challenger = n_champion s / (1 - s) (Brent's method, as statsmodels
    `solve_power` does), so small plans get the power they promise. For large n it is the closed form

        N = (z_{1-alpha} + z_{1-beta})^2 CV^2 (1/s + (1 - m)^2/(1 - s)) / (mde - m)^2,
        n_challenger = s N,  n_champion = (1 - s) N    (each rounded up)

    (Chow, Shao & Wang 2008, "Sample Size Calculations in Clinical Research", 2nd ed., section 3.2, with
    the ratio hypothesis written as the contrast m_b - (1 - m) m_a as in Hauschke, Kieser & Hothorn
    1999). A planned effect at or inside the margin cannot reach any power above alpha, so it is refused
    rather than silently planned.

    >>> plan = sample_size_margin(10.0, 20.0, mde=0.05, margin=0.01)
    >>> plan.n_champion, plan.n_challenger
    (30606, 30606)
    >>> sample_size_margin(10.0, 5.0, mde=0.3, margin=0.01).n_champion
    38
    """
    cv = _cv(baseline_mean, baseline_std)
    check.open_unit("mde", mde)
    alpha, power, share = _levels(alpha, power, share, alpha_below=0.5)
    margin = check.non_negative("margin", margin)
    if mde <= margin:
        raise ValueError(
            f"the planned effect (mde {mde}) must exceed the margin ({margin}): at the margin the rule wins "
            "with probability alpha whatever the sample size"
        )
    ratio = share / (1 - share)
    start = (_z(1 - alpha) + _z(power)) ** 2 * cv**2 * (1 / ratio + (1 - margin) ** 2) / (mde - margin) ** 2

    def shortfall(n_a: float) -> float:
        return _margin_power(n_a, n_a * ratio, cv, mde, margin, alpha) - power

    n_a = _solve(shortfall, start, max(2.0, 2 / ratio))
    return _plan("superiority_by_margin", n_a, n_a * ratio, alpha, power, mde, share, (mde - margin) / cv)


def _margin_power(n_a: float, n_b: float, cv: float, mde: float, margin: float, alpha: float) -> float:
    """Power of the margin rule's one-sided Welch-type test of the contrast (see `sample_size_margin`)."""
    ncp = -(mde - margin) / (cv * math.sqrt(1 / n_b + (1 - margin) ** 2 / n_a))
    df = satterthwaite(((1 - mde) ** 2 / n_a, n_a - 1), (1 / n_b, n_b - 1))
    return float(stats.nct.cdf(-stats.t.ppf(1 - alpha, df), df, ncp))


def sample_size_sequential(
    baseline_mean: float,
    baseline_std: float,
    mde: float,
    *,
    margin: float = 0.01,
    tau: float = 0.05,
    alpha: float = 0.05,
    power: float = 0.8,
    share: float = 0.5,
) -> SampleSize:
    """Units per arm at which the always-valid (mSPRT) A/B test has won by `margin` with at least
    probability `power`, looking as often as it likes.

    The sequential rule (`msprt`, as the controller runs it) wins at the first look where the upper end
    of the normal-mixture confidence sequence of the error difference is below -m x mean:
    theta_hat + h(V) < -m mu, with h(V) = sqrt(V (V + tau^2) / tau^2 (2 log(1/alpha) + log((V + tau^2) /
    V))) (Howard, Ramdas, McAuliffe & Sekhon 2021, Ann. Statist. 49(2)). In relative units, at a true
    effect -mde the challenger's errors are the champion's scaled by 1 - mde (so is their spread):
    theta_hat ~ N(-mde, V), V = CV^2 (1/n_a + (1 - mde)^2 / n_b), so a look at this size wins with

        P(win at n) = Phi((mde - m - h(V)) / sqrt(V)),

    solved for n_champion with n_challenger = n_champion s / (1 - s) (Brent's method). Every earlier
    look may have won already, so by this size the test has won at least this often: about 80-85 % at
    an 80 % plan with a look every few hours, in Brownian and per-user simulations (a crossing formula
    that counts the earlier looks, Siegmund 1985, plans ~8 % fewer units but promised more than a look
    every 6 h delivered). `tau` is the mixture scale as a fraction of `baseline_mean` (the policy's
    `ab_test.tau`). The width h(V) shrinks like sqrt(V log(1/V)), not sqrt(V): a sequential plan needs
    about twice the units of the fixed-horizon one (`sample_size_margin`) at the default policy.

    >>> plan = sample_size_sequential(10.0, 20.0, mde=0.05, margin=0.01, tau=0.05)
    >>> plan.n_champion, plan.n_challenger
    (73839, 73839)
    """
    cv = _cv(baseline_mean, baseline_std)
    check.open_unit("mde", mde)
    alpha, power, share = _levels(alpha, power, share, alpha_below=0.5)
    margin = check.non_negative("margin", margin)
    tau2 = check.positive("tau", tau) ** 2
    if mde <= margin:
        raise ValueError(
            f"the planned effect (mde {mde}) must exceed the margin ({margin}): at the margin the "
            "sequential rule wins with probability below alpha whatever the sample size"
        )
    ratio = share / (1 - share)
    z = _z(power)

    def shortfall(n_a: float) -> float:
        v = cv**2 * (1 / n_a + (1 - mde) ** 2 / (n_a * ratio))
        half = math.sqrt(v * (v + tau2) / tau2 * (2 * math.log(1 / alpha) + math.log((v + tau2) / v)))
        return (mde - margin - half) / math.sqrt(v) - z

    start = (_z(1 - alpha) + z) ** 2 * cv**2 * (1 + (1 - mde) ** 2 / ratio) / (mde - margin) ** 2
    n_a = _solve(shortfall, start, max(2.0, 2 / ratio))
    return _plan("msprt_by_margin", n_a, n_a * ratio, alpha, power, mde, share, (mde - margin) / cv)


def sample_size_paired(
    baseline_mean: float,
    baseline_std: float,
    mde: float,
    *,
    correlation: float,
    alpha: float = 0.05,
    power: float = 0.8,
    challenger_std: float | None = None,
) -> SampleSize:
    """Request pairs for the two-sided paired t-test on shadow data (both models score the same requests).

    sd of the differences: sigma_d^2 = sigma_a^2 + sigma_b^2 - 2 rho sigma_a sigma_b (= 2 sigma^2 (1 - rho)
    with equal sds), d = mde * baseline_mean / sigma_d, then solve `power_paired(d, n) = power`. Highly
    correlated errors (two models of the same target) make sigma_d small, hence far fewer samples than
    two independent arms. Matches R's `power.t.test(type = "paired")` and statsmodels `TTestPower`
    (Cohen 1988, "Statistical Power Analysis for the Behavioral Sciences", 2nd ed., ch. 2).

    >>> sample_size_paired(10.0, 20.0, 0.05, correlation=0.9).n_total
    2514
    """
    check.positive("baseline_std", baseline_std)
    rho = float(correlation)
    if not -1 < rho < 1:
        raise ValueError(f"correlation must be strictly between -1 and 1, got {correlation}")
    sigma_b = baseline_std if challenger_std is None else check.positive("challenger_std", challenger_std)
    variance = baseline_std**2 + sigma_b**2 - 2 * rho * baseline_std * sigma_b
    if variance <= 0:
        raise ValueError("the differences would have zero variance: lower the correlation")
    d = _effect_size(baseline_mean, math.sqrt(variance), mde)
    alpha, power, _ = _levels(alpha, power, 0.5)
    start = (_z(1 - alpha / 2) + _z(power)) ** 2 / d**2
    n = _solve(lambda size: power_paired(d, size, alpha=alpha) - power, start, 2.0)
    pairs = _round_up(n)
    return SampleSize("paired_t", pairs, pairs, pairs, alpha, power, mde, 1.0, d)


def _cv(baseline_mean: float, baseline_std: float) -> float:
    return check.positive("baseline_std", baseline_std) / check.positive("baseline_mean", baseline_mean)


def _effect_size(baseline_mean: float, baseline_std: float, mde: float) -> float:
    """Standardised effect d = mde * mean / std."""
    cv = _cv(baseline_mean, baseline_std)
    return check.open_unit("mde", mde) / cv


def _levels(
    alpha: float, power: float, share: float, *, alpha_below: float = 1.0
) -> tuple[float, float, float]:
    alpha = check.alpha_level(alpha, below=alpha_below)
    power = check.open_unit("power", power)
    if power <= alpha:
        raise ValueError(f"power must exceed alpha ({alpha}), got {power}")
    return alpha, power, check.open_unit("share", share)


def _z(p: float) -> float:
    return float(stats.norm.ppf(p))


def _solve(shortfall: Callable[[float], float], start: float, lowest: float) -> float:
    """n >= `lowest` with shortfall(n) = 0, shortfall increasing in n; `start`: the normal approximation."""
    if shortfall(lowest) >= 0:
        return lowest
    high = max(2 * start, lowest + 10)
    while shortfall(high) < 0:
        high *= 2
    return float(optimize.brentq(shortfall, lowest, high, xtol=1e-9, rtol=1e-12))


def _plan(
    method: str, n_a: float, n_b: float, alpha: float, power: float, mde: float, share: float, d: float
) -> SampleSize:
    a, b = _round_up(n_a), _round_up(n_b)
    return SampleSize(method, a, b, a + b, alpha, power, mde, share, d)


def _round_up(n: float) -> int:
    """Units are whole: round up, at least 2; a hair of tolerance keeps 63.0000000001 from becoming 64."""
    return max(2, math.ceil(n - 1e-7))
