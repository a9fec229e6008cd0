"""On PostgreSQL, the prediction log becomes range-partitioned by UTC day of event time (issue 21).

A look or a report reads a bounded span of time, so it reads only that span's partitions, whatever the
model's older history holds; retention drops a day's partition whole instead of deleting its rows one
by one (`store.predictions.partitions`). The rows are copied into the new table: one partition per
day that held rows, the `AHEAD_DAYS` days ahead, and a DEFAULT partition for every other time. The
primary key becomes `(id, time)` (a partitioned table's unique keys hold its partition key); ids keep
their sequence. SQLite is unchanged.

Labels stay one table: a label is upserted by (model, request id), a key without time, and its time
(when the outcome was known) is not its prediction's, so a partition by it would neither keep that
key unique nor prune with the predictions.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

import time

from alembic import op
from sqlalchemy import text

from pitstop.store.predictions.partitions import (
    AHEAD_DAYS,
    DAY,
    create_day_partition,
    create_default_partition,
    day_of,
    days_held,
)

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_OLD = "predictions_old"
_INDEXES = {
    "ix_predictions_model_routing": "model_id, routing_version",
    "ix_predictions_model_time": "model_id, time",
}


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    _set_aside("predictions", _OLD)
    conn.execute(text(f"CREATE TABLE predictions (LIKE {_OLD} INCLUDING DEFAULTS) PARTITION BY RANGE (time)"))
    conn.execute(text("ALTER TABLE predictions ADD CONSTRAINT predictions_pkey PRIMARY KEY (id, time)"))
    _create_indexes()
    create_default_partition(conn)
    today = day_of(time.time())
    days = set(days_held(conn, _OLD)) | {today + k * DAY for k in range(-1, AHEAD_DAYS + 1)}
    for day in sorted(days):
        create_day_partition(conn, day)
    conn.execute(text(f"INSERT INTO predictions SELECT * FROM {_OLD}"))
    conn.execute(text(f"DROP TABLE {_OLD}"))
    conn.execute(text("ALTER SEQUENCE predictions_id_seq OWNED BY predictions.id"))


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    _set_aside("predictions", _OLD)
    conn.execute(text(f"CREATE TABLE predictions (LIKE {_OLD} INCLUDING DEFAULTS)"))
    conn.execute(text(f"INSERT INTO predictions SELECT * FROM {_OLD}"))
    conn.execute(text("ALTER TABLE predictions ADD CONSTRAINT predictions_pkey PRIMARY KEY (id)"))
    _create_indexes()
    conn.execute(text(f"DROP TABLE {_OLD}"))  # with its partitions
    conn.execute(text("ALTER SEQUENCE predictions_id_seq OWNED BY predictions.id"))


def _set_aside(table: str, name: str) -> None:
    """Rename the log, its primary key and indexes out of the new table's way; its sequence is kept."""
    conn = op.get_bind()
    conn.execute(text("ALTER SEQUENCE predictions_id_seq OWNED BY NONE"))
    conn.execute(text(f"ALTER TABLE {table} RENAME TO {name}"))
    conn.execute(text(f"ALTER TABLE {name} RENAME CONSTRAINT {table}_pkey TO {name}_pkey"))
    for index in _INDEXES:
        conn.execute(text(f"ALTER INDEX {index} RENAME TO {index.replace('predictions', name)}"))


def _create_indexes() -> None:
    for index, columns in _INDEXES.items():
        op.get_bind().execute(text(f"CREATE INDEX {index} ON predictions ({columns})"))
