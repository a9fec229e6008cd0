"""The append-only event log: every decision and every alias move, with who, when, why and the numbers."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, select

from pitstop.rules import Rule
from pitstop.store.tables import events, models


class EventKind(StrEnum):
    """What an event records; stored as its value."""

    MODEL_CREATED = "model_created"
    MODEL_UPDATED = "model_updated"  # its description or metadata changed
    MODEL_ARCHIVED = "model_archived"
    MODEL_UNARCHIVED = "model_unarchived"
    LOSS_CHANGED = "loss_changed"
    PICKLE_POLICY = "pickle_policy"  # pickled artifacts allowed or refused
    DATASET_ADDED = "dataset_added"
    VERSION_REGISTERED = "version_registered"
    VERSION_SIGNED = "version_signed"
    VERSION_CONVERTED = "version_converted"  # its artifact replaced by another format
    GATE_EVALUATED = "gate_evaluated"
    GATE_REVIEW_ACCEPTED = "gate_review_accepted"  # a person accepted a version held for review
    ALIAS_MOVED = "alias_moved"  # the rule names the alias
    ROUTING_CHANGED = "routing_changed"
    ROLLOUT_TRANSITION = "rollout_transition"  # a rollout changed phase, step or ended
    ROLLOUT_HELD = "rollout_held"  # a health trigger whose action is hold froze the rollout's share
    ROLLOUT_RESUMED = "rollout_resumed"  # a person resumed a held rollout
    ROLLOUT_WARNING = "rollout_warning"  # a health trigger whose action is warn fired (once per phase/step)
    ROLLOUT_APPROVED = "rollout_approved"  # a person approved leaving the current ramp step


@dataclass(frozen=True)
class Event:
    id: int
    time: datetime
    model: str | None
    kind: EventKind
    actor: str
    from_state: str | None
    to_state: str | None
    rule: str | None
    reason: str | None
    rollout_id: int | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["time"] = self.time.isoformat()
        return out


def record_event(
    conn: Connection,
    *,
    time: datetime,
    model_id: int | None,
    kind: EventKind,
    actor: str,
    from_state: str | None = None,
    to_state: str | None = None,
    rule: Rule | None = None,
    reason: str | None = None,
    rollout_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> int:
    """Append one event inside the caller's transaction; returns its id."""
    result = conn.execute(
        events.insert().values(
            time=time,
            model_id=model_id,
            kind=str(kind),  # the store keeps plain strings (a driver may dump an enum by its name)
            actor=actor,
            from_state=from_state,
            to_state=to_state,
            rule=None if rule is None else str(rule),
            reason=reason,
            rollout_id=rollout_id,
            data=data or {},
        )
    )
    assert result.inserted_primary_key is not None
    return int(result.inserted_primary_key[0])


def list_events(
    conn: Connection,
    model_id: int | None = None,
    *,
    kinds: tuple[EventKind, ...] | None = None,
    rollout_id: int | None = None,
    limit: int | None = None,
) -> list[Event]:
    """Events in the order they happened (newest last)."""
    query = select(events, models.c.name).select_from(
        events.outerjoin(models, events.c.model_id == models.c.id)
    )
    if model_id is not None:
        query = query.where(events.c.model_id == model_id)
    if kinds:
        query = query.where(events.c.kind.in_([str(kind) for kind in kinds]))
    if rollout_id is not None:
        query = query.where(events.c.rollout_id == rollout_id)
    query = query.order_by(events.c.id.desc())
    if limit is not None:
        query = query.limit(limit)
    rows = list(conn.execute(query))
    return [
        Event(
            id=row.id,
            time=row.time,
            model=row.name,
            kind=EventKind(row.kind),
            actor=row.actor,
            from_state=row.from_state,
            to_state=row.to_state,
            rule=row.rule,
            reason=row.reason,
            rollout_id=row.rollout_id,
            data=row.data or {},
        )
        for row in reversed(rows)
    ]
