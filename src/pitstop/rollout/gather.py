"""Evidence from the prediction log and labels, by SQL aggregation (never all rows into Python).

Everything is keyed by routing version: a phase's (or ramp step's) evidence is what was routed from
the routing version written when it began. Errors are each request's loss (the model's, `losses.py`),
computed in SQL (`loss_sql.py`) and joined to labels at read time, so labels may arrive in any order;
a `module:function` loss runs in Python first (`python_losses`), its results looked up by SQL.
Latency percentiles come from a logarithmic histogram (2 % wide buckets) aggregated in SQL, which
also counts distinct model calls per bucket: every row of a micro-batch records its call's time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, case, cast, distinct, func, literal, select
from sqlalchemy import Integer as SqlInteger
from sqlalchemy.sql import Select, Subquery

from pitstop.losses import Loss, LossKind, Scoring
from pitstop.registry import Task
from pitstop.rollout.evidence import LATENCY_BUCKET_RATIO, ArmSummary, Evidence, PairedSummary, UserMoments
from pitstop.rollout.python_losses import computed_loss, prepare_losses
from pitstop.routing.table import TIMING
from pitstop.store.tables import labels, predictions


@dataclass(frozen=True)
class Window:
    """Which predictions count: one model, from a routing version on, up to `now` (event time)."""

    model_id: int
    task: Task
    since_routing_version: int
    started_at: datetime
    now: datetime
    matured_before: datetime | None = None  # only requests at or before this time count for errors
    loss: Loss | None = None  # the model's loss; None: the task's default
    classes: int = 0  # a multiclass model's number of classes
    rollout_started_at: datetime | None = None  # the champion's served calls count for latency from here

    @property
    def scoring(self) -> Scoring:
        return Scoring(self.task, self.loss or Loss.default(self.task), self.classes)


def _epoch(moment: datetime) -> float:
    return moment.timestamp()


def _in_window(window: Window, table: Any = predictions) -> ColumnElement[bool]:
    return and_(
        table.c.model_id == window.model_id,
        table.c.routing_version >= window.since_routing_version,
        table.c.time <= _epoch(window.now),
    )


def request_error(scoring: Scoring, table: Any) -> ColumnElement[float]:
    """One request's loss in SQL, from a labelled row of `table` (`first_labelled`'s columns)."""
    from pitstop.rollout.loss_sql import request_loss

    if scoring.loss.kind is LossKind.FUNCTION:
        return computed_loss(table.c.id)
    return request_loss(
        scoring.loss, scoring.task, scoring.classes, table.c.prediction, table.c.probabilities, table.c.value
    )


def _unit(table: Any = predictions) -> ColumnElement[str]:
    return func.coalesce(table.c.user_id, literal("request:") + table.c.request_id)


def first_labelled(where: ColumnElement[bool]) -> Subquery:
    """The labelled predictions of the rows `where` selects, each request's earliest per role only, with
    the label's `value` and `received_at`; failed predictions included (filter them after).

    A request id logged again (a client retrying, or an outsider replaying an id whose label it knows to
    steer a verdict) must not join the label a second time: the label binds to the first prediction of
    that id and role, so a later duplicate adds no evidence. Ranking happens after the join, over
    labelled rows only (every prediction of an id joins the same label), and before the success filter
    (a duplicate must not stand in for a first prediction that failed). The first is the first within
    `where` (a window or a report's scope): the log has no index by request id (migration 0004), so
    looking further back would read the whole log. Timing records (role `timing`) repeat a shadow
    prediction to measure its latency: no error is read from them.
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
        .join(
            labels,
            and_(
                labels.c.model_id == predictions.c.model_id, labels.c.request_id == predictions.c.request_id
            ),
        )
        .where(where, predictions.c.role != TIMING)
        .subquery()
    )
    return select(*(c for c in ranked.c if c.name != "nth")).where(ranked.c.nth == 1).subquery()


def succeeded(table: Any) -> ColumnElement[bool]:
    """The rows of `table` whose prediction worked."""
    return and_(table.c.error.is_(None), table.c.prediction.is_not(None))


def _labelled(window: Window, role: str | None = None) -> Select[Any]:
    """Per-request errors of successful predictions with a label, for one role (or both)."""
    scope = [_in_window(window)]
    if role is not None:
        scope.append(predictions.c.role == role)
    first = first_labelled(and_(*scope))
    conditions = [succeeded(first)]
    if window.matured_before is not None:
        conditions.append(first.c.time <= _epoch(window.matured_before))
    return select(
        first.c.role,
        first.c.arm,
        _unit(first).label("unit"),
        first.c.time,
        request_error(window.scoring, first).label("err"),
    ).where(*conditions)


@dataclass(frozen=True)
class WindowSummaries:
    """Every (role, arm) of a window summarised, and the served requests bucketed by request id."""

    arms: dict[tuple[str, str], ArmSummary]
    unbucketed_served: int

    def role(self, role: str) -> dict[str, ArmSummary]:
        return {arm: summary for (r, arm), summary in self.arms.items() if r == role}


def arm_summaries(conn: Connection, window: Window) -> WindowSummaries:
    """Per role and arm: requests, failures, units, labelled error mean/variance, per-user moments,
    latency. Three passes over the window for both roles at once (each reads every row of the window
    whatever its role, so one pass per role would read it twice)."""
    role, arm = predictions.c.role, predictions.c.arm
    counts = conn.execute(
        select(
            role,
            arm,
            func.count(),
            func.sum(case((predictions.c.error.is_not(None), 1), else_=0)),
            func.count(distinct(_unit())),
            func.sum(case((predictions.c.bucketed_by == "request", 1), else_=0)),
        )
        .where(_in_window(window))
        .group_by(role, arm)
    ).all()
    errors = _labelled(window).subquery()
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
    moment_rows = {
        (row[0], row[1]): row[2:]
        for row in conn.execute(
            select(
                per_unit.c.role,
                per_unit.c.arm,
                func.sum(per_unit.c.squares),
                func.count(),
                func.sum(per_unit.c.s),
                func.sum(per_unit.c.n),
                func.sum(per_unit.c.s * per_unit.c.s),
                func.sum(per_unit.c.n * per_unit.c.n),
                func.sum(per_unit.c.s * per_unit.c.n),
                func.sum(per_unit.c.mean),
                func.sum(per_unit.c.mean * per_unit.c.mean),
            ).group_by(per_unit.c.role, per_unit.c.arm)
        )
    }
    latencies = latency_quantiles(conn, _in_window(window))
    summaries, unbucketed = {}, 0
    for role_name, arm_name, requests, failures, units, by_request in counts:
        key = (role_name, arm_name)
        if role_name == "served":
            unbucketed += int(by_request or 0)
        squares, *sums = moment_rows.get(key, (None, 0, None, 0, 0, 0, 0, 0, 0))
        moments = UserMoments(*(float(v or 0) for v in sums))
        labelled = int(moments.request_sum)
        mean, variance = _mean_var(labelled, moments.error_sum, squares)
        p50, p99, samples, calls = latencies.get(key, (None, None, 0, ()))
        summaries[key] = ArmSummary(
            requests=int(requests),
            failures=int(failures or 0),
            units=int(units),
            labelled=labelled,
            error_mean=mean,
            error_var=variance,
            moments=moments,
            latency_p50=p50,
            latency_p99=p99,
            latency_samples=samples,
            latency_calls=calls,
        )
    return WindowSummaries(summaries, unbucketed)


def _mean_var(n: int, total: float | None, squares: float | None) -> tuple[float | None, float | None]:
    if n == 0 or total is None:
        return None, None
    mean = float(total) / n
    if n < 2 or squares is None:
        return mean, None
    return mean, max((float(squares) - n * mean * mean) / (n - 1), 0.0)


LatencyStats = tuple[float, float, int, tuple[tuple[float, int], ...]]


def latency_quantiles(conn: Connection, where: ColumnElement[bool]) -> dict[tuple[str, str], LatencyStats]:
    """Per role and arm (p50, p99, rows, calls per bucket) in milliseconds, from 2 %-wide log buckets,
    of the predictions `where` selects.

    A model call's rows share one latency value, so distinct values within a bucket are its calls.
    """
    width = math.log(LATENCY_BUCKET_RATIO)
    # floor, not CAST: PostgreSQL's CAST rounds, which would report a bucket too low (optimistic).
    bucket = cast(func.floor(func.ln(1 + predictions.c.latency_ms) / width), SqlInteger).label("bucket")
    role, arm = predictions.c.role, predictions.c.arm
    rows = conn.execute(
        select(role, arm, bucket, func.count(), func.count(distinct(predictions.c.latency_ms)))
        .where(where)
        .group_by(role, arm, bucket)
    ).all()
    histograms: dict[tuple[str, str], list[tuple[int, int, int]]] = {}
    for role_name, arm_name, index, count, calls in rows:
        histograms.setdefault((role_name, arm_name), []).append((int(index), int(count), int(calls)))
    return {key: _quantiles(sorted(buckets), width) for key, buckets in histograms.items()}


def champion_history(conn: Connection, window: Window, since: datetime) -> ArmSummary:
    """The champion's served model calls from `since` (the rollout's start) to the window's end: the
    sample its latency baseline is bounded from, across every phase and step in which it served."""
    served = and_(
        predictions.c.model_id == window.model_id,
        predictions.c.role == "served",
        predictions.c.arm == "champion",
        predictions.c.time >= _epoch(since),
        predictions.c.time <= _epoch(window.now),
    )
    stats = latency_quantiles(conn, served).get(("served", "champion"))
    if stats is None:
        return ArmSummary()
    p50, p99, samples, calls = stats
    return ArmSummary(latency_p50=p50, latency_p99=p99, latency_samples=samples, latency_calls=calls)


def _quantiles(buckets: list[tuple[int, int, int]], width: float) -> LatencyStats:
    p50, p99 = log_quantiles([(index, count) for index, count, _ in buckets], width, (0.5, 0.99))
    calls = call_edges({index: n for index, _, n in buckets})
    return p50, p99, sum(count for _, count, _ in buckets), calls


def call_edges(calls: dict[int, int]) -> tuple[tuple[float, int], ...]:
    """(lower edge in ms, model calls) per latency bucket index, ascending: what the rule counts.

    >>> [(round(edge, 4), n) for edge, n in call_edges({1: 3, 0: 2})]
    [(0.0, 2), (0.02, 3)]
    """
    width = math.log(LATENCY_BUCKET_RATIO)
    return tuple((math.exp(index * width) - 1, n) for index, n in sorted(calls.items()))


def log_quantiles(buckets: Iterable[tuple[int, int]], width: float, qs: tuple[float, ...]) -> list[float]:
    """Quantiles from a histogram of (bucket index of log(1 + x) / `width`, count): the upper edge of
    the bucket holding each quantile (never optimistic).

    >>> [round(v, 2) for v in log_quantiles([(0, 50), (10, 50)], 0.1, (0.5, 0.99))]
    [0.11, 2.0]
    """
    ordered = sorted(buckets)
    total = sum(count for _, count in ordered)
    out = []
    for q in qs:
        seen, value = 0, math.nan
        for index, count in ordered:
            seen += count
            if seen >= q * total:
                value = math.exp((index + 1) * width) - 1
                break
        out.append(value)
    return out


def paired_requests(where: ColumnElement[bool], scoring: Scoring) -> Subquery:
    """Labelled requests both arms predicted successfully (of the rows `where` selects), one row each:
    request_id, time, a and b (the champion's and the challenger's loss), and received_at of the
    label. Each arm's prediction is the request's first of its role (`first_labelled`). One pass
    grouped by request, never a quadratic self-join."""
    first = first_labelled(where)
    error = request_error(scoring, first)
    return (
        select(
            first.c.request_id,
            func.min(first.c.time).label("time"),
            func.max(_unit(first)).label("unit"),
            func.max(case((first.c.arm == "champion", error))).label("a"),
            func.max(case((first.c.arm == "challenger", error))).label("b"),
            func.max(first.c.received_at).label("received_at"),
        )
        .where(succeeded(first))
        .group_by(first.c.request_id)
        .having(func.count(distinct(first.c.arm)) == 2)
        .subquery()
    )


def paired_summary(conn: Connection, window: Window, *, with_differences: bool) -> PairedSummary:
    """Champion and challenger on the same labelled requests (one served, the other in shadow).

    A request counts when both arms predicted it successfully and it has a label. The SQL sums per user
    first, then over users, so the look reads a handful of numbers: the request-level moments and the
    per-user sums of squares and cross products the clustered error ratio needs.
    """
    both = paired_requests(_in_window(window), window.scoring)
    joined = select(both.c.time, both.c.unit, both.c.a, both.c.b).subquery()
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
    row = conn.execute(
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
    n, sum_a, sum_b, sum_d, sum_d2, sum_a2, users, user_aa, user_bb, user_ab = row
    n = int(n or 0)
    if n == 0:
        return PairedSummary()
    diff_mean, diff_var = _mean_var(n, sum_d, sum_d2)
    _, champion_var = _mean_var(n, sum_a, sum_a2)
    differences = None
    if with_differences:
        differences = tuple(float(v) for v in conn.execute(select(d).order_by(joined.c.time)).scalars())
    return PairedSummary(
        n=n,
        champion_mean=float(sum_a) / n,
        challenger_mean=float(sum_b) / n,
        diff_mean=diff_mean,
        diff_var=diff_var,
        champion_var=champion_var,
        users=int(users),
        user_champion_sq=float(user_aa),
        user_challenger_sq=float(user_bb),
        user_cross=float(user_ab),
        differences=differences,
    )


def user_mean_errors(conn: Connection, window: Window) -> dict[str, tuple[float, ...]]:
    """Each served user's mean error, per arm: only for the Mann-Whitney test (one value per user)."""
    errors = _labelled(window, "served").subquery()
    per_user = select(errors.c.arm, func.avg(errors.c.err)).group_by(errors.c.arm, errors.c.unit)
    out: dict[str, list[float]] = {}
    for arm, mean in conn.execute(per_user):
        out.setdefault(arm, []).append(float(mean))
    return {arm: tuple(values) for arm, values in out.items()}


# Distinct users are counted as first seen by this many evenly spaced times of the window: enough
# points to fit an accumulation curve (`stats.population`), one SQL pass however many.
USER_CURVE_POINTS = 8


def users_first_seen(conn: Connection, window: Window) -> tuple[tuple[float, int], ...]:
    """(hours from the window's start, distinct served users first seen by then) at evenly spaced times
    up to `now`: the accumulation of distinct users over the window, in one pass (empty for an empty
    window). A request without a user_id is a user of its own, as everywhere in the evidence."""
    hours = (window.now - window.started_at) / timedelta(hours=1)
    if hours <= 0:
        return ()
    first = (
        select(func.min(predictions.c.time).label("first"))
        .where(_in_window(window), predictions.c.role == "served")
        .group_by(_unit())
        .subquery()
    )
    start = _epoch(window.started_at)
    marks = [hours * (k + 1) / USER_CURVE_POINTS for k in range(USER_CURVE_POINTS)]
    row = conn.execute(
        select(*(func.sum(case((first.c.first <= start + mark * 3600, 1), else_=0)) for mark in marks))
    ).one()
    return tuple((mark, int(count or 0)) for mark, count in zip(marks, row, strict=True))


def gather_evidence(
    conn: Connection,
    window: Window,
    *,
    with_differences: bool = False,
    with_user_means: bool = False,
    with_user_curve: bool = False,
) -> Evidence:
    """Everything the decision needs for one phase window."""
    prepare_losses(conn, _in_window(window), window.scoring)
    summaries = arm_summaries(conn, window)
    served, shadow, timing = summaries.role("served"), summaries.role("shadow"), summaries.role(TIMING)
    hours = max((window.now - window.started_at) / timedelta(hours=1), 0.0)
    total_served = sum(arm.requests for arm in served.values())
    return Evidence(
        now=window.now,
        champion=served.get("champion", ArmSummary()),
        challenger=served.get("challenger", ArmSummary()),
        shadow=next(iter(shadow.values()), ArmSummary()),
        shadow_timing=next(iter(timing.values()), ArmSummary()),
        paired=paired_summary(conn, window, with_differences=with_differences),
        request_rate_per_hour=total_served / hours if hours > 0 else 0.0,
        window_hours=hours,
        unbucketed_requests=summaries.unbucketed_served,
        user_mean_errors=user_mean_errors(conn, window) if with_user_means else None,
        users_seen=users_first_seen(conn, window) if with_user_curve else (),
        champion_history=(
            champion_history(conn, window, window.rollout_started_at) if window.rollout_started_at else None
        ),
    )
