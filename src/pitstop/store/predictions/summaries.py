"""The controller's evidence per role and arm, as a handful of sums per query: counts, per-user error
moments, paired errors and the accumulation of distinct users (never all rows into Python).

Errors are each labelled request's loss (`RequestLoss`), from its first prediction per role
(`rows.first_labelled`), of successful predictions only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import Connection, case, distinct, func, select
from sqlalchemy.sql import Select, Subquery

from pitstop.store.predictions.rows import LogRange, LossInputs, RequestLoss, first_labelled, succeeded, unit
from pitstop.store.tables import predictions


class ArmCounts(NamedTuple):
    """One role and arm's rows: requests, failures, distinct units, rows bucketed by request id."""

    role: str
    arm: str
    requests: int
    failures: int
    units: int
    by_request: int


class ErrorMoments(NamedTuple):
    """One role and arm's labelled errors summed per user, then over users: Σ err², K users, and Σ of
    each user's S (error), N (requests), S², N², S·N, S / N and (S / N)²."""

    role: str
    arm: str
    squares: float | None  # None when no error is defined (a percentage loss of a 0 label)
    users: int
    error_sum: float
    request_sum: float
    error_sq_sum: float
    request_sq_sum: float
    cross_sum: float
    mean_sum: float
    mean_sq_sum: float


@dataclass(frozen=True)
class PairedSums:
    """Requests both arms predicted successfully, with a label: n, Σ a, Σ b, Σ d, Σ d², Σ a² (a the
    champion's loss, b the challenger's, d = b - a), and over users K and Σ A², Σ B², Σ A·B of each
    user's sums."""

    n: int = 0
    sum_a: float = 0.0
    sum_b: float = 0.0
    sum_d: float | None = None  # None when no pair has both losses defined
    sum_d2: float | None = None
    sum_a2: float | None = None
    users: int = 0
    user_aa: float = 0.0
    user_bb: float = 0.0
    user_ab: float = 0.0


def arm_counts(conn: Connection, rows: LogRange) -> list[ArmCounts]:
    """Per role and arm: requests, failures, distinct units and rows bucketed by request id."""
    role, arm = predictions.c.role, predictions.c.arm
    found = conn.execute(
        select(
            role,
            arm,
            func.count(),
            func.sum(case((predictions.c.error.is_not(None), 1), else_=0)),
            func.count(distinct(unit())),
            func.sum(case((predictions.c.bucketed_by == "request", 1), else_=0)),
        )
        .where(rows.where())
        .group_by(role, arm)
    ).all()
    return [ArmCounts(r, a, int(n), int(f or 0), int(u), int(b or 0)) for r, a, n, f, u, b in found]


def labelled_errors(rows: LogRange, loss: RequestLoss, matured_before: float | None = None) -> Select[Any]:
    """Per-request errors of `rows`' successful, labelled predictions (requests at or before
    `matured_before` only, when given): role, arm, unit, time, err."""
    first = first_labelled(rows)
    conditions = [succeeded(first)]
    if matured_before is not None:
        conditions.append(first.c.time <= matured_before)
    return select(
        first.c.role,
        first.c.arm,
        unit(first).label("unit"),
        first.c.time,
        loss(LossInputs.of(first)).label("err"),
    ).where(*conditions)


def error_moments(
    conn: Connection, rows: LogRange, loss: RequestLoss, matured_before: float | None = None
) -> list[ErrorMoments]:
    """Per role and arm: the labelled errors' moments, summed per user first, then over users."""
    errors = labelled_errors(rows, loss, matured_before).subquery()
    per_unit = (
        select(
            errors.c.role,
            errors.c.arm,
            func.sum(errors.c.err).label("s"),
            func.count().label("n"),
            func.sum(errors.c.err * errors.c.err).label("squares"),
            (func.sum(errors.c.err) / func.count()).label("mean"),  # the user's mean error
        )
        .group_by(errors.c.role, errors.c.arm, errors.c.unit)
        .subquery()
    )
    u = per_unit.c
    found = conn.execute(
        select(
            u.role,
            u.arm,
            func.sum(u.squares),
            func.count(),
            func.sum(u.s),
            func.sum(u.n),
            func.sum(u.s * u.s),
            func.sum(u.n * u.n),
            func.sum(u.s * u.n),
            func.sum(u.mean),
            func.sum(u.mean * u.mean),
        ).group_by(u.role, u.arm)
    ).all()
    return [
        ErrorMoments(r, a, None if sq is None else float(sq), int(k), *(float(v or 0) for v in sums))
        for r, a, sq, k, *sums in found
    ]


def user_mean_errors(
    conn: Connection, rows: LogRange, loss: RequestLoss, matured_before: float | None = None
) -> dict[str, tuple[float, ...]]:
    """Each unit's mean labelled error, per arm (one value per user)."""
    errors = labelled_errors(rows, loss, matured_before).subquery()
    per_user = select(errors.c.arm, func.avg(errors.c.err)).group_by(errors.c.arm, errors.c.unit)
    out: dict[str, list[float]] = {}
    for arm, mean in conn.execute(per_user):
        out.setdefault(arm, []).append(float(mean))
    return {arm: tuple(values) for arm, values in out.items()}


def paired_requests(rows: LogRange, loss: RequestLoss) -> Subquery:
    """Labelled requests both arms predicted successfully (of `rows`), one row each: request_id, time,
    unit, a and b (the champion's and the challenger's loss), and received_at of the label. Each arm's
    prediction is the request's first of its role (`first_labelled`). One pass grouped by request,
    never a quadratic self-join."""
    first = first_labelled(rows)
    error = loss(LossInputs.of(first))
    return (
        select(
            first.c.request_id,
            func.min(first.c.time).label("time"),
            func.max(unit(first)).label("unit"),
            func.max(case((first.c.arm == "champion", error))).label("a"),
            func.max(case((first.c.arm == "challenger", error))).label("b"),
            func.max(first.c.received_at).label("received_at"),
        )
        .where(succeeded(first))
        .group_by(first.c.request_id)
        .having(func.count(distinct(first.c.arm)) == 2)
        .subquery()
    )


def _pairs(rows: LogRange, loss: RequestLoss) -> Subquery:
    both = paired_requests(rows, loss)
    return select(both.c.time, both.c.unit, both.c.a, both.c.b).subquery()


def paired_sums(conn: Connection, rows: LogRange, loss: RequestLoss) -> PairedSums:
    """Champion and challenger on the same labelled requests: summed per user first, then over users,
    so the look reads a handful of numbers (an empty `PairedSums` when there are no pairs)."""
    joined = _pairs(rows, loss)
    d = joined.c.b - joined.c.a
    per_user = (
        select(
            func.count().label("n"),
            func.sum(joined.c.a).label("a"),
            func.sum(joined.c.b).label("b"),
            func.sum(d).label("d"),
            func.sum(d * d).label("dd"),
            func.sum(joined.c.a * joined.c.a).label("aa"),
        )
        .group_by(joined.c.unit)
        .subquery()
    )
    u = per_user.c
    n, sum_a, sum_b, sum_d, sum_d2, sum_a2, users, user_aa, user_bb, user_ab = conn.execute(
        select(
            func.sum(u.n),
            func.sum(u.a),
            func.sum(u.b),
            func.sum(u.d),
            func.sum(u.dd),
            func.sum(u.aa),
            func.count(),
            func.sum(u.a * u.a),
            func.sum(u.b * u.b),
            func.sum(u.a * u.b),
        )
    ).one()
    if not n:
        return PairedSums()
    return PairedSums(
        int(n),
        float(sum_a),
        float(sum_b),
        _number(sum_d),
        _number(sum_d2),
        _number(sum_a2),
        int(users),
        float(user_aa),
        float(user_bb),
        float(user_ab),
    )


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def paired_differences(conn: Connection, rows: LogRange, loss: RequestLoss) -> tuple[float, ...]:
    """Each pair's b - a (challenger's loss minus champion's), in request time order."""
    joined = _pairs(rows, loss)
    d = joined.c.b - joined.c.a
    return tuple(float(v) for v in conn.execute(select(d).order_by(joined.c.time)).scalars())


def units_first_seen(conn: Connection, rows: LogRange, marks: list[float]) -> tuple[int, ...]:
    """Distinct units of `rows` first seen at or before each of `marks` (epoch seconds), in one pass."""
    first = (
        select(func.min(predictions.c.time).label("first")).where(rows.where()).group_by(unit()).subquery()
    )
    row = conn.execute(select(*(func.sum(case((first.c.first <= mark, 1), else_=0)) for mark in marks))).one()
    return tuple(int(count or 0) for count in row)


def served_per_arm(conn: Connection, model_id: int) -> dict[str, int]:
    """Served predictions per arm, over the model's whole log."""
    found = conn.execute(
        select(predictions.c.arm, func.count())
        .where(predictions.c.model_id == model_id, predictions.c.role == "served")
        .group_by(predictions.c.arm)
    ).all()
    return {str(arm): int(n) for arm, n in found}


def request_ids_used(conn: Connection, model_id: int, prefix: str) -> int:
    """How many distinct request ids of the model's log start with `prefix`."""
    return int(
        conn.execute(
            select(func.count(distinct(predictions.c.request_id))).where(
                predictions.c.model_id == model_id, predictions.c.request_id.startswith(prefix)
            )
        ).scalar_one()
    )
