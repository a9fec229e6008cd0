"""Turning a decision into the store: rollout row, routing table, aliases and the event, in one transaction.

The controller and the manual overrides (`pitstop rollout promote|rollback|abort`) both come here, so a
transition made by a person is recorded exactly like one made by the controller, with its actor.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from pitstop import registry
from pitstop.events import EventKind, record_event
from pitstop.jsonable import json_safe
from pitstop.registry import Alias
from pitstop.rollout.decision import Decision
from pitstop.rollout.phases import ENDING, Action, Phase
from pitstop.rollout.records import StoredRollout, update_rollout
from pitstop.rollout.state import Hold, RolloutState, SequentialMemory, challenger_share, ramp_shares
from pitstop.routing.provider import provider
from pitstop.routing.store import Change
from pitstop.routing.table import Routes


@dataclass(frozen=True)
class Target:
    phase: Phase
    step: int | None


def describe(state: RolloutState, share: float) -> str:
    """A phase as people say it: `shadow`, `ab_test 10%`, `ramp 50%`, `ramp 50% held`, `promoted`."""
    if state.outcome is not None:
        return state.outcome.value
    where = state.phase.value
    if state.phase in (Phase.AB_TEST, Phase.RAMP):
        where = f"{where} {share:.0%}"
    return f"{where} held" if state.hold is not None else where


def next_target(stored: StoredRollout) -> Target | None:
    """Where ADVANCE goes from here; None when the next move is promotion."""
    state, shares = stored.state, ramp_shares(stored.policy)
    if state.phase is Phase.SHADOW:
        return Target(Phase.AB_TEST, None)
    if state.phase is Phase.AB_TEST:
        return Target(Phase.RAMP, 0) if shares else None
    if state.phase is Phase.RAMP and state.step is not None and state.step + 1 < len(shares):
        return Target(Phase.RAMP, state.step + 1)
    return None


def apply_decision(
    conn: Connection, stored: StoredRollout, decision: Decision, *, now: datetime, actor: str
) -> StoredRollout:
    """Persist a decision; a phase change also writes routing, aliases and an event. Raises
    `StaleRolloutError` (nothing written) when the rollout changed since it was read.

    Every write, a look's `stay` too, first locks the model's row, as a person's override does
    (`actions._manual`): a look's write landing between an override's read and its write made the
    override fail as stale; now one waits for the other, and only a look is ever decided again."""
    state, policy = stored.state, stored.policy
    model = registry.get_model(conn, state.model, for_update=True)
    status = json_safe(
        {
            "rule": decision.rule,
            "reason": decision.reason,
            "action": decision.action.value,
            "checked_at": now.isoformat(),
            "numbers": decision.numbers,
        }
    )
    memory = state.memory if decision.memory is None else decision.memory
    share_before = challenger_share(state, policy)
    if decision.warnings:
        _record_warnings(conn, stored, decision, now=now, actor=actor, where=describe(state, share_before))
    warned = state.warned | {str(warning.rule) for warning in decision.warnings}
    if decision.action is Action.STAY:
        return update_rollout(conn, stored, now=now, status=status, memory=memory, warned=warned)
    if decision.action is Action.HOLD:
        return _hold(
            conn, stored, decision, now=now, actor=actor, status=status, memory=memory, warned=warned
        )
    target = next_target(stored) if decision.action is Action.ADVANCE else None
    if decision.action is Action.ADVANCE and target is not None:
        after_state = replace(state, phase=target.phase, step=target.step)
        share = challenger_share(after_state, policy)
        champion, challenger = state.champion_version, state.challenger_version
        routes = Routes.at_share(
            champion, challenger, share, state.salt, rollout_id=state.id, step=target.step
        )
        routing = provider().set_routes(
            conn, model, routes, Change(now, actor, decision.reason, decision.rule)
        )
        updated = update_rollout(
            conn,
            stored,
            now=now,
            phase=target.phase,
            step=target.step,
            phase_started_at=now,
            phase_routing_version=routing.version,
            plan=decision.plan or state.plan,
            memory=memory,
            status=status,
            warned=frozenset(),  # warnings are once per phase or step
        )
        to_state = describe(updated.state, share)
    else:
        action = Action.PROMOTE if decision.action is Action.ADVANCE else decision.action
        updated = _end(
            conn, stored, model, action, decision, now=now, actor=actor, status=status, memory=memory
        )
        to_state = updated.state.outcome.value if updated.state.outcome else "ended"
    record_event(
        conn,
        time=now,
        model_id=model.id,
        kind=EventKind.ROLLOUT_TRANSITION,
        actor=actor,
        from_state=describe(state, share_before),
        to_state=to_state,
        rule=decision.rule,
        reason=decision.reason,
        rollout_id=state.id,
        data=json_safe(decision.numbers),
    )
    return updated


def _end(
    conn: Connection,
    stored: StoredRollout,
    model: registry.ModelInfo,
    action: Action,
    decision: Decision,
    *,
    now: datetime,
    actor: str,
    status: dict[str, Any],
    memory: SequentialMemory,
) -> StoredRollout:
    state = stored.state
    promoted = action is Action.PROMOTE
    champion = state.challenger_version if promoted else state.champion_version
    standby = state.champion_version if promoted else None
    routes = Routes.champion_only(champion, state.salt, rollout_id=state.id, standby=standby)
    provider().finalize(conn, model, routes, Change(now, actor, decision.reason, decision.rule))
    moves: dict[Alias, int | None] = {Alias.CHALLENGER: None}
    if promoted:
        moves.update({Alias.CHAMPION: state.challenger_version, Alias.PREVIOUS: state.champion_version})
    registry.move_aliases(
        conn, model, moves, now=now, actor=actor, reason=decision.reason, rollout_id=state.id
    )
    return update_rollout(
        conn,
        stored,
        now=now,
        phase=Phase.DONE,
        outcome=ENDING[action],
        stage=state.phase.value,
        reason=decision.reason,
        ended_at=now,
        memory=memory,
        status=status,
    )


def _hold(
    conn: Connection,
    stored: StoredRollout,
    decision: Decision,
    *,
    now: datetime,
    actor: str,
    status: dict[str, Any],
    memory: SequentialMemory,
    warned: frozenset[str],
) -> StoredRollout:
    """Freeze the rollout where it is (no routing change) and record the hold: its rule, why, since."""
    state = stored.state
    hold = Hold(now, str(decision.rule), decision.reason)
    updated = update_rollout(conn, stored, now=now, status=status, memory=memory, warned=warned, hold=hold)
    share = challenger_share(state, stored.policy)
    record_event(
        conn,
        time=now,
        model_id=stored.model_id,
        kind=EventKind.ROLLOUT_HELD,
        actor=actor,
        from_state=describe(state, share),
        to_state=describe(updated.state, share),
        rule=decision.rule,
        reason=decision.reason,
        rollout_id=state.id,
        data=json_safe(decision.numbers),
    )
    return updated


def _record_warnings(
    conn: Connection, stored: StoredRollout, decision: Decision, *, now: datetime, actor: str, where: str
) -> None:
    """One `rollout_warning` event per new warning (`decide` leaves out those of this phase or step)."""
    for warning in decision.warnings:
        record_event(
            conn,
            time=now,
            model_id=stored.model_id,
            kind=EventKind.ROLLOUT_WARNING,
            actor=actor,
            from_state=where,
            to_state=where,
            rule=warning.rule,
            reason=warning.reason,
            rollout_id=stored.state.id,
            data=json_safe(warning.numbers),
        )
