"""Changing a model after it is created: its description and metadata, archiving and unarchiving.

Each change is one row update and one event in the caller's transaction, and keeps everything else:
an archived model keeps its versions, events, routing and predictions, and is still served (a
gateway serves what its routing table says); it takes no new versions, rollouts or routes until it
is unarchived. The caller checks that no rollout is active (the rollouts live a layer above).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from pitstop import model_metadata, registry
from pitstop.errors import ConflictError, UsageError, mention
from pitstop.events import EventKind, record_event
from pitstop.registry import ModelInfo
from pitstop.store.tables import models


def update(
    conn: Connection,
    name: str,
    *,
    description: str | None = None,
    metadata: Mapping[str, str | None] | None = None,
    now: datetime,
    actor: str,
) -> ModelInfo:
    """Set the description (`""` clears it) and apply metadata changes (None removes a key); an event
    records before and after. Nothing to change is an error."""
    if description is None and not metadata:
        raise UsageError(
            f"there is nothing to change: give a {mention('description')} or {mention('metadata')} to "
            "set or remove"
        )
    current = registry.get_model(conn, name, for_update=True)
    values: dict[str, object] = {}
    if description is not None:
        values["description"] = model_metadata.check_description(description)
    if metadata:
        values["metadata"] = model_metadata.merge(current.metadata, metadata)
    before = {"description": current.description, "metadata": current.metadata}
    after = {**before, **values}
    if after == before:
        return current
    conn.execute(models.update().where(models.c.id == current.id).values(**values))
    record_event(
        conn,
        time=now,
        model_id=current.id,
        kind=EventKind.MODEL_UPDATED,
        actor=actor,
        data={"before": before, "after": after},
    )
    return registry.get_model(conn, name)


def archive(conn: Connection, name: str, *, reason: str, now: datetime, actor: str) -> ModelInfo:
    """Retire the model (the caller has checked no rollout is active); an event records it."""
    current = registry.get_model(conn, name, for_update=True)
    if current.archived is not None:
        raise ConflictError(
            f"model {name!r} is already archived ({current.archived.at:%Y-%m-%dT%H:%M:%SZ} by "
            f"{current.archived.by}: {current.archived.reason})"
        )
    marks = {"archived_at": now, "archived_by": actor, "archive_reason": reason}
    return _move(conn, current, marks, EventKind.MODEL_ARCHIVED, ("active", "archived"), reason, now, actor)


def unarchive(conn: Connection, name: str, *, reason: str, now: datetime, actor: str) -> ModelInfo:
    """Bring an archived model back: it takes versions, rollouts and routes again; an event records it."""
    current = registry.get_model(conn, name, for_update=True)
    if current.archived is None:
        raise ConflictError(f"model {name!r} is not archived")
    marks = {"archived_at": None, "archived_by": None, "archive_reason": None}
    was = {"archived": current.archived.to_dict()}
    return _move(
        conn, current, marks, EventKind.MODEL_UNARCHIVED, ("archived", "active"), reason, now, actor, was
    )


def _move(
    conn: Connection,
    current: ModelInfo,
    marks: dict[str, Any],
    kind: EventKind,
    states: tuple[str, str],
    reason: str,
    now: datetime,
    actor: str,
    data: dict[str, Any] | None = None,
) -> ModelInfo:
    """Set the model's archive columns to `marks` and record the move between `states` as `kind`."""
    conn.execute(models.update().where(models.c.id == current.id).values(**marks))
    record_event(
        conn,
        time=now,
        model_id=current.id,
        kind=kind,
        actor=actor,
        from_state=states[0],
        to_state=states[1],
        reason=reason,
        data=data,
    )
    return registry.get_model(conn, current.name)
