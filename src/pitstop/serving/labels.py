"""Ground truth: labels upserted by request_id, joined to predictions later, at evaluation time.

A label may arrive before its prediction record or long after; a corrected label replaces the old
one. Labels decide which model wins, so they are written synchronously (acknowledged only once
stored) and the HTTP endpoint that takes them is token-protected. A label the store cannot hold (a
NUL, a lone surrogate, a request_id longer than its column) is the client's error: refused with a
422 naming its field (`InvalidInputError`), never a 503 the client would retry for ever.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from pitstop.losses import LossKind, Scoring
from pitstop.registry import Task
from pitstop.scoring import class_key
from pitstop.serving.errors import FieldProblem, InvalidInputError
from pitstop.serving.refusal import refused_data
from pitstop.store.engine import describe_store_error
from pitstop.store.predictions import labels as stored_labels
from pitstop.store.predictions.labels import REQUEST_ID_LENGTH, LabelRow


@dataclass(frozen=True, slots=True)
class Label:
    """The observed outcome of one request, at event `time`: `value`, a number (1/0 for a binary
    classifier), or a multiclass model's class (stored as its index: `encode_labels`)."""

    request_id: str
    value: float | str
    time: datetime | None = None

    def __post_init__(self) -> None:
        if not self.request_id:
            raise ValueError("request_id must not be empty")
        if isinstance(self.value, float | int) and not math.isfinite(self.value):
            raise ValueError(f"label must be a finite number, got {self.value}")


def encode_labels(items: list[Label], scoring: Scoring, classes: list[Any] | None) -> list[Label]:
    """The labels as stored, each checked against the model: a multiclass label must be one of its
    `classes` and becomes that class's index; other labels must be numbers, and not 0 for a
    percentage loss (which divides by the label). Raises InvalidInputError naming `labels[i].label`."""
    problems: list[FieldProblem] = []
    index = {class_key(value): k for k, value in enumerate(classes or [])}
    out = []
    for i, item in enumerate(items):
        where = f"labels[{i}].label"
        if scoring.task is Task.MULTICLASS:
            found = index.get(class_key(item.value))
            if found is None:
                known = ", ".join(map(str, classes or [])) or "none yet"
                problems.append(
                    FieldProblem(where, f"unknown class {item.value!r} (the model's classes: {known})")
                )
            else:
                out.append(replace(item, value=float(found)))
        elif isinstance(item.value, str):
            problems.append(
                FieldProblem(where, f"expected a finite number (or true/false), got {item.value!r}")
            )
        elif scoring.loss.kind is LossKind.PERCENTAGE and item.value == 0:
            problems.append(
                FieldProblem(where, "0 has no percentage error (the model's loss divides by the label)")
            )
        else:
            out.append(item)
    if problems:
        raise InvalidInputError(problems)
    return out


def upsert_labels(conn: Connection, model_id: int, items: list[Label], *, received_at: datetime) -> int:
    """Insert or replace labels by (model, request_id); within one call the last label of an id wins.

    Raises InvalidInputError, naming `labels[i].field`, for a label no store can hold, before writing
    anything; and, naming `labels`, when the store refuses the values for a reason not checked here.
    """
    received = received_at.timestamp()
    problems: list[FieldProblem] = []
    latest: dict[str, LabelRow] = {}
    for i, item in enumerate(items):
        row = _row(item, f"labels[{i}]", problems, model_id=model_id, received=received)
        if row is not None:
            latest[item.request_id] = row
    if problems:
        raise InvalidInputError(problems)
    rows = list(latest.values())
    if not rows:
        return 0
    try:
        stored_labels.upsert_labels(conn, rows)
    except Exception as error:
        if not refused_data(error):
            raise
        problem = f"refused by the store: {describe_store_error(error)}"[:300]
        raise InvalidInputError([FieldProblem("labels", problem)]) from error
    return len(rows)


def _row(
    item: Label, where: str, problems: list[FieldProblem], *, model_id: int, received: float
) -> LabelRow | None:
    """The row of one label, or None with its problems noted: text both stores can hold (UTF-8
    without NUL, no longer than the column) and a time that converts to epoch seconds."""
    before = len(problems)
    request_id = item.request_id
    if not isinstance(request_id, str):
        problems.append(FieldProblem(f"{where}.request_id", "must be a string"))
    elif len(request_id) > REQUEST_ID_LENGTH:
        problems.append(FieldProblem(f"{where}.request_id", f"longer than {REQUEST_ID_LENGTH} characters"))
    elif "\x00" in request_id:
        problems.append(FieldProblem(f"{where}.request_id", "contains a NUL character"))
    elif not _encodable(request_id):
        problems.append(FieldProblem(f"{where}.request_id", "contains a lone surrogate (not valid Unicode)"))
    time = received
    if item.time is not None:
        try:
            time = item.time.timestamp()
        except (OverflowError, ValueError, OSError):
            problems.append(FieldProblem(f"{where}.time", f"out of range: {item.time!r}"))
    if len(problems) > before:
        return None
    return LabelRow(model_id, request_id, float(item.value), time, received)


def get_labels(conn: Connection, model_id: int) -> dict[str, tuple[float, float]]:
    """request_id → (value, time) for every label of the model (tests and small tools)."""
    return stored_labels.get_labels(conn, model_id)


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True
