"""What a phase's rules read of the evidence, so a look runs only those queries (issue 21).

Every look reads each arm's counts, errors and latency, and the champion's latency since the rollout
began (the p99 baseline of every phase). The rest is read by some phases' rules only:

- paired errors (`Evidence.paired`): the shadow's verdict and the A/B plan made from it
  (`decide_shadow`, `planning.plan_ab_test`);
- each pair's difference: the shadow's secondary Wilcoxon test (`shadow.test: wilcoxon`), recorded
  with the verdict (`comparison.paired_test`);
- distinct users over time (`users_seen`): the A/B plan's supply of users, for `ab_test.method:
  per_user` (`planning.unit_supply`);
- each user's mean error: the A/B test's Mann-Whitney verdict (`decide._mann_whitney_verdict`);
- users served by both arms: the A/B test and the ramp (`health.both_arms`);
- label coverage: every live phase, when `health.min_label_coverage` > 0 (`health.label_coverage`).

At a 100 % ramp step the old champion runs in shadow, but the ramp compares it by its own errors
(`comparison.compared_arms`), not by pairs: no ramp rule reads `paired`. A test runs the real `decide`
on evidence with and without the skipped queries, for every phase (tests/rollout/test_reads.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from pitstop.config import ABMethod, Policy
from pitstop.rollout.phases import Phase


@dataclass(frozen=True)
class Reads:
    """The evidence queries a look runs beyond the arms' summaries (each False: not run, its field
    of `Evidence` stays empty)."""

    paired: bool = False
    differences: bool = False  # each pair's difference, in time order (needs `paired`)
    user_curve: bool = False
    user_means: bool = False
    both_arms: bool = False
    label_coverage: bool = False


EVERYTHING = Reads(True, True, True, True, True, True)


def phase_reads(phase: Phase, policy: Policy) -> Reads:
    """The queries whose results the rules of `phase` read under `policy`."""
    coverage = policy.health.min_label_coverage > 0  # at 0 no coverage is below it: the trigger is off
    if phase is Phase.SHADOW:
        return Reads(
            paired=True,
            differences=policy.shadow.test != "paired_t",
            user_curve=policy.ab_test.method is ABMethod.PER_USER,
            label_coverage=coverage,
        )
    if phase is Phase.AB_TEST:
        mann_whitney = policy.ab_test.method is ABMethod.MANN_WHITNEY
        return Reads(user_means=mann_whitney, both_arms=True, label_coverage=coverage)
    if phase is Phase.RAMP:
        return Reads(both_arms=True, label_coverage=coverage)
    return Reads()
