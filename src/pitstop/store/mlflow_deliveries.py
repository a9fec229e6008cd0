"""MLflow webhook deliveries handled: the one owner of `mlflow_deliveries`' SQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError

from pitstop.store.tables import mlflow_deliveries


def handled(conn: Connection, delivery_id: str) -> dict[str, Any] | None:
    """What was done with `delivery_id`, if it was handled."""
    query = select(mlflow_deliveries.c.outcome).where(mlflow_deliveries.c.delivery_id == delivery_id)
    outcome: dict[str, Any] | None = conn.execute(query).scalar_one_or_none()
    return outcome


def record(conn: Connection, delivery_id: str, event: str, outcome: dict[str, Any], now: datetime) -> bool:
    """Record a handled delivery; False when another request recorded it first."""
    row = {"delivery_id": delivery_id, "received_at": now, "event": event, "outcome": outcome}
    try:
        with conn.begin_nested():
            conn.execute(insert(mlflow_deliveries).values(**row))
    except IntegrityError:
        return False
    return True
