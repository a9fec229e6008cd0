"""Holds, resumes, warnings and approvals against a real store (SQLite and PostgreSQL), with the
controller on a manual clock: what is recorded, what routing does, and the health evidence's SQL."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest

from pitstop.clock import ManualClock
from pitstop.errors import ConflictError, NotFoundError, UsageError
from pitstop.events import EventKind
from pitstop.registry import Task
from pitstop.rollout.controller import Controller
from pitstop.rollout.gather import Window, gather_evidence
from pitstop.rollout.phases import Outcome, Phase
from pitstop.rollout.reads import EVERYTHING
from pitstop.routing.store import routing_of
from pitstop.rules import Rule
from pitstop.serving.labels import Label, upsert_labels
from pitstop.serving.predlog import write_records
from pitstop.store.predictions.write import PredictionRecord
from pitstop.workspace import Workspace
from rollout.conftest import START, send_traffic

GATED_POLICY = """
shadow: {min_duration: 1h, max_duration: 6h, min_labeled: 60, max_p99_ratio: 10}
ab_test: {share: 0.5, min_duration: 1h, max_duration: 8h, label_maturation: 15m, tau: 0.1,
  min_users_per_arm: 20}
guardrails: {min_samples: 30, max_p99_ratio: 10}
ramp: {steps: [50, 75, 100], dwell: 30m, min_labeled_per_arm: 30, standby: 2h,
  gates: {75: {approval: true}}}
"""


def clock(ws: Workspace) -> ManualClock:
    assert isinstance(ws.clock, ManualClock)
    return ws.clock


def to_ramp(ws: Workspace) -> int:
    """A rollout of v2 moved by hand to its first ramp step (75 %); its routing version."""
    ws.start_rollout("eta", 2, skip_gate=True, reason="test")
    ws.promote("eta", reason="to the A/B test")
    ws.promote("eta", reason="to the ramp")
    state = ws.rollouts("eta")[-1].state
    assert (state.phase, state.step) == (Phase.RAMP, 0)
    return state.phase_routing_version


def served(ws: Workspace, routing: int, users: list[tuple[str, str]], *, minutes: float = 1) -> list[str]:
    """One served request per (user, arm), `minutes` after the clock's now, under `routing`: their ids."""
    model_id, time = ws.model("eta").id, (clock(ws).now() + timedelta(minutes=minutes)).timestamp()
    ids = [f"r{next(REQUEST_IDS)}" for _ in users]
    records = [
        PredictionRecord(
            model_id,
            rid,
            user,
            time,
            2 if arm == "challenger" else 1,
            arm,
            "served",
            routing,
            "user",
            1.0,
            2.0,
            None,
        )
        for rid, (user, arm) in zip(ids, users, strict=True)
    ]
    write_records(ws.engine, records)
    return ids


REQUEST_IDS = itertools.count()


def events(ws: Workspace, kind: EventKind) -> list[tuple[str | None, str | None, str | None]]:
    return [(e.from_state, e.to_state, e.rule) for e in ws.events("eta") if e.kind == kind]


def test_users_in_both_arms_and_label_coverage_come_from_the_window(rollout_ws: Workspace) -> None:
    model_id = rollout_ws.model("eta").id
    window_ids = served(
        rollout_ws, 5, [("u1", "champion"), ("u1", "challenger"), ("u2", "champion"), ("u3", "challenger")]
    )
    served(rollout_ws, 4, [("u2", "challenger")])  # an earlier routing version: not this window
    served(rollout_ws, 5, [("u4", "champion")], minutes=50)  # too recent for its label to be due
    with rollout_ws.writing() as conn:
        upsert_labels(conn, model_id, [Label(window_ids[0], 1.0)], received_at=START)
    now = START + timedelta(hours=1)
    window = Window(model_id, Task.REGRESSION, 5, START, now, coverage_before=now - timedelta(minutes=15))
    with rollout_ws.reading() as conn:
        evidence = gather_evidence(conn, window, EVERYTHING)
    assert evidence.both_arms_users == 1
    assert (evidence.matured_requests, evidence.matured_labelled) == (4, 1)
    assert evidence.label_coverage == pytest.approx(0.25)


def test_a_hold_freezes_the_share_and_is_recorded_once(rollout_ws: Workspace) -> None:
    routing = to_ramp(rollout_ws)
    table = routing_of(rollout_ws, "eta")
    served(rollout_ws, routing, [("a", "champion"), ("a", "challenger"), ("b", "champion")])
    clock(rollout_ws).advance(timedelta(minutes=5))
    controller = Controller(rollout_ws)
    [result] = controller.tick()
    assert (result.decision.rule, result.applied) == (Rule.HEALTH_BOTH_ARMS, True)
    state = rollout_ws.rollouts("eta")[-1].state
    assert state.hold is not None and state.hold.rule == "health.both_arms"
    assert state.hold.since == clock(rollout_ws).now()
    assert events(rollout_ws, EventKind.ROLLOUT_HELD) == [("ramp 75%", "ramp 75% held", "health.both_arms")]
    assert routing_of(rollout_ws, "eta") == table  # no routing change
    clock(rollout_ws).advance(timedelta(hours=2))
    [again] = controller.tick()
    assert again.decision.rule == Rule.HEALTH_HELD and "held since" in again.decision.reason
    assert len(events(rollout_ws, EventKind.ROLLOUT_HELD)) == 1
    assert rollout_ws.rollout_status("eta").rollout.state.step == 0


def test_resume_clears_the_hold_with_a_fresh_evidence_window(rollout_ws: Workspace) -> None:
    routing = to_ramp(rollout_ws)
    served(rollout_ws, routing, [("a", "champion"), ("a", "challenger")])
    clock(rollout_ws).advance(timedelta(minutes=5))
    Controller(rollout_ws).tick()
    before = routing_of(rollout_ws, "eta")
    clock(rollout_ws).advance(timedelta(minutes=30))
    with pytest.raises(UsageError, match="reason"):
        rollout_ws.resume("eta", reason=" ")
    stored = rollout_ws.resume("eta", reason="client fixed", actor="ana")
    state = stored.state
    assert state.hold is None and state.phase_started_at == clock(rollout_ws).now()
    after = routing_of(rollout_ws, "eta")
    assert before is not None and after is not None
    assert after.version == state.phase_routing_version == before.version + 1
    assert after.routes == before.routes and after.challenger_share == 0.75  # nobody changes arm
    [resumed] = [e for e in rollout_ws.events("eta") if e.kind == EventKind.ROLLOUT_RESUMED]
    assert (resumed.from_state, resumed.to_state, resumed.actor) == ("ramp 75% held", "ramp 75%", "ana")
    assert resumed.rule == "manual.resume" and resumed.data["rule"] == "health.both_arms"
    [result] = Controller(rollout_ws).tick()  # the users in both arms are in the old window
    assert result.decision.rule != Rule.HEALTH_BOTH_ARMS
    with pytest.raises(ConflictError, match="not held"):
        rollout_ws.resume("eta", reason="again")


def test_a_held_rollout_can_be_rolled_back_but_not_promoted(rollout_ws: Workspace) -> None:
    routing = to_ramp(rollout_ws)
    served(rollout_ws, routing, [("a", "champion"), ("a", "challenger")])
    clock(rollout_ws).advance(timedelta(minutes=5))
    Controller(rollout_ws).tick()
    with pytest.raises(ConflictError, match="held since"):
        rollout_ws.promote("eta", reason="ship it")
    stored = rollout_ws.rollback("eta", reason="not worth it")
    assert stored.state.outcome is Outcome.ROLLED_BACK
    last = [e for e in rollout_ws.events("eta") if e.kind == EventKind.ROLLOUT_TRANSITION][-1]
    assert (last.from_state, last.to_state, last.rule) == ("ramp 75% held", "rolled_back", "manual.rollback")


def test_a_warning_is_recorded_once_per_step(rollout_ws: Workspace) -> None:
    routing = to_ramp(rollout_ws)
    served(rollout_ws, routing, [(f"u{i}", "champion" if i % 4 else "challenger") for i in range(120)])
    clock(rollout_ws).advance(timedelta(minutes=20))  # their labels were due 15 minutes on: none came
    controller = Controller(rollout_ws)
    for _ in range(3):
        controller.tick()
        clock(rollout_ws).advance(timedelta(minutes=1))
    warnings = [e for e in rollout_ws.events("eta") if e.kind == EventKind.ROLLOUT_WARNING]
    assert [(e.rule, e.to_state) for e in warnings] == [("health.label_coverage", "ramp 75%")]
    assert warnings[0].data["coverage"] == 0 and warnings[0].data["matured_requests"] == 120
    assert rollout_ws.rollouts("eta")[-1].state.hold is None  # warn goes on


@pytest.mark.parametrize("policy_yaml", [GATED_POLICY], ids=["approval-at-75"])
def test_approve_records_who_and_when_for_the_current_step(rollout_ws: Workspace) -> None:
    rollout_ws.start_rollout("eta", 2, skip_gate=True, reason="test")
    with pytest.raises(ConflictError, match="only a ramp step is approved"):
        rollout_ws.approve("eta", reason="early")
    to_steps = [rollout_ws.promote("eta", reason=why) for why in ("to the A/B test", "to the ramp")]
    assert to_steps[-1].state.step == 0
    clock(rollout_ws).advance(timedelta(minutes=3))
    stored = rollout_ws.approve("eta", reason="dashboards fine", actor="ana")
    [approval] = stored.state.approvals
    assert (approval.step, approval.share, approval.by) == (0, 0.75, "ana")
    assert approval.at == clock(rollout_ws).now()
    [event] = [e for e in rollout_ws.events("eta") if e.kind == EventKind.ROLLOUT_APPROVED]
    assert (event.to_state, event.rule, event.actor, event.reason) == (
        "ramp 75%",
        "manual.approve",
        "ana",
        "dashboards fine",
    )
    with pytest.raises(ConflictError, match="was approved by ana"):
        rollout_ws.approve("eta", reason="twice")
    rollout_ws.promote("eta", reason="to 100")
    with pytest.raises(ConflictError, match="needs no approval"):
        rollout_ws.approve("eta", reason="no gate at 100")
    gate = rollout_ws.rollout_status("eta").gate
    assert gate is not None and gate.approval is False and gate.share == 1.0


def test_resume_and_approve_need_an_active_rollout(rollout_ws: Workspace) -> None:
    with pytest.raises(NotFoundError, match="no active rollout"):
        rollout_ws.resume("eta", reason="x")
    with pytest.raises(NotFoundError, match="no active rollout"):
        rollout_ws.approve("eta", reason="x")


@pytest.mark.parametrize("policy_yaml", [GATED_POLICY], ids=["approval-at-75"])
def test_a_step_waiting_for_approval_advances_at_the_next_look_once_approved(rollout_ws: Workspace) -> None:
    rollout_ws.start_rollout("eta", 2, skip_gate=True, reason="test")
    send_traffic(rollout_ws, hours=5, requests=1250)
    stored = rollout_ws.rollouts("eta")[-1]
    assert (stored.state.phase, stored.state.step, stored.state.outcome) == (Phase.RAMP, 0, None)
    assert stored.status is not None and stored.status["rule"] == Rule.RAMP_APPROVAL
    rollout_ws.approve("eta", reason="looks good", actor="ana")
    send_traffic(rollout_ws, hours=2, requests=500, seed=1)
    assert rollout_ws.rollouts("eta")[-1].state.outcome is Outcome.PROMOTED
    steps = [
        e.to_state for e in rollout_ws.events("eta") if e.kind in ("rollout_transition", "rollout_approved")
    ]
    assert steps == ["shadow", "ab_test 50%", "ramp 75%", "ramp 75%", "ramp 100%", "promoted"]
