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

from sqlalchemy import Connection


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
