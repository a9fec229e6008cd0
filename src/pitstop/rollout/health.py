"""Health triggers and their actions: each trigger fires a finding, and the policy's `health` section
says what it does, `rollback`, `hold` or `warn` (GrowthBook's health-action matrix).

The guardrails (error ratio, p99 latency, failure rate), the A/B test's sample-ratio mismatch and an
unloadable challenger are found where their phase checks them (`decide`); the three found here are a
user served by both arms, a phase without traffic, and labels that do not arrive. `HealthLook` turns
each finding into its action for one look: a rollback ends the rollout at once (rejected in shadow, and
for a sample-ratio mismatch, which shows a broken experiment rather than harm); a hold is remembered
and replaces any step or promotion the phase would make; a warning rides along with the decision.
While a rollout is held, nothing advances it, but every rollback still fires: harm may roll back at
any time, and doubt favours the champion.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from pitstop.config import HealthAction, Policy
from pitstop.durations import describe_span
from pitstop.formats import fmt_time
from pitstop.rollout.decision import Decision, HealthWarning
from pitstop.rollout.evidence import Evidence
from pitstop.rollout.phases import Action, Phase
from pitstop.rollout.state import Hold, RolloutState
from pitstop.rules import Rule

# The key of `health` that says what each rule's finding does.
TRIGGERS = {
    Rule.GUARDRAIL_ERROR_RATIO: "error_ratio",
    Rule.GUARDRAIL_LATENCY_P99: "latency_p99",
    Rule.GUARDRAIL_ERROR_RATE: "error_rate",
    Rule.AB_SRM: "srm",
    Rule.GUARDRAIL_UNAVAILABLE: "unavailable",
    Rule.SHADOW_UNAVAILABLE: "unavailable",
    Rule.HEALTH_BOTH_ARMS: "both_arms",
    Rule.HEALTH_NO_TRAFFIC: "no_traffic",
    Rule.HEALTH_LABEL_COVERAGE: "labels",
}
ENDINGS = (Action.REJECT, Action.ROLLBACK, Action.ABORT)
LIVE = (Phase.SHADOW, Phase.AB_TEST, Phase.RAMP)


class HealthLook:
    """One look's health findings, each acted on by its trigger's action in `policy.health`."""

    def __init__(self, rollout: RolloutState, policy: Policy) -> None:
        self.rollout, self.policy = rollout, policy
        self.hold: Decision | None = None  # the first finding whose action is hold
        self.warnings: list[HealthWarning] = []

    def action(self, rule: Rule) -> HealthAction:
        return self.policy.health.action(TRIGGERS[rule])

    def act(
        self, rule: Rule, reason: str, numbers: dict[str, Any], *, ended: str | None = None
    ) -> Decision | None:
        """The decision that ends the rollout when the trigger's action is rollback (`ended`: its
        reason, if not `reason`); None otherwise, the hold or warning kept for `finish`."""
        action = self.action(rule)
        found = {**numbers, "health_action": action.value}
        if action is HealthAction.ROLLBACK:
            rejects = self.rollout.phase is Phase.SHADOW or rule is Rule.AB_SRM
            return Decision(Action.REJECT if rejects else Action.ROLLBACK, rule, ended or reason, numbers)
        if action is HealthAction.HOLD:
            self.hold = self.hold or Decision(Action.HOLD, rule, reason, found)
        else:
            self.warnings.append(HealthWarning(rule, reason, found))
        return None

    def finish(self, decision: Decision) -> Decision:
        """The phase's decision after this look's findings: an ending stands; a held rollout stays
        held; a new hold replaces whatever else the phase would do; new warnings ride along."""
        held = self.rollout.hold
        if decision.action in ENDINGS:
            result = decision
        elif held is not None:
            result = held_decision(held, decision)
        elif self.hold is not None:
            result = replace(self.hold, memory=decision.memory)
        else:
            result = decision
        fresh: dict[Rule, HealthWarning] = {}
        for warning in self.warnings:
            if warning.rule not in self.rollout.warned:
                fresh.setdefault(warning.rule, warning)
        return replace(result, warnings=tuple(fresh.values())) if fresh else result


def held_decision(held: Hold, would: Decision) -> Decision:
    """STAY while held, saying since when and why, and what the look would otherwise have done."""
    return Decision(
        Action.STAY,
        Rule.HEALTH_HELD,
        f"held since {fmt_time(held.since)} by {held.rule}: {held.reason}; waiting for a person to "
        f"resume or roll back (otherwise this look would {would.action.value}: {would.rule})",
        {
            **would.numbers,
            "held_since": held.since.isoformat(),
            "held_rule": held.rule,
            "would_action": would.action.value,
            "would_rule": str(would.rule),
        },
        memory=would.memory,
    )


def check_health(
    rollout: RolloutState, policy: Policy, evidence: Evidence, now: datetime, look: HealthLook
) -> Decision | None:
    """Users in both arms, no traffic, missing labels: the ending one of them makes, if any."""
    if rollout.phase not in LIVE:
        return None
    for finding in (
        both_arms(rollout, policy, evidence),
        no_traffic(rollout, policy, evidence, now),
        label_coverage(policy, evidence),
    ):
        if finding is not None:
            ended = look.act(*finding)
            if ended is not None:
                return ended
    return None


Finding = tuple[Rule, str, dict[str, Any]]


def both_arms(rollout: RolloutState, policy: Policy, evidence: Evidence) -> Finding | None:
    """More than `max_both_arms_share` of the window's users were served by both arms. The hash is
    sticky within a routing table, so these users show a broken split: the arms are no longer
    comparable, though nothing shows the challenger harmful."""
    if rollout.phase not in (Phase.AB_TEST, Phase.RAMP) or evidence.both_arms_users == 0:
        return None
    both, limit = evidence.both_arms_users, policy.health.max_both_arms_share
    users = max(evidence.champion.units + evidence.challenger.units - both, both)
    share = both / users
    if share <= limit:
        return None
    return (
        Rule.HEALTH_BOTH_ARMS,
        f"{both} of {users} users ({share:.2%}) were served by both arms in this "
        f"{'step' if rollout.phase is Phase.RAMP else 'test'}, above the {limit:.2%} allowed: "
        "the split is broken, so the arms cannot be compared",
        {"both_arms_users": both, "users": users, "share": share, "limit": limit},
    )


def no_traffic(rollout: RolloutState, policy: Policy, evidence: Evidence, now: datetime) -> Finding | None:
    """No request served since the phase or step began, for longer than `no_traffic_after`."""
    elapsed, grace = now - rollout.phase_started_at, policy.health.no_traffic_after
    if evidence.served_requests > 0 or elapsed < grace:
        return None
    return (
        Rule.HEALTH_NO_TRAFFIC,
        f"no request served in {describe_span(elapsed)} of this {rollout.phase.value} "
        f"(grace {describe_span(grace)}): nothing can be decided without traffic",
        {
            "served_requests": 0,
            "elapsed_hours": elapsed.total_seconds() / 3600,
            "grace_hours": grace.total_seconds() / 3600,
        },
    )


def label_coverage(policy: Policy, evidence: Evidence) -> Finding | None:
    """Labels cover less than `min_label_coverage` of the served requests that are older than the
    label maturation (judged from `min_matured_requests` of them on)."""
    health, coverage = policy.health, evidence.label_coverage
    if coverage is None or evidence.matured_requests < health.min_matured_requests:
        return None
    if coverage >= health.min_label_coverage:
        return None
    maturation = policy.ab_test.label_maturation
    return (
        Rule.HEALTH_LABEL_COVERAGE,
        f"labels cover {coverage:.0%} of the {evidence.matured_requests} served requests older than "
        f"{describe_span(maturation)} ({evidence.matured_labelled} labelled), below the "
        f"{health.min_label_coverage:.0%} expected: error decisions wait for labels",
        {
            "matured_requests": evidence.matured_requests,
            "matured_labelled": evidence.matured_labelled,
            "coverage": coverage,
            "min_coverage": health.min_label_coverage,
        },
    )
