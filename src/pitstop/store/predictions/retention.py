"""Retention of the prediction log: records older than a bound leave the store (`store.retention`).

On PostgreSQL whole day partitions go (`partitions`): a partition is dropped only when its whole day
ends at or before the bound, so a record is never deleted row by row and the log keeps up to a day
more than the bound asks. The DEFAULT partition is never dropped; `partitions.ensure_partitions`
moves its rows into day partitions first. On SQLite (one table) records are deleted per model in
batches of `SQLITE_BATCH`, each batch its own short transaction, so a gateway's writer waits at most
one batch for the write lock.

Labels are kept: a label whose prediction is gone joins nothing, and labels have no time index to
delete them by.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, delete, func, select, text

from pitstop.store.engine import read_transaction, write_transaction
from pitstop.store.predictions import partitions
from pitstop.store.tables import models, predictions, rollouts

SQLITE_BATCH = 5_000


@dataclass(frozen=True)
class PrunedPart:
    """What left the log (or would, on a dry run): a day partition, or SQLite's rows before `end`."""

    name: str | None  # the partition; None on SQLite
    start: float | None  # epoch seconds; None on SQLite (everything before `end`)
    end: float
    rows: int


def open_rollouts_since(conn: Connection) -> datetime | None:
    """When the oldest rollout still open began; None when none is."""
    started = conn.execute(select(func.min(rollouts.c.started_at)).where(rollouts.c.outcome.is_(None)))
    value = started.scalar()
    return value if isinstance(value, datetime) else None


def prune(engine: Engine, before: float, *, dry_run: bool = False) -> list[PrunedPart]:
    """Remove the log's records made before `before` (epoch seconds); on a dry run, only say what."""
    with read_transaction(engine) as conn:
        partitioned = partitions.is_partitioned(conn)
    if partitioned:
        return _drop_partitions(engine, before, dry_run)
    return _delete_rows(engine, before, dry_run)


def _drop_partitions(engine: Engine, before: float, dry_run: bool) -> list[PrunedPart]:
    dropped = []
    with write_transaction(engine) as conn:
        conn.execute(text(f"SET LOCAL lock_timeout = '{partitions.LOCK_TIMEOUT}'"))
        for part in partitions.partitions(conn):
            if part.start is None or part.end is None or part.end > before:
                continue
            if dry_run:
                rows = int(conn.execute(text(f"SELECT count(*) FROM {part.name}")).scalar_one())
            else:
                rows = partitions.drop_partition(conn, part)
            dropped.append(PrunedPart(part.name, part.start, part.end, rows))
    return dropped


def _delete_rows(engine: Engine, before: float, dry_run: bool) -> list[PrunedPart]:
    c = predictions.c
    with read_transaction(engine) as conn:
        model_ids = conn.execute(select(models.c.id).order_by(models.c.id)).scalars().all()
        if dry_run:
            old = conn.execute(
                select(func.count())
                .select_from(predictions)
                .where(c.model_id.in_(model_ids), c.time < before)
            )
            return [PrunedPart(None, None, before, int(old.scalar_one()))]
    total = 0
    for model_id in model_ids:  # by model: the (model_id, time) index finds each batch
        while True:
            batch = select(c.id).where(c.model_id == model_id, c.time < before).limit(SQLITE_BATCH)
            with write_transaction(engine) as conn:
                deleted = conn.execute(delete(predictions).where(c.id.in_(batch))).rowcount
            total += deleted
            if deleted < SQLITE_BATCH:
                break
    return [PrunedPart(None, None, before, total)]
