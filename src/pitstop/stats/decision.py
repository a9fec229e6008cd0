"""The A/B decision rule: superiority by a margin on the ratio of mean errors, one-sided at level alpha.

The challenger wins only if its mean error is lower than the champion's by more than the minimum
improvement m, with significance alpha. With rho = challenger mean / champion mean (r = rho - 1):

    H0: rho >= 1 - m   against   H1: rho < 1 - m,
    t = (m_b - (1 - m) m_a) / sqrt(v_b + (1 - m)^2 v_a),   win  <=>  t < -t_{1-alpha, df}

(v: squared standard errors of the arms' means, df: Welch-Satterthwaite of v_b and rho_hat^2 v_a). The
hypothesis on the ratio is a linear one on the means, so it is tested as the Welch test of the contrast
m_b - (1 - m) m_a: Fieller's approach (Fieller 1954, "Some problems in interval estimation", J. R. Stat.
Soc. B 16(2)), as Hauschke, Kieser & Hothorn (1999), "Proof of safety in toxicology based on the ratio
of two means for normally distributed data", Biometrical Journal 41(3), test a ratio-of-means margin with
unequal variances. Inverting it gives Fieller's interval for r; the rule wins exactly when the upper end
of its two-sided (1 - 2 alpha) interval lies below -m. Testing the ratio by its delta-method standard
error instead (`pitstop.stats.effect`) is anti-conservative in small samples: with 38 units per arm and
a coefficient of variation of 0.5, a true effect exactly at the margin won 6.7 % of 4000 simulated
experiments at alpha 0.05, Fieller's form 5 % (tests/stats/test_decision.py).

The practical significance is inside the hypothesis, not a second condition on the point estimate: the
rule "p < alpha against zero *and* r_hat < -m" wins only about half the time when the true effect is
exactly -m, so an experiment planned for 80 % power at that effect would silently have ~50 %. Here a
true effect of exactly -m wins with probability alpha, and the power analysis
(`pitstop.stats.power.sample_size_margin`) is done for this same statistic. One-sided at alpha because
the claim is one-directional; harm is the mirror test (the interval's lower end above 0), and the
sequential guardrail watches for it at every look. Superiority by a margin as in the ICH E9 guideline
and Chow, Shao & Wang (2008), "Sample Size Calculations in Clinical Research", 2nd ed., section 3.2.
"""

from __future__ import annotations

import math
from dataclasses import replace

from scipy import stats

from pitstop.stats import _checks as check
from pitstop.stats.arms import ArmEstimate
from pitstop.stats.results import Outcome, Verdict
from pitstop.stats.twosample import satterthwaite


def ab_verdict(
    champion: ArmEstimate,
    challenger: ArmEstimate,
    *,
    min_improvement: float = 0.01,
    alpha: float = 0.05,
    spread_under_null: bool = False,
) -> Verdict:
    """`win` (better by more than the margin), `loss` (significantly worse), or `inconclusive`.

    t = (m_b - (1 - m) m_a) / sqrt(v_b + (1 - m)^2 v_a) against Student's t (Welch df); win when
    t < -t_{1-alpha, df}, i.e. when Fieller's (1 - 2 alpha) interval of r = m_b / m_a - 1 lies below -m
    (Fieller 1954; Hauschke, Kieser & Hothorn 1999; the module says why). `p_value` is the one-sided
    p-value of "not better by more than the margin". If the champion's mean is not itself significantly
    above zero, Fieller's interval is unbounded and the verdict is `inconclusive`. Evaluate it once, at
    the planned sample size (fixed horizon); looking repeatedly needs `pitstop.stats.sequential.msprt`.

    `spread_under_null`: each arm's variance is at least what the other arm's spread per unit implies
    under the hypothesis each end of the interval tests (`spread_floor`); the rollout uses it, since
    on skewed per-user errors a small arm's own variance is too small exactly when its mean is.

    >>> from pitstop.stats.arms import arm_from_summary
    >>> verdict = ab_verdict(arm_from_summary(20_000, 10.0, 25.0), arm_from_summary(20_000, 9.7, 25.0))
    >>> verdict.outcome, round(verdict.relative_effect, 3), round(verdict.ci_high, 4)
    ('win', -0.03, -0.0219)
    >>> ab_verdict(arm_from_summary(20_000, 10.0, 25.0), arm_from_summary(20_000, 9.95, 25.0)).outcome
    'inconclusive'
    """
    alpha = check.alpha_level(alpha, below=0.5)
    margin = check.non_negative("min_improvement", min_improvement)
    if margin >= 1:
        raise ValueError(f"min_improvement must be below 1 (a relative error reduction), got {margin}")
    check.same_method(champion, challenger)
    if champion.mean <= 0:
        raise ValueError(f"the champion's mean error must be positive for a ratio, got {champion.mean}")
    check.some_variance(champion.variance + challenger.variance)
    ratio = challenger.mean / champion.mean
    # the win end tests rho = 1 - margin, the loss end rho = 1: each with its own arms' variances
    as_given = (champion, challenger)
    win_a, win_b = spread_floor(champion, challenger, 1 - margin) if spread_under_null else as_given
    loss_a, loss_b = spread_floor(champion, challenger, 1.0) if spread_under_null else as_given
    df = satterthwaite((ratio**2 * win_a.variance, win_a.df), (win_b.variance, win_b.df))
    critical = float(stats.t.ppf(1 - alpha, df))
    statistic = (challenger.mean - (1 - margin) * champion.mean) / math.sqrt(
        win_b.variance + (1 - margin) ** 2 * win_a.variance
    )
    high = _fieller(win_a, win_b, critical)[1]
    low = _fieller(loss_a, loss_b, critical)[0]
    outcome, reason = _judge(ratio - 1, low, high, margin, alpha)
    return Verdict(
        outcome=outcome,
        reason=reason,
        relative_effect=ratio - 1,
        ci_low=low,
        ci_high=high,
        confidence=1 - 2 * alpha,
        margin=margin,
        alpha=alpha,
        statistic=statistic,
        p_value=float(stats.t.cdf(statistic, df)),
        df=df,
        method=champion.method,
        n_champion=champion.n,
        n_challenger=challenger.n,
    )


def spread_floor(
    champion: ArmEstimate, challenger: ArmEstimate, rho: float
) -> tuple[ArmEstimate, ArmEstimate]:
    """Both arms with variances at least what the other arm's spread implies if challenger = rho x champion.

    The arms hold the same randomised population, so under the hypothesis rho the challenger's spread per
    unit is rho times the champion's: v_b >= rho^2 v_a n_a / n_b and v_a >= v_b n_b / (rho^2 n_a). On
    skewed per-user errors (a few heavy users) a small arm that happens to lack them has a low mean *and*
    a low variance, so its own variance alone wins too often; the other arm's spread does not move with
    its mean. Like the score test's variance under the null; the floor only ever widens the interval.

    >>> from pitstop.stats.arms import arm_from_summary
    >>> a, b = spread_floor(arm_from_summary(900, 10.0, 100.0), arm_from_summary(100, 9.0, 25.0), 0.99)
    >>> round(a.variance, 5), round(b.variance, 5)
    (0.11111, 0.9801)
    """
    implied_b = rho**2 * champion.variance * champion.n / challenger.n
    implied_a = challenger.variance * challenger.n / (rho**2 * champion.n)
    return (
        replace(champion, variance=max(champion.variance, implied_a)),
        replace(challenger, variance=max(challenger.variance, implied_b)),
    )


def _fieller(champion: ArmEstimate, challenger: ArmEstimate, critical: float) -> tuple[float, float]:
    """Fieller's interval of r = m_b / m_a - 1: the rho with (m_b - rho m_a)^2 <= t^2 (v_b + rho^2 v_a).

    The roots of rho^2 (m_a^2 - t^2 v_a) - 2 rho m_a m_b + (m_b^2 - t^2 v_b) = 0; unbounded (reported as
    -inf to inf) unless m_a^2 > t^2 v_a, i.e. unless the champion's mean is significantly above zero.
    """
    t2 = critical**2
    a = champion.mean**2 - t2 * champion.variance
    if a <= 0:
        return -math.inf, math.inf
    b = champion.mean * challenger.mean
    root = math.sqrt(t2 * (challenger.variance * a + challenger.mean**2 * champion.variance))
    return (b - root) / a - 1, (b + root) / a - 1


def _judge(effect: float, low: float, high: float, margin: float, alpha: float) -> tuple[Outcome, str]:
    seen = f"challenger error {effect:+.2%} vs champion ({1 - 2 * alpha:.0%} CI {low:+.2%} to {high:+.2%})"
    if high < -margin:
        return "win", f"{seen}: lower by more than the {margin:.2%} margin"
    if low > 0:
        return "loss", f"{seen}: significantly higher"
    if high < 0:
        return (
            "inconclusive",
            f"{seen}: lower, but not shown to be lower by more than the {margin:.2%} margin",
        )
    if low > -margin:
        return "inconclusive", f"{seen}: cannot be lower by more than the {margin:.2%} margin"
    return "inconclusive", f"{seen}: not enough evidence either way"
