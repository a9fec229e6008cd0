"""Statistics for the shadow and A/B decisions: pure functions over numbers, no store, no clock, no I/O.

One topic per module: `arms` (an arm's mean error and its variance, per user or per request),
`twosample` (per-user delta-method, Welch, Mann-Whitney), `effect` (relative effect), `decision` (the
A/B superiority-by-margin rule), `power` (sample sizes), `paired` (shadow: paired t, Wilcoxon,
Diebold-Mariano), `srm` (sample-ratio mismatch), `failures` (failure rates against the champion's),
`exceedance` (a quantile against a limit, always valid: the latency guardrail),
`sequential` (mSPRT, confidence sequences), `ratio` (shadow verdict: the per-user error ratio and its
always-valid bound), `population` (how many distinct users a model will see), `cuped`.
Errors are losses (lower is better); every difference and relative effect is challenger minus champion.
"""

from __future__ import annotations

from pitstop.stats.arms import (
    ArmEstimate,
    arm_from_errors,
    arm_from_summary,
    arm_from_user_moments,
    arm_from_users,
)
from pitstop.stats.cuped import CupedResult, cuped
from pitstop.stats.decision import ab_verdict
from pitstop.stats.effect import paired_relative_effect, relative_components, relative_effect
from pitstop.stats.exceedance import exceedance_test, quantile_upper_rank
from pitstop.stats.failures import failure_rate_test
from pitstop.stats.paired import (
    compare_paired,
    diebold_mariano_test,
    paired_t_from_summary,
    paired_t_test,
    wilcoxon_test,
)
from pitstop.stats.population import UserCurve, fit_user_curve
from pitstop.stats.power import (
    power_paired,
    power_two_sample,
    sample_size,
    sample_size_margin,
    sample_size_paired,
    sample_size_sequential,
)
from pitstop.stats.ratio import log_ratio_variance, paired_ratio_sequence
from pitstop.stats.results import SampleSize, SRMResult, TestResult, Verdict
from pitstop.stats.sequential import always_valid_p_values, confidence_sequence, log_likelihood_ratio, msprt
from pitstop.stats.srm import sample_ratio_mismatch, sequential_sample_ratio_mismatch
from pitstop.stats.twosample import (
    UserErrors,
    compare_arms,
    mann_whitney_test,
    mean_difference,
    per_user_test,
    welch_test,
)

__all__ = [
    "ArmEstimate",
    "CupedResult",
    "SRMResult",
    "SampleSize",
    "TestResult",
    "UserCurve",
    "UserErrors",
    "Verdict",
    "ab_verdict",
    "always_valid_p_values",
    "arm_from_errors",
    "arm_from_summary",
    "arm_from_user_moments",
    "arm_from_users",
    "compare_arms",
    "compare_paired",
    "confidence_sequence",
    "cuped",
    "diebold_mariano_test",
    "exceedance_test",
    "failure_rate_test",
    "fit_user_curve",
    "log_likelihood_ratio",
    "log_ratio_variance",
    "mann_whitney_test",
    "mean_difference",
    "msprt",
    "paired_ratio_sequence",
    "paired_relative_effect",
    "paired_t_from_summary",
    "paired_t_test",
    "per_user_test",
    "power_paired",
    "power_two_sample",
    "quantile_upper_rank",
    "relative_components",
    "relative_effect",
    "sample_ratio_mismatch",
    "sample_size",
    "sample_size_margin",
    "sample_size_paired",
    "sample_size_sequential",
    "sequential_sample_ratio_mismatch",
    "welch_test",
    "wilcoxon_test",
]
