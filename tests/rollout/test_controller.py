"""The controller against a real store, driven by real traffic through the gateway on a manual clock."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from helpers import OffsetModel
from pitstop.errors import ConflictError, NegativeVerdict, NotFoundError, UsageError
from pitstop.rollout.apply import apply_decision
from pitstop.rollout.controller import Controller
from pitstop.rollout.decide import Decision
from pitstop.rollout.phases import Action, Outcome, Phase
from pitstop.rollout.records import StaleRolloutError, active_rollout
from pitstop.routing.store import routing_of
from pitstop.workspace import Workspace
from rollout.conftest import SHORT_POLICY, FailsAfter, fit_base, register_model, replay, send_traffic, traffic


def transitions(ws: Workspace) -> list[tuple[str | None, str | None, str | None]]:
    return [(e.from_state, e.to_state, e.rule) for e in ws.events("eta") if e.kind == "rollout_transition"]


def test_start_needs_a_passed_gate_against_the_current_champion(rollout_ws: Workspace) -> None:
    with pytest.raises(NegativeVerdict, match="no offline gate result"):
        rollout_ws.start_rollout("eta", 2)
    with pytest.raises(UsageError, match=r"^reason: say why you skip the offline gate") as refused:
        rollout_ws.start_rollout("eta", 2, skip_gate=True)
    assert refused.value.field == "reason"  # the Python API names its parameter, not the CLI's flag
    assert rollout_ws.rollouts("eta") == []


def test_start_with_skip_gate_records_the_override(rollout_ws: Workspace) -> None:
    stored = rollout_ws.start_rollout("eta", 2, skip_gate=True, reason="hotfix", actor="alice")
    assert stored.state.phase is Phase.SHADOW
    assert rollout_ws.model("eta").aliases["challenger"] == 2
    routing = routing_of(rollout_ws, "eta")
    assert routing is not None and routing.mode == "shadow" and routing.shadow == 2
    event = [e for e in rollout_ws.events("eta") if e.kind == "rollout_transition"][-1]
    assert (event.actor, event.rule, event.reason) == ("alice", "gate.skipped", "hotfix")


def test_only_one_active_rollout_per_model(rollout_ws: Workspace) -> None:
    rollout_ws.start_rollout("eta", 2, skip_gate=True, reason="first")
    with pytest.raises(ConflictError, match="is active"):
        rollout_ws.start_rollout("eta", 3, skip_gate=True, reason="second")


def test_good_challenger_goes_all_the_way_to_promotion(rollout_ws: Workspace) -> None:
    rollout_ws.start_rollout("eta", 2, skip_gate=True, reason="test")
    send_traffic(rollout_ws, hours=12, requests=3000)
    status = rollout_ws.rollout_status("eta")
    assert status.rollout.state.outcome is Outcome.PROMOTED, status.to_dict()
    assert [t[1] for t in transitions(rollout_ws)] == [
        "shadow",
        "ab_test 50%",
        "ramp 75%",
        "ramp 100%",
        "promoted",
    ]
    aliases = rollout_ws.model("eta").aliases
    assert aliases == {"champion": 2, "previous": 1}
    routing = routing_of(rollout_ws, "eta")
    assert routing is not None and routing.champion == 2 and routing.standby == 1 and routing.mode == "off"


def test_bad_challenger_is_rejected_in_shadow_and_users_never_see_it(rollout_ws: Workspace) -> None:
    rollout_ws.start_rollout("eta", 3, skip_gate=True, reason="test")
    send_traffic(rollout_ws, hours=4, requests=1000)
    stored = rollout_ws.rollouts("eta")[-1]
    assert (stored.state.outcome, stored.state.stage) == (Outcome.REJECTED, "shadow")
    assert transitions(rollout_ws)[-1][2] == "shadow.error_ratio"
    served = rollout_ws.rollout_status("eta").rollout.status
    assert served is not None
    assert rollout_ws.model("eta").aliases == {"champion": 1}


def test_shadow_without_enough_labels_by_max_duration_is_rejected_and_the_champion_stays(
    rollout_ws: Workspace,
) -> None:
    rollout_ws.start_rollout("eta", 2, skip_gate=True, reason="test")
    quiet = send_traffic(rollout_ws, hours=7, requests=40)  # 40 labelled pairs of the 60 needed
    assert transitions(rollout_ws)[-1] == ("shadow", "rejected", "shadow.inconclusive")
    stored = rollout_ws.rollouts("eta")[-1]
    assert (stored.state.outcome, stored.state.stage) == (Outcome.REJECTED, "shadow")
    assert stored.state.ended_at is not None and stored.state.ended_at - stored.state.started_at >= timedelta(
        hours=6
    )
    assert quiet.failed == 0 and rollout_ws.model("eta").aliases == {"champion": 1}
    routing = routing_of(rollout_ws, "eta")
    assert routing is not None and (routing.mode, routing.champion) == ("off", 1)


def test_a_shadow_that_always_fails_is_rejected_for_its_failures_and_users_never_notice(
    rollout_ws: Workspace, tmp_path: Path
) -> None:
    """Its circuit breaker opens after 20 failed calls, so the log holds few: those are the evidence."""
    broken = register_model(
        rollout_ws,
        OffsetModel(fit_base(tmp_path), math.nan),
        tmp_path / "nan.joblib",
        skip_check="NaN on purpose",
    )
    rollout_ws.start_rollout("eta", broken, skip_gate=True, reason="test")
    served = send_traffic(rollout_ws, hours=1, requests=400)
    assert transitions(rollout_ws)[-1] == ("shadow", "rejected", "shadow.error_rate")
    event = [e for e in rollout_ws.events("eta") if e.kind == "rollout_transition"][-1]
    assert event.data is not None and event.data["failure_rate"] == 1.0 and event.data["p_value"] < 0.001
    assert served.failed == 0  # every user got the champion's answer
    assert rollout_ws.model("eta").aliases == {"champion": 1}


def _challenger_users_dropped(ws: Workspace, frame: pd.DataFrame, keep: float) -> pd.DataFrame:
    """`frame` without the requests of all but `keep` of the users the routing sends to the challenger
    (as a client that loses them would): the split in the log no longer matches the share."""
    table = routing_of(ws, "eta")
    assert table is not None and table.challenger_share > 0
    cut = table.challenger_share * (1 - keep)
    return frame[[table.route(user, "").bucket >= cut for user in frame["user_id"]]]


def test_sample_ratio_mismatch_in_the_ab_test_rejects_the_challenger(
    rollout_ws: Workspace, tmp_path: Path
) -> None:
    same = register_model(rollout_ws, OffsetModel(fit_base(tmp_path), 1.0), tmp_path / "same.joblib")
    rollout_ws.start_rollout("eta", same, skip_gate=True, reason="test", salt="srm")
    rollout_ws.promote("eta", reason="straight to the A/B test")
    frame = _challenger_users_dropped(rollout_ws, traffic(rollout_ws, hours=2, requests=900), keep=1 / 3)
    replay(rollout_ws, frame)
    assert transitions(rollout_ws)[-1] == ("ab_test 50%", "rejected", "ab.srm")
    event = [e for e in rollout_ws.events("eta") if e.kind == "rollout_transition"][-1]
    assert event.data is not None and event.data["srm"]["mismatch"]
    assert event.data["units"]["challenger"] < event.data["units"]["champion"] / 2
    routing = routing_of(rollout_ws, "eta")
    assert routing is not None and (routing.mode, routing.champion) == ("off", 1)


LOOSE_GUARDRAIL = SHORT_POLICY.replace("guardrails: {", "guardrails: {max_error_ratio: 2, ")


@pytest.mark.parametrize("policy_yaml", [LOOSE_GUARDRAIL], ids=["loose-error-ratio-guardrail"])
def test_a_significantly_worse_challenger_loses_the_ab_test(rollout_ws: Workspace, tmp_path: Path) -> None:
    """About 20 % worse: within the (loosened) guardrail, so the A/B test's own verdict stops it."""
    worse = register_model(rollout_ws, OffsetModel(fit_base(tmp_path), 1.2), tmp_path / "worse.joblib")
    rollout_ws.start_rollout("eta", worse, skip_gate=True, reason="test", salt="loss")
    rollout_ws.promote("eta", reason="a person skipped the shadow")
    send_traffic(rollout_ws, hours=3, requests=1200)
    assert transitions(rollout_ws)[-1] == ("ab_test 50%", "rejected", "ab.loss")
    event = [e for e in rollout_ws.events("eta") if e.kind == "rollout_transition"][-1]
    assert event.data is not None and event.data["sequential"]["p_value"] < 0.05
    assert event.data["error_ratio"] > 1
    assert rollout_ws.model("eta").aliases == {"champion": 1}


def test_a_challenger_that_starts_failing_in_the_ramp_is_rolled_back(
    rollout_ws: Workspace, tmp_path: Path
) -> None:
    leaky = register_model(rollout_ws, FailsAfter(fit_base(tmp_path), calls=40), tmp_path / "leaky.joblib")
    rollout_ws.start_rollout("eta", leaky, skip_gate=True, reason="test")
    rollout_ws.promote("eta", reason="to A/B")
    rollout_ws.promote("eta", reason="to the ramp")
    during = send_traffic(rollout_ws, hours=1, requests=400)
    assert transitions(rollout_ws)[-1] == ("ramp 75%", "rolled_back", "guardrail.error_rate")
    assert during.failed > 0  # its first answers were fine, then users saw failures until the rollback
    routing = routing_of(rollout_ws, "eta")
    assert routing is not None and (routing.mode, routing.champion, routing.challenger) == ("off", 1, None)
    assert rollout_ws.model("eta").aliases == {"champion": 1}
    after = send_traffic(rollout_ws, hours=0.5, requests=200, decide=False)
    assert after.failed == 0  # everyone is back on the champion


def test_manual_overrides_are_recorded_with_the_actor(rollout_ws: Workspace) -> None:
    rollout_ws.start_rollout("eta", 2, skip_gate=True, reason="test")
    stored = rollout_ws.promote("eta", reason="confident", actor="bob")
    assert stored.state.phase is Phase.AB_TEST
    assert routing_of(rollout_ws, "eta").challenger_share == 0.5  # type: ignore[union-attr]
    stored = rollout_ws.promote("eta", reason="ship it", to_end=True, actor="bob")
    assert stored.state.outcome is Outcome.PROMOTED
    last = [e for e in rollout_ws.events("eta") if e.kind == "rollout_transition"][-1]
    assert (last.actor, last.rule, last.to_state) == ("bob", "manual.promote", "promoted")
    restored = rollout_ws.rollback("eta", reason="pager went off", actor="carol")
    assert restored.state.outcome is Outcome.ROLLED_BACK
    assert rollout_ws.model("eta").aliases["champion"] == 1
    assert routing_of(rollout_ws, "eta").champion == 1  # type: ignore[union-attr]


def test_promoting_a_shadow_by_hand_plans_the_ab_test_from_its_pairs(rollout_ws: Workspace) -> None:
    rollout_ws.start_rollout("eta", 2, skip_gate=True, reason="test")
    send_traffic(rollout_ws, 0.5, 120, decide=False)  # labelled pairs, but before the shadow's minimum
    stored = rollout_ws.promote("eta", reason="enough seen")
    assert stored.state.phase is Phase.AB_TEST
    plan = stored.state.plan
    assert plan is not None and plan.n_challenger and plan.n_champion
    assert rollout_ws.rollout_status("eta").to_dict()["plan"] == plan.to_json()


def test_abort_keeps_the_champion(rollout_ws: Workspace) -> None:
    rollout_ws.start_rollout("eta", 2, skip_gate=True, reason="test")
    rollout_ws.promote("eta", reason="to A/B")
    stored = rollout_ws.abort("eta", reason="wrong model")
    assert stored.state.outcome is Outcome.ABORTED and stored.state.stage == "ab_test"
    assert routing_of(rollout_ws, "eta").mode == "off"  # type: ignore[union-attr]
    with pytest.raises(NotFoundError, match="no active rollout"):
        rollout_ws.abort("eta", reason="again")


def test_rollback_without_anything_to_roll_back(rollout_ws: Workspace) -> None:
    with pytest.raises(ConflictError, match="no active rollout and no promotion"):
        rollout_ws.rollback("eta", reason="why not")


def test_only_the_lease_holder_acts(rollout_ws: Workspace) -> None:
    rollout_ws.start_rollout("eta", 2, skip_gate=True, reason="test")
    first = Controller(rollout_ws, holder="one", lease_ttl=timedelta(seconds=30))
    second = Controller(rollout_ws, holder="two", lease_ttl=timedelta(seconds=30))
    assert first.acquire() and not second.acquire()
    assert second.tick() == []
    rollout_ws.clock.advance(timedelta(seconds=31))  # type: ignore[attr-defined]
    assert second.acquire() and not first.acquire()
    second.release()
    assert first.acquire()


def test_a_decision_on_stale_state_writes_nothing(rollout_ws: Workspace) -> None:
    rollout_ws.start_rollout("eta", 2, skip_gate=True, reason="test")
    with rollout_ws.reading() as conn:
        seen = active_rollout(conn, rollout_ws.model("eta").id)
    assert seen is not None
    rollout_ws.promote("eta", reason="a person acted first")
    advance = Decision(Action.ADVANCE, "shadow.passed", "controller's late decision")
    with pytest.raises(StaleRolloutError), rollout_ws.writing() as conn:
        apply_decision(conn, seen, advance, now=rollout_ws.clock.now(), actor="controller")
    assert [t[1] for t in transitions(rollout_ws)] == ["shadow", "ab_test 50%"]


def test_controller_killed_mid_transition_resumes_without_duplicates(rollout_ws: Workspace) -> None:
    rollout_ws.start_rollout("eta", 2, skip_gate=True, reason="test")
    send_traffic(rollout_ws, hours=1.5, requests=600, decide=False)
    controller = Controller(rollout_ws, holder="victim")
    assert controller.acquire()
    with rollout_ws.reading() as conn:
        stored = active_rollout(conn, rollout_ws.model("eta").id)
    assert stored is not None
    decision = Decision(Action.ADVANCE, "shadow.passed", "about to crash")

    class Crash(Exception):
        pass

    with pytest.raises(Crash), rollout_ws.writing() as conn:  # the process dies before commit
        apply_decision(conn, stored, decision, now=rollout_ws.clock.now(), actor="controller")
        raise Crash
    assert [t[1] for t in transitions(rollout_ws)] == ["shadow"]
    assert routing_of(rollout_ws, "eta").mode == "shadow"  # type: ignore[union-attr]
    rollout_ws.clock.advance(timedelta(minutes=1))  # type: ignore[attr-defined]
    restarted = Controller(rollout_ws, holder="victim")  # same host restarts; lease still its own
    results = restarted.tick()
    assert [r.decision.rule for r in results] == ["shadow.passed"]
    assert [t[1] for t in transitions(rollout_ws)] == ["shadow", "ab_test 50%"]
    assert restarted.tick()[0].decision.action is Action.STAY  # the next look does not repeat it


def test_two_controllers_at_once_make_one_transition(rollout_ws: Workspace) -> None:
    rollout_ws.start_rollout("eta", 2, skip_gate=True, reason="test")
    send_traffic(rollout_ws, hours=1.5, requests=600, decide=False)
    rollout_ws.clock.advance(timedelta(minutes=1))  # type: ignore[attr-defined]
    a = Controller(rollout_ws, holder="a", lease_ttl=timedelta(seconds=5))
    b = Controller(rollout_ws, holder="b", lease_ttl=timedelta(seconds=5))
    results = [a.tick(), b.tick()]
    assert sum(1 for r in results for item in r if item.applied and item.decision.changes_phase) == 1
    assert [t[1] for t in transitions(rollout_ws)] == ["shadow", "ab_test 50%"]


def test_standby_is_released_after_its_time(rollout_ws: Workspace) -> None:
    rollout_ws.start_rollout("eta", 2, skip_gate=True, reason="test")
    rollout_ws.promote("eta", reason="ship", to_end=True)
    controller = Controller(rollout_ws)
    controller.tick()
    assert routing_of(rollout_ws, "eta").standby == 1  # type: ignore[union-attr]
    rollout_ws.clock.advance(timedelta(hours=2, seconds=1))  # type: ignore[attr-defined]
    controller.tick()
    routing = routing_of(rollout_ws, "eta")
    assert routing is not None and routing.standby is None and routing.champion == 2


def test_status_tells_what_the_next_check_would_do(rollout_ws: Workspace) -> None:
    rollout_ws.start_rollout("eta", 2, skip_gate=True, reason="test")
    send_traffic(rollout_ws, hours=0.5, requests=200, decide=False)
    data = rollout_ws.rollout_status("eta").to_dict()
    assert data["phase"] == "shadow" and data["challenger_share"] == 0.0
    assert data["next_check"]["rule"] == "shadow.min_duration"
    assert data["evidence"]["paired"]["n"] > 100
    assert set(data) >= {
        "rollout_id",
        "model",
        "champion_version",
        "challenger_version",
        "phase",
        "step",
        "challenger_share",
        "outcome",
        "stage",
        "reason",
        "evidence",
    }
