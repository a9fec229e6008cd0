"""The per-request losses of `losses.py` as SQL expressions, so evidence is aggregated in the store.

Each formula is the one `Loss.per_request` computes (tests compare the two on the same rows). A
multiclass row's probabilities are a JSON array (`predictions.probabilities`); the labelled class's
probability is read from it by index, with each store's own JSON operator.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Float, case, func, literal
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from pitstop.losses import PROBABILITY_EPS, Loss, LossKind, Scoring
from pitstop.registry import Task
from pitstop.store.predictions.losses import computed_loss
from pitstop.store.predictions.rows import LossInputs, RequestLoss


class probability_at(FunctionElement[float]):
    """`probability_at(probabilities, index)`: element `index` of a JSON array of numbers."""

    type = Float()
    inherit_cache = True


@compiles(probability_at, "sqlite")
def _sqlite_probability_at(element: probability_at, compiler: SQLCompiler, **kw: Any) -> str:
    array, index = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"json_extract({array}, '$[' || CAST({index} AS INTEGER) || ']')"


@compiles(probability_at, "postgresql")
def _postgresql_probability_at(element: probability_at, compiler: SQLCompiler, **kw: Any) -> str:
    array, index = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"CAST(({array} ->> CAST({index} AS INTEGER)) AS DOUBLE PRECISION)"


def _clipped(p: Any) -> ColumnElement[float]:
    return case(
        (p < PROBABILITY_EPS, PROBABILITY_EPS), (p > 1 - PROBABILITY_EPS, 1 - PROBABILITY_EPS), else_=p
    )


def request_error(scoring: Scoring) -> RequestLoss:
    """The model's loss as the store's readers compute it from a labelled row: a built-in loss's
    formula (`request_loss`), or a `module:function`'s result looked up (`python_losses`)."""

    def error(row: LossInputs) -> ColumnElement[float]:
        if scoring.loss.kind is LossKind.FUNCTION:
            return computed_loss(row.id)
        return request_loss(
            scoring.loss, scoring.task, scoring.classes, row.prediction, row.probabilities, row.label
        )

    return error


def request_loss(
    loss: Loss, task: Task, classes: int, prediction: Any, probabilities: Any, label: Any
) -> ColumnElement[float]:
    """One request's loss from its logged prediction (and probabilities) and its label, in SQL.

    A `module:function` loss has no SQL form: the caller computes it in Python (`python_losses`)."""
    kind = loss.kind
    if kind is LossKind.FUNCTION:
        raise ValueError("a module:function loss is computed in Python, not SQL")
    out: Any
    if task is Task.MULTICLASS:
        chosen = probability_at(probabilities, label)
        if kind is LossKind.LOG_LOSS:
            out = -func.ln(_clipped(chosen))
        else:  # Σₖ pₖ² - 2 p(true class) + 1
            out = literal(1.0) - 2 * chosen
            for k in range(classes):
                share = probability_at(probabilities, literal(k))
                out = out + share * share
    elif kind is LossKind.LOG_LOSS:
        p = _clipped(prediction)
        out = -(label * func.ln(p) + (1 - label) * func.ln(1 - p))
    elif kind in (LossKind.SQUARED, LossKind.BRIER):
        out = (prediction - label) * (prediction - label)
    elif kind is LossKind.PERCENTAGE:
        out = func.abs(prediction - label) / func.nullif(func.abs(label), 0)
    elif kind is LossKind.PINBALL:
        q, error = float(loss.quantile or 0.5), prediction - label
        out = case((error < 0, -q * error), else_=(1 - q) * error)
    else:
        out = func.abs(prediction - label)
    typed: ColumnElement[float] = out
    return typed
