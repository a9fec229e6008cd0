"""Health triggers by actions through the pure `decide`: rollback ends the rollout, hold freezes it
(and a held rollout never advances, though harm still rolls it back), warn goes on with a warning."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pitstop.config import Policy
from pitstop.rollout.decide import decide
from pitstop.rollout.evidence import ArmSummary, Evidence
from pitstop.rollout.phases import Action, Phase
from pitstop.rollout.state import Hold, StepApproval
from pitstop.rules import Rule
from pitstop.store.load_failures import LoadFailure
from rollout.test_decide import PLAN, START, arm, at, ramp_evidence, rollout, shadow_evidence

POLICY = Policy()


def policy(**health: Any) -> Policy:
    return Policy.model_validate({"health": health})


HELD = Hold(START + timedelta(minutes=30), "health.both_arms", "3 of 900 users were served by both arms")

# (trigger key, phase, evidence, rule): each finding on its own, the rest of the evidence healthy
GOOD_RAMP = ramp_evidence(2, arm(700, 5.0), arm(300, 4.8))  # steps at the next look when healthy


def unavailable(hours: float) -> tuple[LoadFailure, ...]:
    return (LoadFailure(1, 2, "challenger", "ModuleNotFoundError: no x", START, at(hours), 5, "gw-1"),)


FINDINGS = {
    "error_ratio": (ramp_evidence(2, arm(700, 5.0), arm(300, 6.0)), Rule.GUARDRAIL_ERROR_RATIO),
    "error_rate": (ramp_evidence(2, arm(700, 5.0), arm(300, 4.8, failures=40)), Rule.GUARDRAIL_ERROR_RATE),
    "latency_p99": (
        ramp_evidence(2, arm(700, 5.0, p99=10), arm(300, 4.8, p99=20.5)),
        Rule.GUARDRAIL_LATENCY_P99,
    ),
    "unavailable": (replace(GOOD_RAMP, load_failures=unavailable(2)), Rule.GUARDRAIL_UNAVAILABLE),
    "both_arms": (replace(GOOD_RAMP, both_arms_users=3), Rule.HEALTH_BOTH_ARMS),
    "labels": (replace(GOOD_RAMP, matured_requests=1000, matured_labelled=300), Rule.HEALTH_LABEL_COVERAGE),
}


@pytest.mark.parametrize("trigger", sorted(FINDINGS))
def test_a_finding_whose_action_is_rollback_rolls_back(trigger: str) -> None:
    evidence, rule = FINDINGS[trigger]
    decision = decide(rollout(Phase.RAMP, step=0), policy(**{trigger: "rollback"}), evidence, at(2))
    assert (decision.action, decision.rule) == (Action.ROLLBACK, rule), decision.reason


@pytest.mark.parametrize("trigger", sorted(FINDINGS))
def test_a_finding_whose_action_is_hold_holds_instead_of_stepping(trigger: str) -> None:
    evidence, rule = FINDINGS[trigger]
    decision = decide(rollout(Phase.RAMP, step=0), policy(**{trigger: "hold"}), evidence, at(2))
    assert (decision.action, decision.rule) == (Action.HOLD, rule), decision.reason
    assert decision.numbers["health_action"] == "hold"


@pytest.mark.parametrize("trigger", sorted(FINDINGS))
def test_a_finding_whose_action_is_warn_goes_on_with_one_warning(trigger: str) -> None:
    evidence, rule = FINDINGS[trigger]
    decision = decide(rollout(Phase.RAMP, step=0), policy(**{trigger: "warn"}), evidence, at(2))
    assert (decision.action, decision.rule) == (Action.ADVANCE, Rule.RAMP_STEP), decision.reason
    assert [w.rule for w in decision.warnings] == [rule]
    already = replace(rollout(Phase.RAMP, step=0), warned=frozenset({str(rule)}))
    assert decide(already, policy(**{trigger: "warn"}), evidence, at(2)).warnings == ()


def test_the_default_actions_roll_back_harm_hold_a_broken_split_and_warn_of_the_rest() -> None:
    health = POLICY.health
    harm = (health.error_ratio, health.latency_p99, health.error_rate, health.unavailable, health.srm)
    assert {action.value for action in harm} == {"rollback"}
    assert (health.both_arms.value, health.no_traffic.value, health.labels.value) == ("hold", "warn", "warn")


def test_a_healthy_look_has_no_warnings_and_steps() -> None:
    decision = decide(rollout(Phase.RAMP, step=0), POLICY, GOOD_RAMP, at(2))
    assert (decision.action, decision.warnings) == (Action.ADVANCE, ())


def test_a_held_rollout_stays_held_saying_since_when_and_why() -> None:
    held = replace(rollout(Phase.RAMP, step=0), hold=HELD)
    decision = decide(held, POLICY, GOOD_RAMP, at(2))
    assert (decision.action, decision.rule) == (Action.STAY, Rule.HEALTH_HELD)
    assert "2026-01-01T00:30:00Z" in decision.reason and "both arms" in decision.reason
    assert decision.numbers["would_action"] == "advance"


def test_a_held_rollout_at_full_share_is_never_promoted() -> None:
    final = ramp_evidence(1.5, ArmSummary(), arm(1000, 4.8), shadow=arm(1000, 5.0))
    held = replace(rollout(Phase.RAMP, step=2), hold=HELD)
    assert decide(rollout(Phase.RAMP, step=2), POLICY, final, at(1.5)).action is Action.PROMOTE
    assert decide(held, POLICY, final, at(1.5)).action is Action.STAY


def test_harm_still_rolls_back_a_held_rollout() -> None:
    held = replace(rollout(Phase.RAMP, step=0), hold=HELD)
    evidence, _ = FINDINGS["error_ratio"]
    decision = decide(held, POLICY, evidence, at(2))
    assert (decision.action, decision.rule) == (Action.ROLLBACK, Rule.GUARDRAIL_ERROR_RATIO)


def test_a_hold_does_not_hide_harm_found_at_the_same_look() -> None:
    evidence = replace(FINDINGS["error_ratio"][0], both_arms_users=3)
    decision = decide(rollout(Phase.RAMP, step=0), POLICY, evidence, at(2))
    assert (decision.action, decision.rule) == (Action.ROLLBACK, Rule.GUARDRAIL_ERROR_RATIO)


def test_srm_rejects_by_default_and_holds_when_asked() -> None:
    evidence = Evidence(now=at(30), champion=arm(900, 5.0), challenger=arm(160, 4.0), window_hours=30)
    state = rollout(Phase.AB_TEST, plan=PLAN)
    assert decide(state, POLICY, evidence, at(30)).action is Action.REJECT
    held = decide(state, policy(srm="hold"), evidence, at(30))
    assert (held.action, held.rule) == (Action.HOLD, Rule.AB_SRM)
    warned = decide(state, policy(srm="warn"), evidence, at(30))
    assert warned.action is not Action.HOLD and [w.rule for w in warned.warnings] == [Rule.AB_SRM]


def test_in_shadow_rollback_means_rejected() -> None:
    evidence = replace(shadow_evidence(25), load_failures=unavailable(25))
    decision = decide(rollout(Phase.SHADOW), POLICY, evidence, at(25))
    assert (decision.action, decision.rule) == (Action.REJECT, Rule.SHADOW_UNAVAILABLE)
    held = decide(rollout(Phase.SHADOW), policy(unavailable="hold"), evidence, at(25))
    assert (held.action, held.rule) == (Action.HOLD, Rule.SHADOW_UNAVAILABLE)
    no_labels = replace(shadow_evidence(25), matured_requests=1000, matured_labelled=10)
    ended = decide(rollout(Phase.SHADOW), policy(labels="rollback"), no_labels, at(25))
    assert (ended.action, ended.rule) == (Action.REJECT, Rule.HEALTH_LABEL_COVERAGE)


def test_no_traffic_warns_after_its_grace_only() -> None:
    empty = Evidence(now=at(30))
    early = decide(rollout(Phase.SHADOW), POLICY, replace(empty, now=at(23)), at(23))
    assert early.warnings == ()
    late = decide(rollout(Phase.SHADOW), POLICY, empty, at(30))
    assert [w.rule for w in late.warnings] == [Rule.HEALTH_NO_TRAFFIC]
    assert late.action is Action.STAY
    held = decide(rollout(Phase.SHADOW), policy(no_traffic="hold"), empty, at(30))
    assert (held.action, held.rule) == (Action.HOLD, Rule.HEALTH_NO_TRAFFIC)


def test_label_coverage_is_judged_only_on_enough_matured_requests() -> None:
    few = replace(GOOD_RAMP, matured_requests=99, matured_labelled=0)
    assert decide(rollout(Phase.RAMP, step=0), POLICY, few, at(2)).warnings == ()
    covered = replace(GOOD_RAMP, matured_requests=1000, matured_labelled=500)
    assert decide(rollout(Phase.RAMP, step=0), POLICY, covered, at(2)).warnings == ()


def test_users_in_both_arms_within_the_allowed_share_are_no_finding() -> None:
    allowing = policy(max_both_arms_share=0.01)
    few = replace(GOOD_RAMP, both_arms_users=5)  # 5 of 995 users
    assert decide(rollout(Phase.RAMP, step=0), allowing, few, at(2)).action is Action.ADVANCE
    many = replace(GOOD_RAMP, both_arms_users=20)
    assert decide(rollout(Phase.RAMP, step=0), allowing, many, at(2)).action is Action.HOLD


@settings(max_examples=60, deadline=None)
@given(
    trigger=st.sampled_from(sorted(FINDINGS)),
    action=st.sampled_from(["rollback", "hold", "warn"]),
    held=st.booleans(),
    step=st.sampled_from([0, 2]),
)
def test_a_held_rollout_is_never_advanced_or_promoted_and_rollback_always_ends_it(
    trigger: str, action: str, held: bool, step: int
) -> None:
    evidence, rule = FINDINGS[trigger]
    if step == 2:  # at 100 %: the champion in shadow
        evidence = replace(evidence, shadow=evidence.champion, champion=ArmSummary())
    state = replace(rollout(Phase.RAMP, step=step), hold=HELD if held else None)
    decision = decide(state, policy(**{trigger: action}), evidence, at(2))
    if held:
        assert decision.action not in (Action.ADVANCE, Action.PROMOTE, Action.HOLD)
    if action == "rollback" and decision.rule == rule:
        assert decision.action is Action.ROLLBACK


# -- step gates ---------------------------------------------------------------------------------------

GATED = Policy.model_validate(
    {"ramp": {"gates": {25: {"approval": True, "min_labelled_users": 500, "min_duration": "3h"}}}}
)


def test_a_step_gate_lengthens_the_dwell() -> None:
    decision = decide(rollout(Phase.RAMP, step=0), GATED, GOOD_RAMP, at(2))
    assert (decision.action, decision.rule) == (Action.STAY, Rule.RAMP_DWELL)
    assert decision.reason == "at 25% for 2.0h of 3.0h"
    assert decision.numbers["gate"]["min_labelled_users"] == 500


def test_a_step_gate_waits_for_labelled_users_per_arm() -> None:
    few = ramp_evidence(4, arm(700, 5.0), arm(300, 4.8))
    decision = decide(rollout(Phase.RAMP, step=0), GATED, few, at(4))
    assert (decision.action, decision.rule) == (Action.STAY, Rule.RAMP_MIN_USERS)
    assert "300 challenger" in decision.reason


def test_a_step_gate_waits_for_approval_then_steps() -> None:
    enough = ramp_evidence(4, arm(700, 5.0), arm(600, 4.8))
    waiting = decide(rollout(Phase.RAMP, step=0), GATED, enough, at(4))
    assert (waiting.action, waiting.rule) == (Action.STAY, Rule.RAMP_APPROVAL)
    approval = StepApproval(0, 0.25, "ana", at(3), "dashboards look fine")
    approved = replace(rollout(Phase.RAMP, step=0), approvals=(approval,))
    decision = decide(approved, GATED, enough, at(4))
    assert (decision.action, decision.rule) == (Action.ADVANCE, Rule.RAMP_STEP)
    assert decision.numbers["gate"]["approved_by"] == "ana"


def test_an_approval_of_another_step_does_not_count() -> None:
    enough = ramp_evidence(4, arm(700, 5.0), arm(600, 4.8))
    other = replace(rollout(Phase.RAMP, step=0), approvals=(StepApproval(1, 0.5, "ana", at(3), "x"),))
    assert decide(other, GATED, enough, at(4)).rule == Rule.RAMP_APPROVAL


def test_a_step_without_a_gate_decides_as_before() -> None:
    decision = decide(rollout(Phase.RAMP, step=1), GATED, GOOD_RAMP, at(2))
    assert (decision.action, decision.rule) == (Action.ADVANCE, Rule.RAMP_STEP)
    assert "gate" not in decision.numbers


def test_gates_keep_today_s_policy_files_working_and_name_a_wrong_step() -> None:
    assert Policy.model_validate({"ramp": {"steps": [10, 25, 50, 100]}}).ramp.gates == {}
    with pytest.raises(ValueError, match=r"gates\.60: no such step"):
        Policy.model_validate({"ramp": {"gates": {60: {"approval": True}}}})
    with pytest.raises(ValueError, match=r"ramp\.gates\.10: not a ramp step"):
        Policy.model_validate({"ramp": {"gates": {10: {"approval": True}}}})
    stored = GATED.model_dump(mode="json")  # as a rollout stores its policy: keys become text
    assert Policy.model_validate(stored) == GATED
