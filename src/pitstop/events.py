"""The append-only event log: every decision and every alias move, with who, when, why and the numbers."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, select

from pitstop.rules import Rule
from pitstop.store.tables import events, models, notification_outbox


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
    POLICY_ADDED = "policy_added"  # a named policy's new revision (no model)
    ROLLOUT_HELD = "rollout_held"  # a health trigger whose action is hold froze the rollout's share
    ROLLOUT_RESUMED = "rollout_resumed"  # a person resumed a held rollout
    ROLLOUT_WARNING = "rollout_warning"  # a health trigger whose action is warn fired (once per phase/step)
    ROLLOUT_APPROVED = "rollout_approved"  # a person approved leaving the current ramp step
    # an MLflow alias pitstop owns (`@champion`, `@previous`) moved by pitstop, or found moved outside
    # pitstop during a rollout (`data.outside`): the alias history MLflow does not keep
    MLFLOW_ALIAS = "mlflow_alias"
    # way B (`routing.provider: kubernetes`): the leading controller created, scaled or switched a
    # Kubernetes object, or found a switch not yet possible (`data` names the objects and versions)
    CLUSTER_STEP = "cluster_step"


# The kinds of event sent to notification receivers (`pitstop.notify`): the one place to add a kind.
NOTIFIED_KINDS: frozenset[EventKind] = frozenset(
    {
        EventKind.ROLLOUT_TRANSITION,
        EventKind.ROLLOUT_HELD,
        EventKind.ROLLOUT_RESUMED,
        EventKind.ROLLOUT_WARNING,
        EventKind.ROLLOUT_APPROVED,
        EventKind.ROUTING_CHANGED,
        EventKind.ALIAS_MOVED,
    }
)


def is_notified(
    kind: EventKind, rule: Rule | str | None, rollout_id: int | None = None, from_state: str | None = None
) -> bool:
    """Whether an event goes to the notification outbox: a notified kind, except the routing changes and
    alias moves that a rollout makes (its transition, which is notified, says what they do). Of those
    made by hand, routing set with `pitstop route` and a champion replaced by hand are notified (not
    the first champion a model gets: that is set-up, not an override).

    >>> is_notified(EventKind.ROLLOUT_TRANSITION, Rule.AB_WIN, 3)
    True
    >>> is_notified(EventKind.DATASET_ADDED, None)
    False
    >>> routing = EventKind.ROUTING_CHANGED
    >>> is_notified(routing, Rule.MANUAL), is_notified(routing, Rule.ROLLOUT_START, 3)
    (True, False)
    >>> alias = EventKind.ALIAS_MOVED
    >>> is_notified(alias, Rule.ALIAS_CHAMPION, None, "1"), is_notified(alias, Rule.ALIAS_CHAMPION, 3, "1")
    (True, False)
    >>> is_notified(alias, Rule.ALIAS_CHAMPION, None, None)  # the first champion
    False
    """
    if kind not in NOTIFIED_KINDS:
        return False
    if kind is EventKind.ROUTING_CHANGED:  # a champion set by hand is notified as its alias move
        return rule == Rule.MANUAL
    if kind is EventKind.ALIAS_MOVED:
        return rule == Rule.ALIAS_CHAMPION and rollout_id is None and from_state is not None
    return True


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
    """Append one event inside the caller's transaction; returns its id. A notified one (`is_notified`)
    also gets its notification outbox row there, so it is sent exactly when the decision commits."""
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
    event_id = int(result.inserted_primary_key[0])
    if is_notified(kind, rule, rollout_id, from_state):
        conn.execute(notification_outbox.insert().values(event_id=event_id, created_at=time))
    return event_id


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
    return [_event(row) for row in reversed(rows)]


def events_by_id(conn: Connection, ids: list[int]) -> dict[int, Event]:
    """The events with these ids (a missing id is left out)."""
    if not ids:
        return {}
    query = select(events, models.c.name).select_from(
        events.outerjoin(models, events.c.model_id == models.c.id)
    )
    rows = conn.execute(query.where(events.c.id.in_(ids)))
    return {row.id: _event(row) for row in rows}


def _event(row: Any) -> Event:
    return Event(
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
