"""Latency histograms of the prediction log: 2 %-wide logarithmic buckets counted in SQL.

A model call's rows share one latency value (every row of a micro-batch records its call's time), so
distinct latencies within a bucket are its model calls.
"""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import Connection, distinct, func, select

from pitstop.store.predictions.rows import LogRange, latency_bucket
from pitstop.store.tables import predictions


class LatencyBucket(NamedTuple):
    """One role and arm's rows in latency bucket `bucket`, and the model calls among them."""

    role: str
    arm: str
    bucket: int
    rows: int
    calls: int


def latency_histogram(conn: Connection, rows: LogRange, width: float) -> list[LatencyBucket]:
    """Per role, arm and bucket of floor(log(1 + ms) / `width`): rows and distinct latencies (calls)."""
    bucket = latency_bucket(width).label("bucket")
    role, arm = predictions.c.role, predictions.c.arm
    found = conn.execute(
        select(role, arm, bucket, func.count(), func.count(distinct(predictions.c.latency_ms)))
        .where(rows.where())
        .group_by(role, arm, bucket)
    ).all()
    return [LatencyBucket(r, a, int(i), int(n), int(c)) for r, a, i, n, c in found]
