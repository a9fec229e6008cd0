"""In force only when acknowledged, no mixed state (issue 21): a look advances nothing while a live
gateway still serves an older routing table of the model, or has not warmed the challenger it would
route users to; harm still rolls back; without heartbeats nothing changes."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from pitstop.cli.rollout import render_status
from pitstop.config import Policy
from pitstop.rollout.controller import Controller
from pitstop.rollout.decide import decide
from pitstop.rollout.phases import Action, Phase
from pitstop.rules import Rule
from pitstop.store import gateways
from pitstop.store.gateways import Acknowledgement, Heartbeat, ServedModel
from pitstop.workspace import Workspace
from rollout.conftest import send_traffic
from rollout.test_decide import arm, at, ramp_evidence, rollout

GOOD_RAMP = ramp_evidence(2, arm(700, 5.0), arm(300, 4.8))  # steps at the next look
HARMFUL_RAMP = ramp_evidence(2, arm(700, 5.0), arm(300, 6.0))  # the error ratio rolls back


def acks(*versions: int, warmed: tuple[int, ...] = (1, 2)) -> tuple[Acknowledgement, ...]:
    return tuple(Acknowledgement(f"gw-{i}", version, warmed) for i, version in enumerate(versions))


def test_a_step_waits_while_a_live_gateway_serves_an_older_table() -> None:
    state = rollout(Phase.RAMP, step=0)  # its table is routing v1
    decision = decide(state, Policy(), replace(GOOD_RAMP, gateways=acks(1, 0, 1)), at(2))
    assert (decision.action, decision.rule) == (Action.STAY, Rule.HEALTH_UNACKNOWLEDGED)
    assert decision.reason.startswith("waiting for 1 of 3 gateways to serve routing v1")
    assert decision.numbers["gateways_behind"] == {"gw-1": 0}
    assert decision.numbers["would_action"] == "advance"


def test_a_step_goes_on_once_every_live_gateway_acknowledges_it() -> None:
    state = rollout(Phase.RAMP, step=0)
    decision = decide(state, Policy(), replace(GOOD_RAMP, gateways=acks(1, 2)), at(2))
    assert (decision.action, decision.rule) == (Action.ADVANCE, Rule.RAMP_STEP)


def test_without_heartbeats_decisions_are_as_before() -> None:
    state = rollout(Phase.RAMP, step=0)
    assert decide(state, Policy(), GOOD_RAMP, at(2)).action is Action.ADVANCE


def test_a_step_waits_while_a_live_gateway_has_not_warmed_the_challenger() -> None:
    state = rollout(Phase.RAMP, step=0)  # challenger v2
    cold = acks(1, warmed=(1,))[0]
    gateways = (*acks(1, 1), replace(cold, gateway="gw-cold"))
    decision = decide(state, Policy(), replace(GOOD_RAMP, gateways=gateways), at(2))
    assert (decision.action, decision.rule) == (Action.STAY, Rule.HEALTH_NOT_WARM)
    assert decision.reason.startswith("waiting for 1 of 3 gateways to load and warm challenger v2")
    assert decision.numbers["gateways_not_warm"] == {"gw-cold": [1]}
    assert (decision.numbers["would_action"], decision.numbers["would_rule"]) == ("advance", "ramp.step")


def test_a_look_that_stays_anyway_keeps_its_own_rule() -> None:
    state = rollout(Phase.RAMP, step=0)
    decision = decide(state, Policy(), replace(GOOD_RAMP, gateways=acks(1, warmed=(1,))), at(0.1))
    assert (decision.action, decision.rule) == (Action.STAY, Rule.RAMP_DWELL)


def test_a_gateway_behind_is_named_before_one_not_warm() -> None:
    state = rollout(Phase.RAMP, step=0)
    decision = decide(state, Policy(), replace(GOOD_RAMP, gateways=acks(0, warmed=(1,))), at(2))
    assert decision.rule == Rule.HEALTH_UNACKNOWLEDGED


def test_harm_rolls_back_even_while_a_gateway_has_not_warmed_the_challenger() -> None:
    state = rollout(Phase.RAMP, step=0)
    decision = decide(state, Policy(), replace(HARMFUL_RAMP, gateways=acks(1, warmed=(1,))), at(2))
    assert (decision.action, decision.rule) == (Action.ROLLBACK, Rule.GUARDRAIL_ERROR_RATIO)


def test_harm_rolls_back_even_while_a_gateway_is_behind() -> None:
    state = rollout(Phase.RAMP, step=0)
    decision = decide(state, Policy(), replace(HARMFUL_RAMP, gateways=acks(0)), at(2))
    assert (decision.action, decision.rule) == (Action.ROLLBACK, Rule.GUARDRAIL_ERROR_RATIO)


def beat(ws: Workspace, name: str, routing_version: int, *, ago: timedelta = timedelta(0)) -> None:
    """A gateway's heartbeat as a gateway writes it (`serving.heartbeat`), at the controller's clock."""
    now = ws.clock.now() - ago
    served = ServedModel("eta", routing_version, (1, 2), (1, 2))
    with ws.writing() as conn:
        gateways.beat(conn, Heartbeat(name, now - timedelta(hours=1), now, (served,)))


def test_the_controller_waits_for_every_live_gateway_to_serve_the_shadow(
    rollout_ws: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    stored = rollout_ws.start_rollout("eta", 2, skip_gate=True, reason="test")
    send_traffic(rollout_ws, hours=2, requests=600, decide=False)  # enough for the shadow to pass
    current = stored.state.phase_routing_version
    beat(rollout_ws, "gw-old", current - 1, ago=timedelta(minutes=5))  # stale: not waited for
    beat(rollout_ws, "gw-a", current)
    beat(rollout_ws, "gw-b", current - 1)

    controller = Controller(rollout_ws)
    (waiting,) = controller.tick()
    assert (waiting.decision.action, waiting.decision.rule) == (Action.STAY, Rule.HEALTH_UNACKNOWLEDGED)
    assert f"waiting for 1 of 2 gateways to serve routing v{current}" in waiting.decision.reason
    shown = rollout_ws.rollout_status("eta").to_dict()
    assert shown["phase"] == "shadow"
    assert {(g["gateway"], g["acknowledged"]) for g in shown["gateways"]} == {("gw-a", True), ("gw-b", False)}
    render_status(rollout_ws.rollout_status("eta"))
    printed = capsys.readouterr().out
    assert f"live gateways (this phase: routing v{current})" in printed and "gw-b" in printed

    beat(rollout_ws, "gw-b", current)
    (moved,) = controller.tick()
    assert moved.decision.action is Action.ADVANCE, moved.decision.reason
    assert rollout_ws.rollout_status("eta").rollout.state.phase is Phase.AB_TEST
