"""Starting a rollout, the manual overrides, and the status a person reads.

Each is one transaction; the overrides go through the same `apply_decision` as the controller, with the
person as actor and a `manual.*` rule, so history shows them exactly like automatic decisions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from pitstop import registry
from pitstop.errors import ConflictError, NegativeVerdict, NotFoundError, UsageError, mention
from pitstop.events import Event, EventKind, list_events, record_event
from pitstop.formats import fmt_time
from pitstop.jsonable import json_safe
from pitstop.lineage import current_actor
from pitstop.policies import PolicyChoice, choose
from pitstop.registry import Alias, ModelInfo, VersionInfo
from pitstop.rollout.apply import apply_decision, describe, next_target
from pitstop.rollout.comparison import compared_arms, latency_check, live_comparison, sample_progress
from pitstop.rollout.controller import read_evidence
from pitstop.rollout.decide import decide
from pitstop.rollout.decision import Decision
from pitstop.rollout.evidence import ArmSummary, Evidence
from pitstop.rollout.gates import GateProgress
from pitstop.rollout.phases import Action, Outcome, Phase
from pitstop.rollout.plan import AbPlan
from pitstop.rollout.planning import plan_ab_test
from pitstop.rollout.records import (
    StoredRollout,
    active_rollout,
    get_rollout,
    insert_rollout,
    latest_rollout,
    list_rollouts,
    update_rollout,
)
from pitstop.rollout.routes import verified_version
from pitstop.rollout.state import SequentialMemory, StepApproval, challenger_share, ramp_shares
from pitstop.routing.provider import provider
from pitstop.routing.store import Change, current_routing
from pitstop.routing.table import Routes, new_salt
from pitstop.rules import Rule
from pitstop.store import gateways, spool_backlog
from pitstop.store.gateways import Heartbeat
from pitstop.store.load_failures import LoadFailure, cannot_load
from pitstop.store.predictions.error_messages import ErrorMessages, error_messages

if TYPE_CHECKING:
    from pitstop.context import Context


def _require_reason(reason: str, what: str) -> str:
    if not reason or not reason.strip():
        raise UsageError(f"say why you {what}; it is recorded with the event", field="reason")
    return reason.strip()


def check_gate(info: ModelInfo, version: VersionInfo, champion: int) -> None:
    """A rollout needs a passed offline gate of this version against the current champion."""
    result = version.gate_result
    if result is None:
        raise NegativeVerdict(
            f"{info.name} version {version.version} has no offline gate result: run "
            f"`pitstop gate {info.name} {version.version} --test-set …` first (or start with "
            f"{mention('skip_gate', True)} and a {mention('reason')})"
        )
    if not result.passed:
        failed = ", ".join(check.name for check in result.failed_checks())
        raise NegativeVerdict(f"{info.name} version {version.version} failed the offline gate: {failed}")
    if result.champion_version != champion:
        raise NegativeVerdict(
            f"{info.name} version {version.version} was gated against champion version "
            f"{result.champion_version}, but the champion is now version {champion}: gate it again"
        )


def start_rollout(
    ws: Context,
    model: str,
    version: str | int,
    *,
    reason: str | None = None,
    skip_gate: bool = False,
    actor: str | None = None,
    salt: str | None = None,
    policy: PolicyChoice = None,
) -> StoredRollout:
    """Start taking a challenger through shadow, A/B and ramp (stage 3 begins at once).

    Raises ArtifactIntegrityError when the version's artifact fails its sha256 check.

    `policy` is the policy the rollout keeps to its end (`policies.choose`): default `pitstop.yaml`'s;
    a `Policy`; a file (over `pitstop.yaml`, key by key); a named policy, `NAME` or `NAME@REVISION`.

    `salt` fixes the routing salt (which users the split sends to the challenger); live rollouts get a
    fresh random one, replays a seeded one so that the same replay splits the same users.
    """
    actor = actor or current_actor()
    if skip_gate:
        reason = _require_reason(reason or "", "skip the offline gate")
    chosen = choose(ws, policy)  # a bad file or an unknown name is refused before anything is written
    # With or without the gate: a version whose artifact is missing or changed is refused here, before
    # any gateway tries to load it (before the write transaction: it reads a whole file).
    verified_version(ws, model, version)
    now = ws.clock.now()
    with ws.writing() as conn:
        info = registry.get_model(conn, model, for_update=True)
        info.refuse_if_archived("new rollouts")
        champion = info.aliases.get(Alias.CHAMPION.value)
        if champion is None:
            raise NotFoundError(
                f"model {model!r} has no champion yet; set one with `pitstop models set-champion`"
            )
        challenger = registry.get_version(conn, info, version)
        if challenger.version == champion:
            raise UsageError(f"version {challenger.version} is already the champion of {model!r}")
        running = active_rollout(conn, info.id)
        if running is not None:
            raise ConflictError(
                f"rollout {running.state.id} of {model!r} is active ({running.state.phase}, challenger "
                f"v{running.state.challenger_version}); wait for it or "
                f"`pitstop rollout abort {model} --reason …`"
            )
        if not skip_gate:
            check_gate(info, challenger, champion)
        salt = salt or new_salt()
        stored = insert_rollout(
            conn,
            model_id=info.id,
            model=model,
            champion=champion,
            challenger=challenger.version,
            salt=salt,
            policy=chosen.policy,
            now=now,
            actor=actor,
            phase_routing_version=0,
            policy_source=chosen.source,
        )
        routes = Routes.shadowing(champion, challenger.version, salt, rollout_id=stored.state.id)
        change = Change(now, actor, f"rollout {stored.state.id}: shadow", Rule.ROLLOUT_START)
        routing = provider().set_routes(conn, info, routes, change)
        stored = update_rollout(conn, stored, now=now, phase_routing_version=routing.version)
        registry.move_aliases(
            conn,
            info,
            {Alias.CHALLENGER: challenger.version},
            now=now,
            actor=actor,
            reason=f"rollout {stored.state.id} started",
            rollout_id=stored.state.id,
        )
        rule = Rule.GATE_SKIPPED if skip_gate else Rule.GATE_PASSED
        why = "offline gate passed against the current champion" + (f": {reason}" if reason else "")
        record_event(
            conn,
            time=now,
            model_id=info.id,
            kind=EventKind.ROLLOUT_TRANSITION,
            actor=actor,
            from_state=Phase.GATE.value,
            to_state=Phase.SHADOW.value,
            rule=rule,
            reason=reason if skip_gate else why,
            rollout_id=stored.state.id,
            data={
                "gate": None if challenger.gate_result is None else challenger.gate_result.to_json(),
                "champion": champion,
                "challenger": challenger.version,
                "policy_source": chosen.source,
            },
        )
        return stored


def _manual(ws: Context, model: str, decision: Decision, actor: str | None) -> StoredRollout:
    now = ws.clock.now()
    with ws.writing() as conn:
        info = registry.get_model(conn, model, for_update=True)
        stored = active_rollout(conn, info.id)
        if stored is None:
            raise NotFoundError(f"model {model!r} has no active rollout")
        return apply_decision(conn, stored, decision, now=now, actor=actor or current_actor())


def promote(
    ws: Context, model: str, *, reason: str, to_end: bool = False, actor: str | None = None
) -> StoredRollout:
    """Advance one phase or step by hand (`to_end`: straight to promotion). A held rollout is refused:
    resume it first, so the hold's cause is looked at and recorded before anything moves."""
    reason = _require_reason(reason, "promote by hand")
    with ws.reading() as conn:
        running = active_rollout(conn, registry.get_model(conn, model).id)
    if running is not None and running.state.hold is not None:
        hold = running.state.hold
        raise ConflictError(
            f"rollout {running.state.id} of {model!r} is held since {fmt_time(hold.since)} by {hold.rule}: "
            "resume it (or roll it back) before promoting"
        )
    action = Action.PROMOTE if to_end else Action.ADVANCE
    numbers: dict[str, Any] = {"to_end": to_end}
    plan = None if to_end else _plan_from_shadow(ws, model)
    if plan is not None:
        numbers["plan"] = plan.to_json()
    return _manual(ws, model, Decision(action, Rule.MANUAL_PROMOTE, reason, numbers, plan=plan), actor)


def _plan_from_shadow(ws: Context, model: str) -> AbPlan | None:
    """The A/B plan a shadow promoted by hand would have made, from its labelled pairs so far."""
    with ws.reading() as conn:
        stored = active_rollout(conn, registry.get_model(conn, model).id)
    if stored is None or stored.state.phase is not Phase.SHADOW:
        return None
    evidence = read_evidence(ws, stored, ws.clock.now())
    if evidence.paired.n < 2 or evidence.paired.champion_mean is None:
        return None
    return plan_ab_test(stored.policy, evidence)


def abort(ws: Context, model: str, *, reason: str, actor: str | None = None) -> StoredRollout:
    """End the rollout keeping the champion."""
    reason = _require_reason(reason, "abort")
    return _manual(ws, model, Decision(Action.ABORT, Rule.MANUAL_ABORT, reason), actor)


def rollback(ws: Context, model: str, *, reason: str, actor: str | None = None) -> StoredRollout:
    """All traffic back to the champion at once; after a completed promotion, restore the previous one."""
    reason = _require_reason(reason, "roll back")
    with ws.reading() as conn:
        info = registry.get_model(conn, model)
        running = active_rollout(conn, info.id) is not None
    if running:
        return _manual(ws, model, Decision(Action.ROLLBACK, Rule.MANUAL_ROLLBACK, reason), actor)
    return _restore_previous(ws, model, reason, actor or current_actor())


def _active(conn: Connection, model: str) -> tuple[ModelInfo, StoredRollout]:
    info = registry.get_model(conn, model, for_update=True)
    stored = active_rollout(conn, info.id)
    if stored is None:
        raise NotFoundError(f"model {model!r} has no active rollout")
    return info, stored


def resume(ws: Context, model: str, *, reason: str, actor: str | None = None) -> StoredRollout:
    """Clear a hold. The phase or step starts a fresh evidence window: the same routes are written again
    as a new routing version (same salt and share: no user changes arm), its clock restarts (dwell,
    minimum and maximum durations, the no-traffic grace) and the A/B test's running interval with it.
    What held it (a broken split, missing labels, a gateway) made the evidence before unfit to decide
    on, and would hold it again at the next look."""
    reason = _require_reason(reason, "resume")
    actor = actor or current_actor()
    now = ws.clock.now()
    with ws.writing() as conn:
        info, stored = _active(conn, model)
        state, hold = stored.state, stored.state.hold
        if hold is None:
            raise ConflictError(f"rollout {state.id} of {model!r} is not held; nothing to resume")
        share = challenger_share(state, stored.policy)
        routing = current_routing(conn, info.id)
        assert routing is not None  # a rollout has written routing since it started
        written = provider().set_routes(
            conn,
            info,
            routing.routes,
            Change(now, actor, f"rollout {state.id} resumed: {reason}", Rule.MANUAL_RESUME),
        )
        updated = update_rollout(
            conn,
            stored,
            now=now,
            hold=None,
            phase_started_at=now,
            phase_routing_version=written.version,
            memory=SequentialMemory(),
            warned=frozenset(),
        )
        record_event(
            conn,
            time=now,
            model_id=info.id,
            kind=EventKind.ROLLOUT_RESUMED,
            actor=actor,
            from_state=describe(state, share),
            to_state=describe(updated.state, share),
            rule=Rule.MANUAL_RESUME,
            reason=reason,
            rollout_id=state.id,
            data={
                **hold.to_json(),
                "held_hours": (now - hold.since).total_seconds() / 3600,
                "routing_version": written.version,
            },
        )
        return updated


def approve(ws: Context, model: str, *, reason: str, actor: str | None = None) -> StoredRollout:
    """Approve leaving the current ramp step (its gate's `approval`); the next look advances once every
    other check of the step is met. Recorded on the rollout and as an event, with who and when."""
    reason = _require_reason(reason, "approve")
    actor = actor or current_actor()
    now = ws.clock.now()
    with ws.writing() as conn:
        info, stored = _active(conn, model)
        state = stored.state
        if state.phase is not Phase.RAMP or state.step is None:
            raise ConflictError(
                f"rollout {state.id} of {model!r} is in {state.phase.value}: only a ramp step is approved"
            )
        share = ramp_shares(stored.policy)[state.step]
        if not stored.policy.ramp.gate(share).approval:
            raise ConflictError(
                f"the {share:.0%} step of rollout {state.id} of {model!r} needs no approval "
                "(its policy's ramp.gates asks none)"
            )
        given = state.approval(state.step)
        if given is not None:
            raise ConflictError(
                f"the {share:.0%} step of rollout {state.id} of {model!r} was approved by {given.by} at "
                f"{fmt_time(given.at)}"
            )
        approval = StepApproval(state.step, share, actor, now, reason)
        updated = update_rollout(conn, stored, now=now, approvals=(*state.approvals, approval))
        where = describe(state, share)
        record_event(
            conn,
            time=now,
            model_id=info.id,
            kind=EventKind.ROLLOUT_APPROVED,
            actor=actor,
            from_state=where,
            to_state=where,
            rule=Rule.MANUAL_APPROVE,
            reason=reason,
            rollout_id=state.id,
            data=approval.to_json(),
        )
        return updated


def _restore_previous(ws: Context, model: str, reason: str, actor: str) -> StoredRollout:
    now = ws.clock.now()
    with ws.writing() as conn:
        info = registry.get_model(conn, model, for_update=True)
        last = latest_rollout(conn, info.id)
        champion, previous = info.aliases.get(Alias.CHAMPION.value), info.aliases.get(Alias.PREVIOUS.value)
        if last is None or last.state.outcome is not Outcome.PROMOTED or previous is None:
            raise ConflictError(f"model {model!r} has no active rollout and no promotion to roll back")
        if champion != last.state.challenger_version:
            raise ConflictError(
                f"the champion of {model!r} (v{champion}) is not what rollout {last.state.id} promoted "
                f"(v{last.state.challenger_version}); move aliases by hand with `pitstop models set-champion`"
            )
        routing = current_routing(conn, info.id)
        salt = routing.salt if routing else new_salt()
        routes = Routes.champion_only(previous, salt, rollout_id=last.state.id)
        provider().finalize(conn, info, routes, Change(now, actor, reason, Rule.MANUAL_ROLLBACK))
        registry.move_aliases(
            conn,
            info,
            {Alias.CHAMPION: previous, Alias.PREVIOUS: champion},
            now=now,
            actor=actor,
            reason=reason,
            rollout_id=last.state.id,
        )
        updated = update_rollout(
            conn,
            last,
            now=now,
            outcome=Outcome.ROLLED_BACK,
            stage=Outcome.PROMOTED.value,
            reason=reason,
            ended_at=now,
        )
        record_event(
            conn,
            time=now,
            model_id=info.id,
            kind=EventKind.ROLLOUT_TRANSITION,
            actor=actor,
            from_state=Outcome.PROMOTED.value,
            to_state=Outcome.ROLLED_BACK.value,
            rule=Rule.MANUAL_ROLLBACK,
            reason=reason,
            rollout_id=last.state.id,
            data={"restored_champion": previous, "demoted": champion},
        )
        return updated


@dataclass(frozen=True)
class RolloutStatus:
    """A rollout as `rollout status` shows it; the live parts are None once it has ended."""

    rollout: StoredRollout
    evidence: dict[str, Any] | None
    next_check: dict[str, Any] | None
    elapsed_hours: float
    remaining_hours: float | None
    comparison: dict[str, Any] | None = None  # `comparison.live_comparison`
    progress: dict[str, Any] | None = None  # `comparison.sample_progress`
    latency: dict[str, Any] | None = None  # `comparison.latency_check`
    errors: ErrorMessages = field(default_factory=ErrorMessages)  # failed model calls of the phase
    load_failures: tuple[LoadFailure, ...] = ()  # gateways that cannot load the challenger
    gate: GateProgress | None = None  # the current ramp step's gate and what it has so far
    spooling: tuple[str, ...] = ()  # gateways still writing spooled records: the controller waits
    gateways: tuple[Heartbeat, ...] = ()  # the live gateways, whatever they serve
    cluster: Event | None = None  # way B (`routing.provider: kubernetes`): the model's latest cluster step

    def gateway_lines(self) -> list[dict[str, Any]]:
        """Each live gateway serving the model: its routing version, the versions it has loaded and
        warmed, and whether it serves the current phase's table (`acknowledged`)."""
        state, out = self.rollout.state, []
        for heartbeat in self.gateways:
            served = heartbeat.serves(state.model)
            if served is None:
                continue
            out.append(
                {
                    "gateway": heartbeat.gateway,
                    "last_seen": heartbeat.last_seen.isoformat(),
                    **served.to_dict(),
                    "acknowledged": served.routing_version >= state.phase_routing_version,
                }
            )
        return out

    @property
    def unavailable(self) -> list[str]:
        """`challenger v7 cannot be loaded: ModuleNotFoundError: …`, once per distinct error."""
        return cannot_load(self.rollout.state.challenger_version, self.load_failures)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = json_safe(  # an infinite ratio (champion error 0) is no JSON number
            {
                **self.rollout.to_dict(),
                "elapsed_hours": self.elapsed_hours,
                "remaining_hours": self.remaining_hours,
                "comparison": self.comparison,
                "progress": self.progress,
                "latency": self.latency,
                "evidence": self.evidence,
                "next_check": self.next_check,
                "last_check": self.rollout.status,
                "policy": self.rollout.policy.model_dump(mode="json"),
                "errors": self.errors.to_dict(),
                "load_failures": [failure.to_dict() for failure in self.load_failures],
                "unavailable": self.unavailable,
                "gate": None if self.gate is None else self.gate.to_json(),
                "spooling": list(self.spooling),
                "gateways": self.gateway_lines(),
                "cluster": None if self.cluster is None else self.cluster.to_dict(),
            }
        )
        return out


def _phase_limit_hours(stored: StoredRollout) -> float | None:
    state, policy = stored.state, stored.policy
    limit = {
        Phase.SHADOW: policy.shadow.max_duration,
        Phase.AB_TEST: policy.ab_test.max_duration,
        Phase.RAMP: GateProgress.of(state, policy, ArmSummary(), ArmSummary()).min_duration,
    }.get(state.phase)
    return None if limit is None else limit.total_seconds() / 3600


def status(ws: Context, model: str, rollout_id: int | None = None) -> RolloutStatus:
    """The active (or latest, or given) rollout with live evidence and what the next check would do."""
    with ws.reading() as conn:
        info = registry.get_model(conn, model)
        stored = (
            get_rollout(conn, rollout_id)
            if rollout_id
            else (active_rollout(conn, info.id) or latest_rollout(conn, info.id))
        )
    if stored is None or stored.state.model != model:
        raise NotFoundError(f"model {model!r} has no rollout yet; start one with `pitstop rollout start`")
    now = ws.clock.now()
    end = stored.state.ended_at or now
    elapsed = (end - stored.state.phase_started_at).total_seconds() / 3600
    with ws.reading() as conn:
        errors = error_messages(
            conn, stored.model_id, since_routing_version=stored.state.phase_routing_version, until=end
        )
        live = tuple(gateways.live_heartbeats(conn, now, ws.config.serving.gateway_timeout))
        steps = list_events(conn, stored.model_id, kinds=(EventKind.CLUSTER_STEP,), limit=1)
    cluster = steps[0] if steps else None
    if stored.state.outcome is not None:
        return RolloutStatus(stored, None, None, elapsed, None, errors=errors, gateways=live, cluster=cluster)
    evidence = read_evidence(ws, stored, now)
    with ws.reading() as conn:
        spooling = spool_backlog.spooling_gateways(conn, now)
    preview = decide(stored.state, stored.policy, evidence, now)
    limit = _phase_limit_hours(stored)
    target = next_target(stored)
    next_check = {
        "action": preview.action.value,
        "rule": preview.rule,
        "reason": preview.reason,
        "numbers": preview.numbers,
        "next_phase": None if target is None else {"phase": target.phase.value, "step": target.step},
    }
    return RolloutStatus(
        stored,
        evidence.to_dict(),
        next_check,
        elapsed,
        None if limit is None else max(limit - elapsed, 0.0),
        comparison=live_comparison(stored.state, stored.policy, evidence),
        progress=sample_progress(stored.state, stored.policy, evidence),
        latency=latency_check(stored.state, stored.policy, evidence),
        errors=errors,
        load_failures=evidence.load_failures,
        gate=_gate(stored, evidence),
        spooling=tuple(spooling),
        gateways=live,
        cluster=cluster,
    )


def _gate(stored: StoredRollout, evidence: Evidence) -> GateProgress | None:
    """In the ramp, what the current step's gate needs and has so far (None in other phases)."""
    if stored.state.phase is not Phase.RAMP:
        return None
    champion, challenger = compared_arms(stored.state, stored.policy, evidence)
    return GateProgress.of(stored.state, stored.policy, champion, challenger)


def history(ws: Context, model: str) -> list[Event]:
    """Every event of the model: rollout transitions, routing changes, alias moves, gate results."""
    with ws.reading() as conn:
        info = registry.get_model(conn, model)
        return list_events(conn, info.id)


def rollouts(ws: Context, model: str) -> list[StoredRollout]:
    with ws.reading() as conn:
        return list_rollouts(conn, registry.get_model(conn, model).id)
