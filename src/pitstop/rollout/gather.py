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

from sqlalchemy import Connection

from pitstop.losses import Loss, Scoring
from pitstop.registry import Task
from pitstop.rollout.evidence import LATENCY_BUCKET_RATIO, ArmSummary, Evidence, PairedSummary, UserMoments
from pitstop.rollout.loss_sql import request_error
from pitstop.rollout.python_losses import prepare_losses
from pitstop.rollout.reads import Reads
from pitstop.routing.table import TIMING
from pitstop.store.predictions import health, latency, summaries
from pitstop.store.predictions.rows import LogRange


@dataclass(frozen=True)
class Window:
    """Which predictions count: one model's, from a routing version on, made from `started_at` (less
    `CLOCK_SKEW`) up to `now` (event time)."""

    model_id: int
    task: Task
    since_routing_version: int
    started_at: datetime
    now: datetime
    matured_before: datetime | None = None  # only requests at or before this time count for errors
    loss: Loss | None = None  # the model's loss; None: the task's default
    classes: int = 0  # a multiclass model's number of classes
    rollout_started_at: datetime | None = None  # the champion's served calls count for latency from here
    coverage_before: datetime | None = None  # served requests up to here should have labels by now

    @property
    def scoring(self) -> Scoring:
        return Scoring(self.task, self.loss or Loss.default(self.task), self.classes)


def _epoch(moment: datetime) -> float:
    return moment.timestamp()


# A window's rows are those logged under its routing version or a later one; their request times are
# bounded too, so each query reads one range of the (model_id, time) index, whatever the model's older
# history holds (issue 21: without the lower bound SQLite walked the whole history at every look). A
# gateway stamps requests with its own clock, which may lag the controller's that started the phase:
# the lower bound allows this much skew (NTP keeps clocks within milliseconds; a minute means a broken
# clock, whose first minute of rows a look would miss). The routing version still decides which rows
# count: the slack only widens the range read, by a minute of traffic (bench/look_cost.py).
CLOCK_SKEW = timedelta(minutes=1)


def _in_window(window: Window, role: str | None = None) -> LogRange:
    return LogRange(
        window.model_id,
        role=role,
        routing_from=window.since_routing_version,
        time_from=_epoch(window.started_at - CLOCK_SKEW),
        time_to=_epoch(window.now),
    )


def _matured(window: Window) -> float | None:
    return None if window.matured_before is None else _epoch(window.matured_before)


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
    rows = _in_window(window)
    counts = summaries.arm_counts(conn, rows)
    moments_of = {
        (m.role, m.arm): m
        for m in summaries.error_moments(conn, rows, request_error(window.scoring), _matured(window))
    }
    latencies = latency_quantiles(conn, rows)
    found, unbucketed = {}, 0
    for count in counts:
        key = (count.role, count.arm)
        if count.role == "served":
            unbucketed += count.by_request
        stored = moments_of.get(key)
        moments = UserMoments() if stored is None else UserMoments(float(stored.users), *stored[4:])
        labelled = int(moments.request_sum)
        mean, variance = mean_and_variance(
            labelled, moments.error_sum, None if stored is None else stored.squares
        )
        p50, p99, samples, calls = latencies.get(key, (None, None, 0, ()))
        found[key] = ArmSummary(
            requests=count.requests,
            failures=count.failures,
            units=count.units,
            labelled=labelled,
            error_mean=mean,
            error_var=variance,
            moments=moments,
            latency_p50=p50,
            latency_p99=p99,
            latency_samples=samples,
            latency_calls=calls,
        )
    return WindowSummaries(found, unbucketed)


def mean_and_variance(
    n: int, total: float | None, squares: float | None
) -> tuple[float | None, float | None]:
    """The mean and sample variance (ddof 1) of `n` values from their sum and sum of squares (None:
    not defined: no values, or under two for the variance)."""
    if n == 0 or total is None:
        return None, None
    mean = float(total) / n
    if n < 2 or squares is None:
        return mean, None
    return mean, max((float(squares) - n * mean * mean) / (n - 1), 0.0)


LatencyStats = tuple[float, float, int, tuple[tuple[float, int], ...]]


def latency_quantiles(conn: Connection, rows: LogRange) -> dict[tuple[str, str], LatencyStats]:
    """Per role and arm (p50, p99, rows, calls per bucket) in milliseconds, from 2 %-wide log buckets,
    of the predictions of `rows`.

    A model call's rows share one latency value, so distinct values within a bucket are its calls.
    """
    width = math.log(LATENCY_BUCKET_RATIO)
    histograms: dict[tuple[str, str], list[tuple[int, int, int]]] = {}
    for bucket in latency.latency_histogram(conn, rows, width):
        histograms.setdefault((bucket.role, bucket.arm), []).append(
            (bucket.bucket, bucket.rows, bucket.calls)
        )
    return {key: _quantiles(sorted(buckets), width) for key, buckets in histograms.items()}


def champion_history(conn: Connection, window: Window, since: datetime) -> ArmSummary:
    """The champion's served model calls from `since` (the rollout's start) to the window's end: the
    sample its latency baseline is bounded from, across every phase and step in which it served."""
    served = LogRange(
        window.model_id, role="served", arm="champion", time_from=_epoch(since), time_to=_epoch(window.now)
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


def paired_summary(conn: Connection, window: Window, *, with_differences: bool) -> PairedSummary:
    """Champion and challenger on the same labelled requests (one served, the other in shadow).

    A request counts when both arms predicted it successfully and it has a label. The SQL sums per user
    first, then over users, so the look reads a handful of numbers: the request-level moments and the
    per-user sums of squares and cross products the clustered error ratio needs.
    """
    rows, loss = _in_window(window), request_error(window.scoring)
    sums = summaries.paired_sums(conn, rows, loss)
    n = sums.n
    if n == 0:
        return PairedSummary()
    diff_mean, diff_var = mean_and_variance(n, sums.sum_d, sums.sum_d2)
    _, champion_var = mean_and_variance(n, sums.sum_a, sums.sum_a2)
    differences = summaries.paired_differences(conn, rows, loss) if with_differences else None
    return PairedSummary(
        n=n,
        champion_mean=sums.sum_a / n,
        challenger_mean=sums.sum_b / n,
        diff_mean=diff_mean,
        diff_var=diff_var,
        champion_var=champion_var,
        users=sums.users,
        user_champion_sq=sums.user_aa,
        user_challenger_sq=sums.user_bb,
        user_cross=sums.user_ab,
        differences=differences,
    )


def user_mean_errors(conn: Connection, window: Window) -> dict[str, tuple[float, ...]]:
    """Each served user's mean error, per arm: only for the Mann-Whitney test (one value per user)."""
    loss = request_error(window.scoring)
    return summaries.user_mean_errors(conn, _in_window(window, "served"), loss, _matured(window))


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
    start = _epoch(window.started_at)
    marks = [hours * (k + 1) / USER_CURVE_POINTS for k in range(USER_CURVE_POINTS)]
    counts = summaries.units_first_seen(conn, _in_window(window, "served"), [start + m * 3600 for m in marks])
    return tuple(zip(marks, counts, strict=True))


def gather_evidence(conn: Connection, window: Window, reads: Reads) -> Evidence:
    """What the decision needs for one phase window: the arms' summaries, and the queries `reads` asks
    for (`rollout.reads.phase_reads`: those the phase's rules read); a query not run leaves its
    field empty."""
    prepare_losses(conn, _in_window(window), window.scoring)
    summaries = arm_summaries(conn, window)
    served, shadow, timing = summaries.role("served"), summaries.role("shadow"), summaries.role(TIMING)
    hours = max((window.now - window.started_at) / timedelta(hours=1), 0.0)
    total_served = sum(arm.requests for arm in served.values())
    coverage = (
        health.label_coverage(conn, _in_window(window), _epoch(window.coverage_before))
        if reads.label_coverage and window.coverage_before is not None
        else health.LabelCoverage(0, 0)
    )
    return Evidence(
        now=window.now,
        champion=served.get("champion", ArmSummary()),
        challenger=served.get("challenger", ArmSummary()),
        shadow=next(iter(shadow.values()), ArmSummary()),
        shadow_timing=next(iter(timing.values()), ArmSummary()),
        paired=(
            paired_summary(conn, window, with_differences=reads.differences)
            if reads.paired
            else PairedSummary()
        ),
        request_rate_per_hour=total_served / hours if hours > 0 else 0.0,
        window_hours=hours,
        unbucketed_requests=summaries.unbucketed_served,
        user_mean_errors=user_mean_errors(conn, window) if reads.user_means else None,
        users_seen=users_first_seen(conn, window) if reads.user_curve else (),
        champion_history=(
            champion_history(conn, window, window.rollout_started_at) if window.rollout_started_at else None
        ),
        both_arms_users=(
            health.users_in_both_arms(conn, _in_window(window))
            if reads.both_arms and "challenger" in served
            else 0
        ),
        matured_requests=coverage.requests,
        matured_labelled=coverage.labelled,
    )
