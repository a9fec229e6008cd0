"""Rollout rows in the store: read, create, and change with an optimistic revision check."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from pitstop.config import Policy
from pitstop.errors import ConflictError, NotFoundError
from pitstop.policies import CONFIG_SOURCE
from pitstop.rollout.phases import Outcome, Phase
from pitstop.rollout.plan import AbPlan
from pitstop.rollout.state import Hold, RolloutState, SequentialMemory, StepApproval, challenger_share
from pitstop.store.tables import models, rollouts


class StaleRolloutError(ConflictError):
    """The rollout changed since it was read (another controller or a person acted first)."""


@dataclass(frozen=True)
class StoredRollout:
    """A rollout row: the state the decision sees, plus what only the store and the reports need."""

    state: RolloutState
    model_id: int
    policy: Policy
    status: dict[str, Any] | None
    started_by: str
    updated_at: datetime
    # where `policy` came from (`policies.choose`): `pitstop.yaml`, `file:<path> sha256:<hex>`,
    # `policy:<name>@<revision>` or `python sha256:<hex>`
    policy_source: str = CONFIG_SOURCE

    def to_dict(self) -> dict[str, Any]:
        s = self.state
        return {
            "rollout_id": s.id,
            "model": s.model,
            "champion_version": s.champion_version,
            "challenger_version": s.challenger_version,
            "phase": s.phase.value,
            "step": s.step,
            "challenger_share": challenger_share(s, self.policy) if s.outcome is None else None,
            "outcome": s.outcome.value if s.outcome else None,
            "stage": s.stage,
            "reason": s.reason,
            "started_at": s.started_at.isoformat(),
            "started_by": self.started_by,
            "phase_started_at": s.phase_started_at.isoformat(),
            "ended_at": s.ended_at.isoformat() if s.ended_at else None,
            "plan": None if s.plan is None else s.plan.to_json(),
            "policy_source": self.policy_source,
            "held": None if s.hold is None else s.hold.to_json(),
            "approvals": [approval.to_json() for approval in s.approvals],
        }


def _from_row(row: Any, model: str) -> StoredRollout:
    state = RolloutState(
        id=row.id,
        model=model,
        champion_version=row.champion_version,
        challenger_version=row.challenger_version,
        phase=Phase(row.phase),
        step=row.step,
        phase_started_at=row.phase_started_at,
        started_at=row.started_at,
        phase_routing_version=row.phase_routing_version,
        salt=row.salt,
        plan=None if row.plan is None else AbPlan.from_json(row.plan),
        memory=SequentialMemory.from_json(row.memory),
        outcome=Outcome(row.outcome) if row.outcome else None,
        stage=row.stage,
        reason=row.reason,
        ended_at=row.ended_at,
        revision=row.revision,
        hold=None if row.held_at is None else Hold(row.held_at, row.held_rule or "", row.held_reason or ""),
        warned=frozenset(row.warned or ()),
        approvals=tuple(StepApproval.from_json(item) for item in row.approvals or ()),
    )
    return StoredRollout(
        state=state,
        model_id=row.model_id,
        policy=stored_policy(row.policy),
        status=row.status,
        started_by=row.started_by,
        updated_at=row.updated_at,
        policy_source=row.policy_source or CONFIG_SOURCE,
    )


def stored_policy(recorded: dict[str, Any]) -> Policy:
    """The policy a rollout recorded when it started, readable after keys' values were retired.

    `shadow.test: diebold_mariano` was the paired t (its horizon was always 1) and the config now
    refuses it; a rollout that recorded it reads as `paired_t`, the same test.
    """
    shadow = recorded.get("shadow")
    if isinstance(shadow, dict) and shadow.get("test") == "diebold_mariano":
        recorded = {**recorded, "shadow": {**shadow, "test": "paired_t"}}
    return Policy.model_validate(recorded)


def _select() -> Any:
    return select(rollouts, models.c.name.label("model_name")).join(
        models, models.c.id == rollouts.c.model_id
    )


def active_rollout(conn: Connection, model_id: int) -> StoredRollout | None:
    row = conn.execute(_select().where(rollouts.c.model_id == model_id, rollouts.c.outcome.is_(None))).first()
    return None if row is None else _from_row(row, row.model_name)


def active_rollouts(conn: Connection) -> list[StoredRollout]:
    rows = conn.execute(_select().where(rollouts.c.outcome.is_(None)).order_by(rollouts.c.id)).all()
    return [_from_row(row, row.model_name) for row in rows]


def latest_rollout(conn: Connection, model_id: int) -> StoredRollout | None:
    row = conn.execute(
        _select().where(rollouts.c.model_id == model_id).order_by(rollouts.c.id.desc()).limit(1)
    ).first()
    return None if row is None else _from_row(row, row.model_name)


def get_rollout(conn: Connection, rollout_id: int) -> StoredRollout:
    row = conn.execute(_select().where(rollouts.c.id == rollout_id)).first()
    if row is None:
        raise NotFoundError(f"no rollout {rollout_id}")
    return _from_row(row, row.model_name)


def rollout_of(conn: Connection, model_id: int, model: str, rollout_id: int) -> StoredRollout:
    """Rollout `rollout_id` of the model; NotFoundError names the model and the rollouts it has."""
    row = conn.execute(_select().where(rollouts.c.id == rollout_id)).first()
    if row is not None and row.model_id == model_id:
        return _from_row(row, row.model_name)
    ids = conn.execute(
        select(rollouts.c.id).where(rollouts.c.model_id == model_id).order_by(rollouts.c.id)
    ).scalars()
    elsewhere = f" (rollout {rollout_id} is of model {row.model_name!r})" if row is not None else ""
    raise NotFoundError(f"model {model!r} has no rollout {rollout_id}{elsewhere}; {_its_rollouts(list(ids))}")


def _its_rollouts(ids: list[int]) -> str:
    """`its rollouts are 1, 2, 3`, shortened to the first and last few when there are many."""
    if not ids:
        return "it has none yet; start one with `pitstop rollout start`"
    if len(ids) == 1:
        return f"its only rollout is {ids[0]}"
    if len(ids) <= 10:
        return f"its rollouts are {', '.join(map(str, ids))}"
    return f"its {len(ids)} rollouts are {', '.join(map(str, ids[:3]))}, …, {', '.join(map(str, ids[-3:]))}"


def list_rollouts(conn: Connection, model_id: int) -> list[StoredRollout]:
    rows = conn.execute(_select().where(rollouts.c.model_id == model_id).order_by(rollouts.c.id)).all()
    return [_from_row(row, row.model_name) for row in rows]


def insert_rollout(
    conn: Connection,
    *,
    model_id: int,
    model: str,
    champion: int,
    challenger: int,
    salt: str,
    policy: Policy,
    now: datetime,
    actor: str,
    phase_routing_version: int,
    policy_source: str = CONFIG_SOURCE,
) -> StoredRollout:
    result = conn.execute(
        rollouts.insert().values(
            model_id=model_id,
            champion_version=champion,
            challenger_version=challenger,
            phase=Phase.SHADOW.value,
            step=None,
            salt=salt,
            policy=policy.model_dump(mode="json"),
            policy_source=policy_source,
            memory=SequentialMemory().to_json(),
            status=None,
            phase_routing_version=phase_routing_version,
            phase_started_at=now,
            started_at=now,
            started_by=actor,
            updated_at=now,
            revision=1,
        )
    )
    assert result.inserted_primary_key is not None
    return get_rollout(conn, int(result.inserted_primary_key[0]))


def update_rollout(
    conn: Connection, before: StoredRollout, *, now: datetime, **changes: Any
) -> StoredRollout:
    """Write `changes` only if nobody changed the row since `before` was read; bump the revision.
    Enums are written as their values, the A/B plan and the sequential memory as their JSON."""
    values = {**changes, "updated_at": now, "revision": before.state.revision + 1}
    for key in ("phase", "outcome"):
        if hasattr(values.get(key), "value"):
            values[key] = values[key].value
    for key in ("plan", "memory"):
        if isinstance(values.get(key), AbPlan | SequentialMemory):
            values[key] = values[key].to_json()
    if "hold" in values:  # a Hold (or None: not held) is three columns
        hold = values.pop("hold")
        values.update(
            held_at=None if hold is None else hold.since,
            held_rule=None if hold is None else hold.rule,
            held_reason=None if hold is None else hold.reason,
        )
    if "warned" in values:
        values["warned"] = sorted(values["warned"])
    if "approvals" in values:
        values["approvals"] = [approval.to_json() for approval in values["approvals"]]
    result = conn.execute(
        rollouts.update()
        .where(rollouts.c.id == before.state.id, rollouts.c.revision == before.state.revision)
        .values(**values)
    )
    if result.rowcount != 1:
        raise StaleRolloutError(
            f"rollout {before.state.id} of {before.state.model!r} changed while this decision was made; "
            "it will be decided again on fresh data"
        )
    return get_rollout(conn, before.state.id)
