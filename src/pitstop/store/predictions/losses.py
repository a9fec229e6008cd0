"""Per-request losses computed outside the store (a `module:function` loss), kept for one connection.

A user function cannot run inside the store: its caller reads the labelled, successful predictions
(`labelled_outputs`), scores them, and saves the losses (`save_losses`) to a temporary table of the
connection keyed by prediction id, where `computed_loss` finds each for the evidence's SQL.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Connection,
    Float,
    MetaData,
    Table,
    and_,
    select,
    text,
)

from pitstop.store.predictions.rows import LogRange
from pitstop.store.tables import labels, predictions

computed_losses = Table(
    "pitstop_request_losses",
    MetaData(),
    Column("id", BigInteger, primary_key=True),
    Column("err", Float, nullable=False),
    prefixes=["TEMPORARY"],
)
_CREATE = "CREATE TEMPORARY TABLE IF NOT EXISTS pitstop_request_losses (id BIGINT PRIMARY KEY, err REAL)"


class LabelledOutput(NamedTuple):
    """A successful prediction with its label: the row id, the prediction, its probabilities (a
    multiclass model's list) and the label's value."""

    id: int
    prediction: float | None
    probabilities: list[float] | None
    value: float


def computed_loss(prediction_id: Any) -> ColumnElement[float]:
    """The loss saved for the prediction row `prediction_id`."""
    table = computed_losses
    found: ColumnElement[float] = select(table.c.err).where(table.c.id == prediction_id).scalar_subquery()
    return found


def clear_losses(conn: Connection) -> None:
    """An empty table of computed losses for this connection."""
    conn.execute(text(_CREATE))
    conn.execute(computed_losses.delete())


def labelled_outputs(conn: Connection, rows: LogRange, chunk: int) -> Iterator[list[LabelledOutput]]:
    """The successful, labelled predictions of `rows`, `chunk` at a time (every one, duplicates too)."""
    found = conn.execute(
        select(predictions.c.id, predictions.c.prediction, predictions.c.probabilities, labels.c.value)
        .join(
            labels,
            and_(
                labels.c.model_id == predictions.c.model_id, labels.c.request_id == predictions.c.request_id
            ),
        )
        .where(rows.where(), predictions.c.error.is_(None), predictions.c.prediction.is_not(None))
    )
    while part := found.fetchmany(chunk):
        yield [LabelledOutput(*row) for row in part]


def save_losses(conn: Connection, ids: Sequence[int], losses: Sequence[float]) -> None:
    """Save the loss of each prediction row id (`clear_losses` first)."""
    conn.execute(
        computed_losses.insert(), [{"id": i, "err": float(e)} for i, e in zip(ids, losses, strict=True)]
    )
