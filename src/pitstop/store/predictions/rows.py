"""Which rows of the prediction log a query reads, and the expressions every reader of it shares.

A request's loss is the model's (`losses.py`), which this layer does not know: a reader passes it as a
`RequestLoss`, built from a labelled row's `LossInputs` (`rollout.loss_sql.request_error`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import ColumnElement, and_, cast, func, literal, select
from sqlalchemy import Integer as SqlInteger
from sqlalchemy.sql import Subquery

from pitstop.store.tables import labels, predictions

# A `timing` record times a sampled shadow request the way a served call is made: latency evidence
# only; its prediction repeats the shadow's, so errors leave it out (`routing.table.TIMING`).
TIMING: Final = "timing"


@dataclass(frozen=True)
class LogRange:
    """Rows of one model's prediction log; every bound is optional and inclusive unless named
    `before`. Times are epoch seconds of the request."""

    model_id: int
    role: str | None = None
    arm: str | None = None
    skip_role: str | None = None  # leave this role out (the report leaves out timing records)
    routing_from: int | None = None
    time_from: float | None = None
    time_to: float | None = None
    versions: tuple[int, ...] | None = None  # model versions
    routing_before: int | None = None

    def where(self) -> ColumnElement[bool]:
        p = predictions.c
        conditions: list[ColumnElement[bool]] = [p.model_id == self.model_id]
        if self.skip_role is not None:
            conditions.append(p.role != self.skip_role)
        if self.role is not None:
            conditions.append(p.role == self.role)
        if self.arm is not None:
            conditions.append(p.arm == self.arm)
        if self.routing_from is not None:
            conditions.append(p.routing_version >= self.routing_from)
        if self.time_from is not None:
            conditions.append(p.time >= self.time_from)
        if self.time_to is not None:
            conditions.append(p.time <= self.time_to)
        if self.versions is not None:
            conditions.append(p.version.in_(self.versions))
        if self.routing_before is not None:
            conditions.append(p.routing_version < self.routing_before)
        return and_(*conditions)


@dataclass(frozen=True)
class LossInputs:
    """The columns of a labelled row a request's loss is computed from."""

    id: ColumnElement[Any]  # the prediction's row id
    prediction: ColumnElement[Any]
    probabilities: ColumnElement[Any]
    label: ColumnElement[Any]

    @classmethod
    def of(cls, labelled: Any) -> LossInputs:
        """The inputs of a row of `first_labelled` (or of any table with its columns)."""
        c = labelled.c
        return cls(c.id, c.prediction, c.probabilities, c.value)


RequestLoss = Callable[[LossInputs], ColumnElement[float]]


def unit(table: Any = predictions) -> ColumnElement[str]:
    """The randomised unit: the user, or the request when it came without a user_id."""
    return func.coalesce(table.c.user_id, literal("request:") + table.c.request_id)


def succeeded(table: Any) -> ColumnElement[bool]:
    """The rows of `table` whose prediction worked."""
    return and_(table.c.error.is_(None), table.c.prediction.is_not(None))


def latency_bucket(width: float) -> ColumnElement[int]:
    """The row's bucket of a logarithmic latency histogram: floor(log(1 + ms) / `width`).

    floor, not CAST: PostgreSQL's CAST rounds, which would report a bucket too low (optimistic)."""
    return cast(func.floor(func.ln(1 + predictions.c.latency_ms) / width), SqlInteger)


def first_labelled(rows: LogRange) -> Subquery:
    """The labelled predictions of `rows`, each request's earliest per role only, with the label's
    `value` and `received_at`; failed predictions included (filter them with `succeeded`).

    A request id logged again (a client retrying, or an outsider replaying an id whose label it knows to
    steer a verdict) must not join the label a second time: the label binds to the first prediction of
    that id and role, so a later duplicate adds no evidence. Ranking happens after the join, over
    labelled rows only (every prediction of an id joins the same label), and before the success filter
    (a duplicate must not stand in for a first prediction that failed). The first is the first within
    `rows` (a window or a report's scope): the log has no index by request id (migration 0004), so
    looking further back would read the whole log. Timing records repeat a shadow prediction to
    measure its latency: no error is read from them.
    """
    nth = (
        func.row_number()
        .over(partition_by=(predictions.c.request_id, predictions.c.role), order_by=predictions.c.id)
        .label("nth")
    )
    ranked = (
        select(
            predictions.c.id,
            predictions.c.request_id,
            predictions.c.user_id,
            predictions.c.time,
            predictions.c.arm,
            predictions.c.role,
            predictions.c.routing_version,
            predictions.c.prediction,
            predictions.c.probabilities,
            predictions.c.error,
            labels.c.value,
            labels.c.received_at,
            nth,
        )
        .join(labels, _label_of_prediction())
        .where(rows.where(), predictions.c.role != TIMING)
        .subquery()
    )
    return select(*(c for c in ranked.c if c.name != "nth")).where(ranked.c.nth == 1).subquery()


def _label_of_prediction() -> ColumnElement[bool]:
    return and_(labels.c.model_id == predictions.c.model_id, labels.c.request_id == predictions.c.request_id)
