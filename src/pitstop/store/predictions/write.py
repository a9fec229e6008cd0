"""Writing the prediction log: many records in one statement or one COPY (`serving.predlog` batches
them, off the request path, and decides what to retry).

Both paths bypass SQLAlchemy's per-row parameter processing, which would otherwise cost more of the
gateway's CPU (and GIL) than the serving itself. On SQLite, each statement inserts up to
`SQLITE_ROWS_PER_INSERT` rows: the sqlite3 module releases the interpreter lock around every
statement it runs, so an `executemany` of one row per statement hands the lock back and forth with
the event loop once per record, which under load costs the writer several times its own work
(bench/RESULTS.md) and the event loop a forced switch each time.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy import Connection

from pitstop.store.tables import predictions


class PredictionRecord(NamedTuple):
    """One prediction as stored; a tuple, because the gateway makes thousands a second."""

    model_id: int
    request_id: str
    user_id: str | None
    time: float
    version: int
    arm: str
    role: str
    routing_version: int
    bucketed_by: str
    prediction: float | None
    latency_ms: float
    error: str | None
    probabilities: str | None = None  # a multiclass prediction's, as a JSON array (`prediction`: the class)


COLUMNS = PredictionRecord._fields
SQLITE_ROWS_PER_INSERT = 500  # 6,000 parameters, within any SQLite's limit since 3.32
LOOKUP_CHUNK = 500  # request ids per look-up of records already written


def insert_predictions(conn: Connection, records: Sequence[PredictionRecord]) -> None:
    """Insert `records` in the caller's transaction: COPY on PostgreSQL, multi-row INSERTs on SQLite."""
    raw = conn.connection.driver_connection
    assert raw is not None
    if conn.dialect.name == "postgresql":
        with (
            raw.cursor() as cursor,
            cursor.copy(f"COPY predictions ({', '.join(COLUMNS)}) FROM STDIN") as copy,
        ):
            for row in records:
                copy.write_row(row)
        return
    # SQLite, the only other store pitstop accepts (store.engine.parse_database_url)
    step = min(SQLITE_ROWS_PER_INSERT, raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(COLUMNS))
    for start in range(0, len(records), step):
        chunk = records[start : start + step]
        raw.execute(_sqlite_insert(len(chunk)), [value for row in chunk for value in row])


@lru_cache(maxsize=16)
def _sqlite_insert(rows: int) -> str:
    """`INSERT INTO predictions (...) VALUES (?, ...), ...` for `rows` rows."""
    one = f"({', '.join('?' * len(COLUMNS))})"
    return f"INSERT INTO predictions ({', '.join(COLUMNS)}) VALUES {', '.join([one] * rows)}"


def insert_new_predictions(conn: Connection, records: Sequence[PredictionRecord]) -> int:
    """Insert the records the store does not hold yet; returns how many were inserted.

    For records written a second time (the prediction-log spool is drained at least once: a batch
    whose commit was lost with the connection is written again). The predictions table has no unique
    key (an index by random request ids cost every insert a page: migration 0004), so the records
    already there are looked up by (model, request_id, role, version, time) within the batch's time
    span, which the `(model_id, time)` index bounds.
    """
    c = predictions.c
    held: set[tuple[object, ...]] = set()
    for model_id in {r.model_id for r in records}:
        own = [r for r in records if r.model_id == model_id]
        ids = sorted({r.request_id for r in own})
        for start in range(0, len(ids), LOOKUP_CHUNK):
            query = (
                sa.select(c.request_id, c.role, c.version, c.time)
                .where(c.model_id == model_id)
                .where(c.time.between(min(r.time for r in own), max(r.time for r in own)))
                .where(c.request_id.in_(ids[start : start + LOOKUP_CHUNK]))
            )
            held.update((model_id, *row) for row in conn.execute(query))
    fresh = [r for r in records if (r.model_id, r.request_id, r.role, r.version, r.time) not in held]
    if fresh:
        insert_predictions(conn, fresh)
    return len(fresh)
