"""Writing and reading labels: one row per (model, request id), joined to predictions at read time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from sqlalchemy import Connection, String, select
from sqlalchemy.dialects import postgresql, sqlite

from pitstop.store.tables import labels

_REQUEST_ID_TYPE = labels.c.request_id.type
assert isinstance(_REQUEST_ID_TYPE, String) and _REQUEST_ID_TYPE.length is not None
REQUEST_ID_LENGTH: int = _REQUEST_ID_TYPE.length  # the column's bound, 200


class LabelRow(NamedTuple):
    """One label as stored: its value at event `time`, received at `received_at` (epoch seconds)."""

    model_id: int
    request_id: str
    value: float
    time: float
    received_at: float


def upsert_labels(conn: Connection, rows: Sequence[LabelRow]) -> None:
    """Insert or replace each row by (model, request id); the store's refusal propagates."""
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
    conn.execute(statement, [row._asdict() for row in rows])


def get_labels(conn: Connection, model_id: int) -> dict[str, tuple[float, float]]:
    """request_id → (value, time) for every label of the model (tests and small tools)."""
    found = conn.execute(
        select(labels.c.request_id, labels.c.value, labels.c.time).where(labels.c.model_id == model_id)
    )
    return {row.request_id: (row.value, row.time) for row in found}
