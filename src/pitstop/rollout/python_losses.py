"""Per-request losses a `module:function` computes: in Python, then looked up by the evidence's SQL.

A user function cannot run inside the store, so before a look (or a report) reads a window, the
window's labelled, successful predictions are read once, scored by the function in chunks, and
written to a temporary table of this connection keyed by prediction id (`store.predictions.losses`).
The SQL that aggregates evidence then reads each request's loss from it where a built-in loss has its
formula. This reads every labelled request of the window into Python: a built-in loss does not.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import Connection

from pitstop.losses import LossKind, Scoring
from pitstop.registry import Task
from pitstop.store.predictions import losses
from pitstop.store.predictions.rows import LogRange

CHUNK = 50_000  # rows scored per call of the user's function


def prepare_losses(conn: Connection, rows: LogRange, scoring: Scoring) -> None:
    """Score the labelled, successful predictions of `rows` with a `module:function` loss (no-op for a
    built-in loss). A failing function is a UsageError naming it (`Loss.per_request`)."""
    if scoring.loss.kind is not LossKind.FUNCTION:
        return
    losses.clear_losses(conn)
    for chunk in losses.labelled_outputs(conn, rows, CHUNK):
        values = [row.value for row in chunk]
        if scoring.task is Task.MULTICLASS:
            predicted: Any = np.array([row.probabilities for row in chunk], dtype=float)
        else:
            predicted = [row.prediction for row in chunk]
        computed = scoring.loss.per_request(values, predicted)
        losses.save_losses(conn, [row.id for row in chunk], [float(e) for e in computed])
