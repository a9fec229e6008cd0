"""Per-request losses a `module:function` computes: in Python, then looked up by the evidence's SQL.

A user function cannot run inside the store, so before a look (or a report) reads a window, the
window's labelled, successful predictions are read once, scored by the function in chunks, and
written to a temporary table of this connection keyed by prediction id. The SQL that aggregates
evidence then reads each request's loss from it (`computed_loss`) where a built-in loss has its
formula. This reads every labelled request of the window into Python: a built-in loss does not.
"""

from __future__ import annotations

from typing import Any

import numpy as np
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

from pitstop.losses import LossKind, Scoring
from pitstop.registry import Task
from pitstop.store.tables import labels, predictions

CHUNK = 50_000  # rows scored per call of the user's function

python_loss_table = Table(
    "pitstop_request_losses",
    MetaData(),
    Column("id", BigInteger, primary_key=True),
    Column("err", Float, nullable=False),
    prefixes=["TEMPORARY"],
)
_CREATE = "CREATE TEMPORARY TABLE IF NOT EXISTS pitstop_request_losses (id BIGINT PRIMARY KEY, err REAL)"


def computed_loss(prediction_id: Any) -> ColumnElement[float]:
    """The loss `prepare_losses` computed for the prediction row `prediction_id`."""
    table = python_loss_table
    found: ColumnElement[float] = select(table.c.err).where(table.c.id == prediction_id).scalar_subquery()
    return found


def prepare_losses(conn: Connection, where: ColumnElement[bool], scoring: Scoring) -> None:
    """Score the labelled, successful predictions `where` selects with a `module:function` loss (no-op
    for a built-in loss). A failing function is a UsageError naming it (`Loss.per_request`)."""
    if scoring.loss.kind is not LossKind.FUNCTION:
        return
    conn.execute(text(_CREATE))
    conn.execute(python_loss_table.delete())
    rows = conn.execute(
        select(predictions.c.id, predictions.c.prediction, predictions.c.probabilities, labels.c.value)
        .join(
            labels,
            and_(
                labels.c.model_id == predictions.c.model_id, labels.c.request_id == predictions.c.request_id
            ),
        )
        .where(where, predictions.c.error.is_(None), predictions.c.prediction.is_not(None))
    )
    while chunk := rows.fetchmany(CHUNK):
        ids = [row.id for row in chunk]
        values = [row.value for row in chunk]
        if scoring.task is Task.MULTICLASS:
            predicted: Any = np.array([row.probabilities for row in chunk], dtype=float)
        else:
            predicted = [row.prediction for row in chunk]
        losses = scoring.loss.per_request(values, predicted)
        conn.execute(
            python_loss_table.insert(),
            [{"id": i, "err": float(e)} for i, e in zip(ids, losses, strict=True)],
        )
