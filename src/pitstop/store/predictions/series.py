"""The prediction log as time series, for the report and the dashboard: each a GROUP BY over time
buckets (and routing version and arm), never the rows themselves.

Errors are read as the controller reads them (`rows.first_labelled`, `summaries.paired_requests`),
latencies from the same logarithmic histogram (`rows.latency_bucket`). A bucket index is returned as
the store computes it: the caller clips it to its series.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Connection, case, cast, distinct, func, select
from sqlalchemy import Integer as SqlInteger
from sqlalchemy.sql import Subquery

from pitstop.store.predictions.rows import (
    LogRange,
    LossInputs,
    RequestLoss,
    first_labelled,
    latency_bucket,
    succeeded,
    unit,
)
from pitstop.store.predictions.summaries import paired_requests
from pitstop.store.tables import predictions


@dataclass(frozen=True)
class TimeBuckets:
    """Buckets of `width` seconds from `start` (epoch seconds): bucket k holds [start + k·width, …)."""

    start: float
    width: float


class ErrorCell(NamedTuple):
    """Labelled, successful predictions of one time bucket, routing version and arm: n, Σ err, Σ err²."""

    bucket: int
    routing_version: int
    arm: str
    n: int
    total: float
    squares: float


class LatencyCell(NamedTuple):
    """Predictions of one time bucket, routing version, arm and latency bucket: rows, failures."""

    bucket: int
    routing_version: int
    arm: str
    latency_bucket: int
    rows: int
    failures: int


class CallCell(NamedTuple):
    """Model calls (distinct latencies) of one time bucket, routing version and latency bucket."""

    bucket: int
    routing_version: int
    latency_bucket: int
    calls: int


class KnownErrors(NamedTuple):
    """Labelled errors of one arm whose label became known in one time bucket: n, Σ err, Σ err²."""

    bucket: int
    arm: str
    n: int
    total: float
    squares: float


@dataclass(frozen=True)
class PairedKnown:
    """Pairs (`paired_requests`) known by a time: n, Σ a, Σ b, Σ d, Σ d², and d's range (d = b - a)."""

    n: int = 0
    sum_a: float = 0.0
    sum_b: float = 0.0
    sum_d: float = 0.0
    sum_d2: float = 0.0
    low: float = 0.0
    high: float = 0.0


def _floor(conn: Connection, value: ColumnElement[Any]) -> ColumnElement[int]:
    """floor() as an integer. SQLite's CAST truncates toward zero (the floor of the non-negative offsets
    used here); PostgreSQL's CAST rounds, so it gets an explicit floor."""
    if conn.dialect.name == "postgresql":
        return cast(func.floor(value), SqlInteger)
    return cast(value, SqlInteger)


def _bucket(conn: Connection, buckets: TimeBuckets, time: Any) -> ColumnElement[int]:
    return _floor(conn, (time - buckets.start) / buckets.width).label("bucket")


def known_at(table: Any) -> ColumnElement[float]:
    """When a labelled prediction (a row of `table`) became evidence: its label's arrival (never before
    the request)."""
    return case((table.c.received_at > table.c.time, table.c.received_at), else_=table.c.time)


def error_cells(conn: Connection, rows: LogRange, loss: RequestLoss, buckets: TimeBuckets) -> list[ErrorCell]:
    """Per bucket of request time, routing version and arm: the labelled errors' count, Σ and Σ²."""
    first = first_labelled(rows)
    error = loss(LossInputs.of(first))
    bucket = _bucket(conn, buckets, first.c.time)
    found = conn.execute(
        select(
            bucket,
            first.c.routing_version,
            first.c.arm,
            func.count(),
            func.sum(error),
            func.sum(error * error),
        )
        .where(succeeded(first))
        .group_by(bucket, first.c.routing_version, first.c.arm)
    ).all()
    return [
        ErrorCell(int(b), int(v), str(arm), int(n), float(total or 0.0), float(squares or 0.0))
        for b, v, arm, n, total, squares in found
    ]


def latency_cells(conn: Connection, rows: LogRange, width: float, buckets: TimeBuckets) -> list[LatencyCell]:
    """Every prediction per bucket of request time, routing version, arm and latency bucket: rows and
    failures."""
    bucket = _bucket(conn, buckets, predictions.c.time)
    latency = latency_bucket(width).label("latency_bucket")
    found = conn.execute(
        select(
            bucket,
            predictions.c.routing_version,
            predictions.c.arm,
            latency,
            func.count(),
            func.sum(case((predictions.c.error.is_not(None), 1), else_=0)),
        )
        .where(rows.where())
        .group_by(bucket, predictions.c.routing_version, predictions.c.arm, latency)
    ).all()
    return [LatencyCell(int(b), int(v), str(a), int(i), int(n), int(f or 0)) for b, v, a, i, n, f in found]


def call_cells(conn: Connection, rows: LogRange, width: float, buckets: TimeBuckets) -> list[CallCell]:
    """Model calls (distinct latencies) per bucket of request time, routing version and latency bucket
    (per time bucket: two calls of exactly equal latency in different buckets count twice)."""
    bucket = _bucket(conn, buckets, predictions.c.time)
    latency = latency_bucket(width).label("latency_bucket")
    found = conn.execute(
        select(bucket, predictions.c.routing_version, latency, func.count(distinct(predictions.c.latency_ms)))
        .where(rows.where())
        .group_by(bucket, predictions.c.routing_version, latency)
    ).all()
    return [CallCell(int(b), int(v), int(i), int(c)) for b, v, i, c in found]


def known_errors(
    conn: Connection, rows: LogRange, loss: RequestLoss, buckets: TimeBuckets, until: float
) -> list[KnownErrors]:
    """Per bucket of label arrival and arm: the labelled errors known by `until`."""
    first = first_labelled(rows)
    error = loss(LossInputs.of(first))
    known = known_at(first)
    bucket = _bucket(conn, buckets, known)
    found = conn.execute(
        select(bucket, first.c.arm, func.count(), func.sum(error), func.sum(error * error))
        .where(succeeded(first), known <= until)
        .group_by(bucket, first.c.arm)
    ).all()
    return [
        KnownErrors(int(b), str(arm), int(n), float(total or 0.0), float(squares or 0.0))
        for b, arm, n, total, squares in found
    ]


def _known_pairs(rows: LogRange, loss: RequestLoss, until: float) -> Subquery:
    """Requests both arms predicted successfully, with a label known by `until`."""
    both = paired_requests(rows, loss)
    known = known_at(both)
    return select(known.label("known"), both.c.a, both.c.b).where(known <= until).subquery()


def paired_known(conn: Connection, rows: LogRange, loss: RequestLoss, until: float) -> PairedKnown:
    """The sums of the pairs known by `until` (an empty `PairedKnown` when there are none)."""
    joined = _known_pairs(rows, loss, until)
    d = joined.c.b - joined.c.a
    n, *sums = conn.execute(
        select(
            func.count(),
            func.sum(joined.c.a),
            func.sum(joined.c.b),
            func.sum(d),
            func.sum(d * d),
            func.min(d),
            func.max(d),
        )
    ).one()
    if not n:
        return PairedKnown()
    return PairedKnown(int(n), *(float(v) for v in sums))


def pairs_per_bucket(
    conn: Connection, rows: LogRange, loss: RequestLoss, until: float, buckets: TimeBuckets
) -> dict[int, int]:
    """Pairs known by `until`, per bucket of the time they became known."""
    joined = _known_pairs(rows, loss, until)
    bucket = _bucket(conn, buckets, joined.c.known)
    return {int(b): int(n) for b, n in conn.execute(select(bucket, func.count()).group_by(bucket)).all()}


def difference_bins(
    conn: Connection, rows: LogRange, loss: RequestLoss, until: float, low: float, step: float
) -> dict[int, int]:
    """Pairs known by `until` per bin of floor((d - `low`) / `step`)."""
    joined = _known_pairs(rows, loss, until)
    d = joined.c.b - joined.c.a
    index = _floor(conn, (d - low) / step).label("bin")
    return {int(i): int(c) for i, c in conn.execute(select(index, func.count()).group_by(index)).all()}


def new_units(
    conn: Connection, rows: LogRange, buckets: TimeBuckets, until: float
) -> list[tuple[int, str, int]]:
    """(bucket, arm, units) for each bucket and arm: units whose first label (of a successful
    prediction, known by `until`) became known in it."""
    labelled = first_labelled(rows)
    known = known_at(labelled)
    who = unit(labelled)  # one expression object: PostgreSQL must see the same parameters in GROUP BY
    first = (
        select(labelled.c.arm, who.label("unit"), func.min(known).label("first"))
        .where(succeeded(labelled), known <= until)
        .group_by(labelled.c.arm, who)
        .subquery()
    )
    bucket = _bucket(conn, buckets, first.c.first)
    found = conn.execute(select(bucket, first.c.arm, func.count()).group_by(bucket, first.c.arm)).all()
    return [(int(b), str(arm), int(n)) for b, arm, n in found]
