"""The A/B decision rule: superiority by a margin on the relative error, one-sided at level alpha.

The challenger wins only if its mean error is lower than the champion's by more than the minimum
improvement m, with significance alpha:

    H0: r >= -m   against   H1: r < -m,      r = challenger mean / champion mean - 1,
    t = (r_hat + m) / se(r_hat)  (delta method, `pitstop.stats.effect`),  win  <=>  t < -t_{1-alpha, df}

equivalently the upper end of the two-sided (1 - 2 alpha) interval lies below -m. The practical
significance is inside the hypothesis, not a second condition on the point estimate: the rule "p < alpha
against zero *and* r_hat < -m" wins only about half the time when the true effect is exactly -m, so an
experiment planned for 80 % power at that effect would silently have ~50 %. Here the size of the test is
alpha at the margin (a true effect of exactly -m wins with probability alpha), and its power analysis
(`pitstop.stats.power.sample_size_margin`) uses the same statistic: power 1 - beta at a planned effect
-mde < -m needs N = (z_{1-alpha} + z_{1-beta})^2 CV^2 (1/s + (1 - mde)^2/(1 - s)) / (mde - m)^2 units.
One-sided at alpha because the claim is one-directional; harm is the mirror test (the lower end above 0),
and the sequential guardrail watches for it at every look. Source: superiority-by-margin testing as in
the ICH E9 guideline and Chow, Shao & Wang (2008), "Sample Size Calculations in Clinical Research",
2nd ed., section 3.2.
"""

from __future__ import annotations

from scipy import stats

from pitstop.stats import _checks as check
from pitstop.stats.arms import ArmEstimate
from pitstop.stats.effect import relative_components
from pitstop.stats.results import Outcome, Verdict


def ab_verdict(
    champion: ArmEstimate, challenger: ArmEstimate, *, min_improvement: float = 0.01, alpha: float = 0.05
) -> Verdict:
    """`win` (better by more than the margin), `loss` (significantly worse), or `inconclusive`.

    See the module for the rule and why. Evaluate it once, at the planned sample size (fixed horizon);
    looking repeatedly needs the sequential test (`pitstop.stats.sequential`).

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
    effect, se, df = relative_components(champion, challenger)
    statistic = (effect + margin) / se
    half_width = float(stats.t.ppf(1 - alpha, df)) * se
    low, high = effect - half_width, effect + half_width
    outcome, reason = _judge(effect, low, high, margin, alpha)
    return Verdict(
        outcome=outcome,
        reason=reason,
        relative_effect=effect,
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
