"""Ground truth: labels upserted by request_id, joined to predictions later, at evaluation time.

A label may arrive before its prediction record or long after; a corrected label replaces the old
one. Labels decide which model wins, so they are written synchronously (acknowledged only once
stored) and the HTTP endpoint that takes them is token-protected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from pitstop.store.tables import labels


@dataclass(frozen=True, slots=True)
class Label:
    """The observed outcome of one request: `value` (a number; 1/0 for a class), at event `time`."""

    request_id: str
    value: float
    time: datetime | None = None

    def __post_init__(self) -> None:
        if not self.request_id:
            raise ValueError("request_id must not be empty")
        if not math.isfinite(self.value):
            raise ValueError(f"label must be a finite number, got {self.value}")


def upsert_labels(conn: Connection, model_id: int, items: list[Label], *, received_at: datetime) -> int:
    """Insert or replace labels by (model, request_id); within one call the last label of an id wins."""
    latest: dict[str, Label] = {item.request_id: item for item in items}
    received = received_at.timestamp()
    rows = [
        {
            "model_id": model_id,
            "request_id": item.request_id,
            "value": float(item.value),
            "time": item.time.timestamp() if item.time is not None else received,
            "received_at": received,
        }
        for item in latest.values()
    ]
    if not rows:
        return 0
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(labels)
    statement = statement.on_conflict_do_update(
        index_elements=[labels.c.model_id, labels.c.request_id],
        set_={
            "value": statement.excluded.value,
            "time": statement.excluded.time,
            "received_at": statement.excluded.received_at,
        },
    )
    conn.execute(statement, rows)
    return len(rows)


def get_labels(conn: Connection, model_id: int) -> dict[str, tuple[float, float]]:
    """request_id → (value, time) for every label of the model (tests and small tools)."""
    rows = conn.execute(
        select(labels.c.request_id, labels.c.value, labels.c.time).where(labels.c.model_id == model_id)
    )
    return {row.request_id: (row.value, row.time) for row in rows}
