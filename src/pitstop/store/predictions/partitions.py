"""The prediction log by day on PostgreSQL (issue 21): one partition per UTC day of event time.

Migration 0014 turns `predictions` into a table range-partitioned on `time`, with a partition per
day that held rows and `AHEAD_DAYS` days ahead, and a DEFAULT partition, so an insert never fails for
lack of a partition: a record far in the past or the future (a gateway's clock gone wrong, a replay
of an old day) lands there. `ensure_partitions` keeps days ahead created, from yesterday on; the
gateway's log writer and the leading controller call it (idempotent, serialised by an advisory lock),
and it moves the DEFAULT partition's rows into day partitions of their own, so retention can drop them
by the day as it drops every other (`retention`). SQLite keeps one table.

Each partition carries the parent's indexes under names of its own (`ix_predictions_p20261207_model_time`),
created before it is attached, so attaching builds nothing. The primary key is `(id, time)`: a
partitioned table's unique keys must hold its partition key. Nothing needs uniqueness beyond it (the
spool's write-back finds records already stored by request id and time, `write.insert_new_predictions`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, text

from pitstop.store.engine import write_transaction

DAY = 86_400.0
AHEAD_DAYS = 7
DEFAULT = "predictions_default"
PREFIX = "predictions_p"
# Any constant works; it only has to be the same in every pitstop process.
_PARTITION_LOCK = 7_351_014
LOCK_TIMEOUT = "5s"  # creating or dropping a partition waits at most this for the log's readers
# Days a partition may hold: datetime's own range (years 1 to 9999); other times stay in DEFAULT.
_FIRST_DAY, _LAST_DAY = -62_135_596_800.0, 253_402_214_400.0
_BOUNDS = re.compile(r"FROM \('?([-0-9.e+]+)'?\) TO \('?([-0-9.e+]+)'?\)")


@dataclass(frozen=True)
class Partition:
    """One partition of the log: rows with `start <= time < end` (epoch seconds); both None for DEFAULT."""

    name: str
    start: float | None
    end: float | None

    @property
    def is_default(self) -> bool:
        return self.start is None


def day_of(moment: float) -> float:
    """The start of the UTC day holding `moment` (epoch seconds).

    >>> day_of(1_765_065_601.5), day_of(-1.0)
    (1765065600.0, -86400.0)
    """
    return math.floor(moment / DAY) * DAY


def partition_name(day: float) -> str:
    """The name of the partition of the day starting at `day`.

    >>> partition_name(1_765_065_600.0)
    'predictions_p20251207'
    """
    return PREFIX + datetime.fromtimestamp(day, UTC).strftime("%Y%m%d")


def is_log_partition(name: str | None) -> bool:
    """True for the name of a partition of the log (made at run time, so in no declared schema).

    >>> is_log_partition("predictions_p20251207"), is_log_partition("predictions_default")
    (True, True)
    """
    return name is not None and (name == DEFAULT or re.fullmatch(PREFIX + r"\d{8}", name) is not None)


def include_name(name: str | None, kind: str, _parents: object) -> bool:
    """Alembic's `include_name`: compare schemas without the log's partitions and their indexes."""
    table = name if kind == "table" else None
    if kind == "index" and name is not None and name.startswith("ix_predictions_"):
        table = name.removeprefix("ix_").rsplit("_model_", 1)[0]
    return not is_log_partition(table)


def is_partitioned(conn: Connection) -> bool:
    """True when the store's `predictions` is partitioned (PostgreSQL from migration 0014 on)."""
    if conn.dialect.name != "postgresql":
        return False
    found = conn.execute(
        text("SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass('predictions')")
    ).first()
    return found is not None


def partitions(conn: Connection) -> list[Partition]:
    """The log's partitions, DEFAULT first, then by day."""
    rows = conn.execute(
        text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass('predictions')"
        )
    )
    found = []
    for name, bound in rows:
        matched = _BOUNDS.search(bound)
        if matched is None:  # FOR VALUES DEFAULT
            found.append(Partition(name, None, None))
        else:
            found.append(Partition(name, float(matched.group(1)), float(matched.group(2))))
    return sorted(found, key=lambda p: (p.start is not None, p.start or 0.0))


def ensure_partitions(conn: Connection, now: float, ahead: int = AHEAD_DAYS) -> list[Partition]:
    """Create the partitions of yesterday, today and `ahead` days on (by `now`), and of every day the
    DEFAULT partition holds rows of (moving them there); returns those created. Nothing on a store
    whose log is not partitioned.

    Creating a partition locks the log briefly: the caller's transaction should bound its wait
    (`SET LOCAL lock_timeout`), and try again later when it passes.
    """
    if not is_partitioned(conn):
        return []
    have = {p.start for p in partitions(conn)}
    today = day_of(now)
    wanted = {today + k * DAY for k in range(-1, ahead + 1)} | set(days_held(conn, DEFAULT))
    missing = sorted(day for day in wanted - have if _FIRST_DAY <= day < _LAST_DAY)
    if not missing:
        return []
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PARTITION_LOCK})
    have = {p.start for p in partitions(conn)}  # another process may have made them meanwhile
    return [create_day_partition(conn, day) for day in missing if day not in have]


def days_held(conn: Connection, table: str) -> list[float]:
    """The UTC days (their starts) `table` holds rows of, within the days a partition may hold."""
    rows = conn.execute(
        text(
            f"SELECT DISTINCT floor(time / {DAY}) * {DAY} FROM {table} "
            f"WHERE time >= {_FIRST_DAY} AND time < {_LAST_DAY}"
        )
    )
    return [float(day) for (day,) in rows]


def keep_days_ahead(engine: Engine, now: float) -> list[Partition]:
    """`ensure_partitions` in a transaction of its own, waiting at most `LOCK_TIMEOUT` for the log's
    lock (a long report holds it); nothing on SQLite."""
    if engine.dialect.name != "postgresql":
        return []
    with write_transaction(engine) as conn:
        conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
        return ensure_partitions(conn, now)


def create_default_partition(conn: Connection) -> Partition:
    """The partition of every time no day partition holds."""
    _create_like_log(conn, DEFAULT)
    conn.execute(text(f"ALTER TABLE predictions ATTACH PARTITION {DEFAULT} DEFAULT"))
    return Partition(DEFAULT, None, None)


def create_day_partition(conn: Connection, day: float) -> Partition:
    """The partition of the UTC day starting at `day`, with the rows DEFAULT held of that day."""
    name, end = partition_name(day), day + DAY
    _create_like_log(conn, name)
    in_day = f"time >= {day!r} AND time < {end!r}"
    moved = f"DELETE FROM {DEFAULT} WHERE {in_day} RETURNING *"
    conn.execute(text(f"WITH moved AS ({moved}) INSERT INTO {name} SELECT * FROM moved"))
    bounds = f"FROM ({day!r}) TO ({end!r})"
    conn.execute(text(f"ALTER TABLE predictions ATTACH PARTITION {name} FOR VALUES {bounds}"))
    return Partition(name, day, end)


def _create_like_log(conn: Connection, name: str) -> None:
    """An empty table shaped as the log, with its primary key and indexes named after it."""
    conn.execute(text(f"CREATE TABLE {name} (LIKE predictions INCLUDING DEFAULTS)"))
    conn.execute(text(f"ALTER TABLE {name} ADD CONSTRAINT {name}_pkey PRIMARY KEY (id, time)"))
    conn.execute(text(f"CREATE INDEX ix_{name}_model_routing ON {name} (model_id, routing_version)"))
    conn.execute(text(f"CREATE INDEX ix_{name}_model_time ON {name} (model_id, time)"))


def drop_partition(conn: Connection, partition: Partition) -> int:
    """Drop a day partition with its rows; returns how many rows it held."""
    if partition.is_default:
        raise ValueError("the DEFAULT partition is never dropped: it takes every time no day holds")
    rows = int(conn.execute(text(f"SELECT count(*) FROM {partition.name}")).scalar_one())
    conn.execute(text(f"DROP TABLE {partition.name}"))
    return rows
