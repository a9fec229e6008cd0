"""Everything a report or the dashboard shows about one rollout, read from the store by SQL aggregation.

The prediction log is never loaded row by row: each series is a GROUP BY over time buckets (about
50-100 per rollout, their width chosen from its duration), routing version and arm. Errors are each
request's loss, computed exactly as the controller's evidence is (`loss_sql.request_error`), joined to
labels at read time by the same queries (`store.predictions`); latency quantiles come from the same 2 %-wide
logarithmic histogram. Bands (phases and ramp
steps) are the rollout's routing tables, labelled by the transitions recorded with them, so every
prediction belongs to exactly one band through the routing version that served it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from pitstop import registry
from pitstop.config import Policy
from pitstop.errors import NotFoundError
from pitstop.events import Event, EventKind, list_events
from pitstop.losses import Scoring
from pitstop.report import shaping
from pitstop.report.values import (
    ABResult,
    ArmSeries,
    Band,
    BandCurve,
    BandSummary,
    LatencyLimit,
    ReportData,
    ShadowComparison,
    Thresholds,
)
from pitstop.report.words import ab_result, narrative
from pitstop.rollout.evidence import LATENCY_BUCKET_RATIO
from pitstop.rollout.gather import log_quantiles
from pitstop.rollout.guardrails import baseline_alpha
from pitstop.rollout.loss_sql import request_error
from pitstop.rollout.phases import Outcome
from pitstop.rollout.python_losses import prepare_losses
from pitstop.rollout.records import StoredRollout, latest_rollout, rollout_of
from pitstop.routing.store import routing_history
from pitstop.routing.table import TIMING
from pitstop.store import load_failures
from pitstop.store.predictions import series
from pitstop.store.predictions.error_messages import error_messages
from pitstop.store.predictions.rows import LogRange
from pitstop.store.predictions.series import TimeBuckets

if TYPE_CHECKING:
    from pitstop.context import Context

ARMS = ("champion", "challenger")
OUTCOMES = {outcome.value for outcome in Outcome}


@dataclass(frozen=True)
class Scope:
    """Which predictions a series counts: one model's two versions, routed by the rollout, in its time."""

    model_id: int
    scoring: Scoring
    start: float  # epoch seconds: bucket 0 begins here
    until: float  # epoch seconds: the series end here
    width: float  # bucket width, seconds
    count: int  # number of buckets
    first_version: int  # the rollout's first routing version
    versions: tuple[int, int]  # champion and challenger model versions

    @property
    def buckets(self) -> TimeBuckets:
        return TimeBuckets(self.start, self.width)


def report_data(ws: Context, model: str, rollout_id: int | None = None) -> ReportData:
    """The report of rollout `rollout_id` of `model` (default: its latest rollout), as of the clock's now."""
    now = ws.clock.now()
    with ws.reading() as conn:
        return gather_report(conn, model, rollout_id, now)


def find_rollout(conn: Connection, model: str, rollout_id: int | None) -> StoredRollout:
    """The rollout to report on; NotFoundError names what is missing."""
    info = registry.get_model(conn, model)
    if rollout_id is None:
        stored = latest_rollout(conn, info.id)
        if stored is None:
            raise NotFoundError(
                f"model {model!r} has no rollout to report on yet; start one with `pitstop rollout start`"
            )
        return stored
    return rollout_of(conn, info.id, model, rollout_id)


def gather_report(conn: Connection, model: str, rollout_id: int | None, now: datetime) -> ReportData:
    """Read and shape everything for one rollout in the caller's (read) transaction."""
    stored = find_rollout(conn, model, rollout_id)
    info = registry.get_model(conn, model)
    state = stored.state
    end = state.ended_at or max(now, state.started_at)
    tables = [t for t in routing_history(conn, info.id) if t.rollout_id == state.id]
    events = [
        e
        for e in list_events(conn, info.id)
        if e.rollout_id == state.id or (e.rollout_id is None and state.started_at <= e.time <= end)
    ]
    transitions = [e for e in events if e.kind is EventKind.ROLLOUT_TRANSITION]
    terminal = next((e.time for e in transitions if e.to_state in OUTCOMES), None)
    active_until = min(terminal or end, end)
    duration = max((active_until - state.started_at).total_seconds(), 0.0)
    width = shaping.bucket_width(duration)
    scope = Scope(
        model_id=info.id,
        scoring=Scoring.of(info),
        start=state.started_at.timestamp(),
        until=active_until.timestamp(),
        width=width,
        count=shaping.bucket_count(duration, width),
        first_version=min((t.version for t in tables), default=state.phase_routing_version),
        versions=(state.champion_version, state.challenger_version),
    )
    times = shaping.bucket_times(state.started_at, width, scope.count)
    ends = [min(t + timedelta(seconds=width), active_until) for t in times]
    bands = shaping.bands(tables, transitions, active_until)
    thresholds = _thresholds(stored)
    prepare_losses(conn, scope_rows(scope), scope.scoring)
    errors = _error_cells(conn, scope)
    latency = _latency_cells(conn, scope)
    views = _band_views(conn, scope, stored, bands, latency, ends, thresholds, transitions)
    limits = _latency_limits(bands, _champion_calls(conn, scope), ends, thresholds, transitions)
    rollout = {**stored.to_dict(), "last_check": stored.status}
    gate_event = next((e for e in transitions if e.from_state == "gate"), None)
    messages = error_messages(conn, info.id, since_routing_version=scope.first_version, until=active_until)
    return ReportData(
        model=model,
        task=info.task.value,
        rollout=rollout,
        generated_at=now,
        start=state.started_at,
        end=end,
        active_until=active_until,
        bucket_seconds=width,
        times=times,
        arms=_arm_series(scope, errors, latency),
        bands=bands,
        share=shaping.share_steps(tables, state.challenger_version, end),
        events=events,
        ratios=views.ratios,
        progress=views.progress,
        latency_limits=limits,
        challenger_p99=_challenger_p99(bands, latency, ends),
        summaries=views.summaries,
        thresholds=thresholds,
        gate=registry.get_version(conn, info, state.challenger_version).gate_result,
        gate_note=f"{gate_event.rule}: {gate_event.reason}" if gate_event else None,
        shadow=views.shadow,
        ab=_ab(stored, transitions),
        words=narrative(rollout, transitions),
        error_unit=scope.scoring.loss.unit,
        errors=messages,
        unavailable=_unavailable(conn, stored, now),
    )


def _unavailable(conn: Connection, stored: StoredRollout, now: datetime) -> list[str]:
    """What live gateways say about an active rollout's challenger that they cannot load."""
    if stored.state.outcome is not None:
        return []  # the ending's reason says it, if that is why it ended
    version = stored.state.challenger_version
    return load_failures.cannot_load(version, load_failures.reported(conn, stored.model_id, version, now))


def _thresholds(stored: StoredRollout) -> Thresholds:
    policy, plan = stored.policy, stored.state.plan
    required = None if plan is None else plan.required
    return Thresholds(
        shadow_tolerance=policy.shadow.error_tolerance,
        shadow_p99_ratio=policy.shadow.max_p99_ratio,
        rollback_error_ratio=policy.guardrails.max_error_ratio,
        rollback_p99_ratio=policy.guardrails.max_p99_ratio,
        latency_slack_ms=policy.guardrails.latency_slack.total_seconds() * 1000,
        baseline_alpha=baseline_alpha(policy),
        shadow_min_labeled=policy.shadow.min_labeled,
        ramp_min_labeled_per_arm=policy.ramp.min_labeled_per_arm,
        ab_margin=policy.ab_test.min_improvement,
        alpha=policy.ab_test.alpha,
        ab_share=policy.ab_test.share,
        ab_required=required,
    )


# -- reading the log (`store.predictions.series`) ---------------------------------------------------


def scope_rows(
    scope: Scope, low: int | None = None, high: int | None = None, role: str | None = None
) -> LogRange:
    """Predictions of the rollout's versions and time; optionally only routing versions [low, high).
    Timing records (a sample of shadow requests timed as served, `serving/timing.py`) repeat shadow
    predictions: the report counts each prediction once."""
    return LogRange(
        scope.model_id,
        role=role,
        skip_role=TIMING,
        routing_from=scope.first_version if low is None else low,
        time_from=scope.start,
        time_to=scope.until,
        versions=scope.versions,
        routing_before=high,
    )


ErrorCells = dict[tuple[int, int, str], shaping.Sums]  # (bucket, routing version, arm) -> n, sum, squares
LatencyCells = dict[tuple[int, int, str], tuple[int, int, list[tuple[int, int]]]]  # -> n, failures, hist
CallCells = dict[tuple[int, int], dict[int, int]]  # (bucket, routing version) -> latency bucket -> calls


def _error_cells(conn: Connection, scope: Scope) -> ErrorCells:
    """Labelled, successful predictions per bucket, routing version and arm: count, Σ error, Σ error²
    (each request's first prediction per role only, as the controller counts them: `first_labelled`)."""
    cells = series.error_cells(conn, scope_rows(scope), request_error(scope.scoring), scope.buckets)
    return {(_clip(scope, c.bucket), c.routing_version, c.arm): (c.n, c.total, c.squares) for c in cells}


def _latency_cells(conn: Connection, scope: Scope) -> LatencyCells:
    """Every prediction per bucket, routing version and arm: count, failures, latency log-histogram."""
    width = math.log(LATENCY_BUCKET_RATIO)
    cells: LatencyCells = {}
    for c in series.latency_cells(conn, scope_rows(scope), width, scope.buckets):
        key = (_clip(scope, c.bucket), c.routing_version, c.arm)
        count, failed, histogram = cells.get(key, (0, 0, []))
        histogram.append((c.latency_bucket, c.rows))
        cells[key] = (count + c.rows, failed + c.failures, histogram)
    return cells


def _champion_calls(conn: Connection, scope: Scope) -> CallCells:
    """The champion's served model calls per bucket, routing version and latency bucket, counted as the
    controller counts them (`gather.latency_quantiles`): the rows of one micro-batch share their call's
    latency, so distinct latencies are calls (per time bucket here: two calls of exactly equal latency
    in different buckets count twice, where the controller's window counts them once)."""
    width = math.log(LATENCY_BUCKET_RATIO)
    served = replace(scope_rows(scope), role="served", arm="champion")
    cells: CallCells = defaultdict(dict)
    for c in series.call_cells(conn, served, width, scope.buckets):
        cell = cells[_clip(scope, c.bucket), c.routing_version]
        cell[c.latency_bucket] = cell.get(c.latency_bucket, 0) + c.calls
    return cells


def _clip(scope: Scope, bucket: Any) -> int:
    """A prediction exactly at the series' end belongs to the last bucket."""
    return min(max(int(bucket), 0), scope.count - 1)


def _known_errors(conn: Connection, scope: Scope, band: BandScope) -> dict[tuple[int, str], shaping.Sums]:
    """Per bucket of label arrival and arm: the band's labelled errors known by the band's end."""
    rows, loss = scope_rows(scope, band.low, band.high), request_error(scope.scoring)
    return {
        (_clip(scope, k.bucket), k.arm): (k.n, k.total, k.squares)
        for k in series.known_errors(conn, rows, loss, scope.buckets, band.until)
    }


def paired_comparison(
    conn: Connection,
    scope: Scope,
    band: BandScope,
    policy: Policy,
    numbers: dict[str, Any],
    verdict: Event | None,
) -> tuple[ShadowComparison, dict[int, int]]:
    """The paired comparison of a shadow band (pairs known by its end), and new pairs per bucket: a
    rollout's shadow phase, or a shadow set by hand (`report.hand_made`)."""
    rows, loss = scope_rows(scope, band.low, band.high), request_error(scope.scoring)
    sums = series.paired_known(conn, rows, loss, band.until)
    n, sum_a, sum_b = sums.n, sums.sum_a, sums.sum_b
    pairs: dict[int, int] = {}
    for b, count in series.pairs_per_bucket(conn, rows, loss, band.until, scope.buckets).items():
        pairs[_clip(scope, b)] = count
    comparison = ShadowComparison(
        n=n,
        champion_mean=float(sum_a) / n if n else None,
        challenger_mean=float(sum_b) / n if n else None,
        diff_mean=None,
        diff_sd=None,
        edges=[],
        counts=[],
        ratio=float(sum_b) / float(sum_a) if n and sum_a else None,
        tolerance=policy.shadow.error_tolerance,
        test=numbers.get("test") if isinstance(numbers.get("test"), dict) else None,
        rule=verdict.rule if verdict else None,
        reason=verdict.reason if verdict else None,
    )
    if n == 0:
        return comparison, pairs
    mean, se = shaping.mean_se(n, sums.sum_d, sums.sum_d2)
    sd = (se or 0.0) * math.sqrt(n)
    lo, hi = shaping.histogram_range(mean or 0.0, sd, sums.low, sums.high)
    step = (hi - lo) / shaping.HISTOGRAM_BINS
    raw = series.difference_bins(conn, rows, loss, band.until, lo, step)
    return replace(
        comparison,
        diff_mean=mean,
        diff_sd=sd,
        edges=[lo + step * i for i in range(shaping.HISTOGRAM_BINS + 1)],
        counts=shaping.fold_histogram(raw, shaping.HISTOGRAM_BINS),
    ), pairs


def _new_users(conn: Connection, scope: Scope, band: BandScope) -> dict[tuple[int, str], int]:
    """Per bucket and served arm: users whose first label (known by the band's end) arrived in it."""
    rows = scope_rows(scope, band.low, band.high, role="served")
    return {
        (_clip(scope, b), arm): n for b, arm, n in series.new_units(conn, rows, scope.buckets, band.until)
    }


# -- shaping the cells ----------------------------------------------------------------------------


def _arm_series(scope: Scope, errors: ErrorCells, latency: LatencyCells) -> dict[str, ArmSeries]:
    """Per arm and bucket of request time, whatever the routing version: requests, failures, error,
    latency quantiles."""
    width = math.log(LATENCY_BUCKET_RATIO)
    out = {}
    for arm in ARMS:
        sums: dict[int, shaping.Sums] = {}
        for (b, _, a), (n, total, squares) in errors.items():
            if a == arm:
                before = sums.get(b, (0, 0.0, 0.0))
                sums[b] = (before[0] + n, before[1] + total, before[2] + squares)
        calls: dict[int, tuple[int, int, list[tuple[int, int]]]] = {}
        for (b, _, a), (n, failures, histogram) in latency.items():
            if a == arm:
                count, failed, merged = calls.get(b, (0, 0, []))
                calls[b] = (count + n, failed + failures, merged + histogram)
        buckets = range(scope.count)
        stats = [shaping.mean_se(*sums[b]) if b in sums else (None, None) for b in buckets]
        quantiles = [
            log_quantiles(calls[b][2], width, (0.5, 0.99)) if b in calls else [None, None] for b in buckets
        ]
        out[arm] = ArmSeries(
            arm=arm,
            requests=[calls[b][0] if b in calls else 0 for b in buckets],
            failures=[calls[b][1] if b in calls else 0 for b in buckets],
            labelled=[sums[b][0] if b in sums else 0 for b in buckets],
            error_mean=[mean for mean, _ in stats],
            error_se=[se for _, se in stats],
            latency_p50=[q[0] for q in quantiles],
            latency_p99=[q[1] for q in quantiles],
        )
    return out


@dataclass(frozen=True)
class BandScope:
    """One band's predictions: routing versions [low, high), labels known by `until` (epoch seconds)."""

    band: Band
    low: int
    high: int | None
    until: float


def _band_scopes(bands: list[Band]) -> list[BandScope]:
    out = []
    for index, band in enumerate(bands):
        high = bands[index + 1].routing_version if index + 1 < len(bands) else None
        out.append(BandScope(band, band.routing_version, high, band.end.timestamp()))
    return out


@dataclass
class BandViews:
    """What the per-band queries yield, shaped."""

    ratios: list[BandCurve]
    progress: list[BandCurve]
    summaries: list[BandSummary]
    shadow: ShadowComparison | None


def _band_views(
    conn: Connection,
    scope: Scope,
    stored: StoredRollout,
    bands: list[Band],
    latency: LatencyCells,
    ends: list[datetime],
    thresholds: Thresholds,
    transitions: list[Event],
) -> BandViews:
    """Per band, as the controller could see it (labels known by the band's end): the cumulative error
    ratio, labelled samples toward what the band needs, the band's totals, and the shadow comparison."""
    views = BandViews([], [], [], None)
    for band_scope in _band_scopes(bands):
        band = band_scope.band
        known = _known_errors(conn, scope, band_scope)
        cells: dict[int, dict[str, shaping.Sums]] = defaultdict(dict)
        for (b, arm), sums in known.items():
            cells[b][arm] = sums
        limit = thresholds.error_ratio_limit(band.phase)
        views.ratios.append(shaping.cumulative_ratio(band, cells, ends, limit))
        views.summaries.extend(_summaries(band_scope, known, latency))
        if band.phase == "shadow" and views.shadow is None:
            verdict = next((e for e in transitions if e.from_state == "shadow"), None)
            numbers = verdict.data if verdict else ((stored.status or {}).get("numbers") or {})
            views.shadow, pairs = paired_comparison(conn, scope, band_scope, stored.policy, numbers, verdict)
            required = thresholds.shadow_min_labeled
            views.progress.append(
                shaping.cumulative_count(band, "labelled pairs", pairs, ends, required, "required pairs")
            )
        elif band.phase == "ab_test":
            users = _new_users(conn, scope, band_scope)
            planned = thresholds.ab_required or {}
            for arm in ARMS:
                firsts = {b: n for (b, a), n in users.items() if a == arm}
                name, limit_name = f"{arm} users", f"planned {arm} users"
                views.progress.append(
                    shaping.cumulative_count(band, name, firsts, ends, planned.get(arm), limit_name)
                )
        elif band.phase == "ramp":
            required = thresholds.ramp_min_labeled_per_arm
            for arm in ARMS:
                counts = {b: n for (b, a), (n, _, _) in known.items() if a == arm}
                views.progress.append(
                    shaping.cumulative_count(
                        band, f"{arm} labelled", counts, ends, required, "required per arm"
                    )
                )
    return views


def _latency_limits(
    bands: list[Band],
    calls: CallCells,
    ends: list[datetime],
    thresholds: Thresholds,
    transitions: list[Event],
) -> list[LatencyLimit]:
    """Per band, the p99 limit the latency rule applies: from the champion's served calls since the
    rollout began (every band before this one, and this one's so far; at a 100 % ramp step the champion
    serves nobody, so the calls before it), and at a decision the limit it recorded."""
    out: list[LatencyLimit] = []
    earlier: dict[int, int] = {}
    for band_scope in _band_scopes(bands):
        band = band_scope.band
        in_band = _calls_in_band(calls, band_scope)
        ratio = thresholds.p99_ratio_limit(band.phase)
        if ratio is not None:
            limit = shaping.latency_limit(
                band,
                in_band,
                ends,
                ratio,
                thresholds.latency_slack_ms,
                alpha=thresholds.baseline_alpha,
                earlier=earlier,
            )
            decided = next(
                (e for e in transitions if band.start < e.time <= band.end and "limit_ms" in e.data), None
            )
            if decided is not None:
                limit = shaping.with_decision(limit, decided.time, float(decided.data["limit_ms"]))
            out.append(limit)
        for cell in in_band.values():
            for index, n in cell.items():
                earlier[index] = earlier.get(index, 0) + n
    return out


def _challenger_p99(bands: list[Band], latency: LatencyCells, ends: list[datetime]) -> list[BandCurve]:
    """Per band, the challenger's p99 latency cumulative from the band's start (its routing versions)."""
    width = math.log(LATENCY_BUCKET_RATIO)
    curves = []
    for band_scope in _band_scopes(bands):
        histograms: dict[int, dict[int, int]] = defaultdict(dict)
        for (b, version, arm), (_, _, histogram) in latency.items():
            if arm == "challenger" and _in_band(version, band_scope):
                for index, n in histogram:
                    histograms[b][index] = histograms[b].get(index, 0) + n
        curves.append(shaping.cumulative_p99(band_scope.band, histograms, ends, width))
    return curves


def _in_band(version: int, band_scope: BandScope) -> bool:
    return version >= band_scope.low and (band_scope.high is None or version < band_scope.high)


def _calls_in_band(calls: CallCells, band_scope: BandScope) -> dict[int, dict[int, int]]:
    """Per bucket: the band's calls per latency bucket (its routing versions only)."""
    out: dict[int, dict[int, int]] = defaultdict(dict)
    for (b, version), cell in calls.items():
        if version >= band_scope.low and (band_scope.high is None or version < band_scope.high):
            for index, n in cell.items():
                out[b][index] = out[b].get(index, 0) + n
    return out


def _summaries(
    band_scope: BandScope, known: dict[tuple[int, str], shaping.Sums], latency: LatencyCells
) -> list[BandSummary]:
    width = math.log(LATENCY_BUCKET_RATIO)
    out = []
    for arm in ARMS:
        n = sum(sums[0] for (_, a), sums in known.items() if a == arm)
        total = sum(sums[1] for (_, a), sums in known.items() if a == arm)
        squares = sum(sums[2] for (_, a), sums in known.items() if a == arm)
        in_band = [
            cell
            for (_, version, a), cell in latency.items()
            if a == arm
            and version >= band_scope.low
            and (band_scope.high is None or version < band_scope.high)
        ]
        requests = sum(cell[0] for cell in in_band)
        if not requests:
            continue
        mean, se = shaping.mean_se(n, total, squares)
        p50, p99 = log_quantiles([h for cell in in_band for h in cell[2]], width, (0.5, 0.99))
        failures = sum(cell[1] for cell in in_band)
        out.append(BandSummary(band_scope.band.label, arm, requests, failures, n, mean, se, p50, p99))
    return out


def _ab(stored: StoredRollout, transitions: list[Event]) -> ABResult | None:
    """The A/B verdict the controller recorded when the A/B test ended, else its last look while it runs."""
    policy = stored.policy
    margin, alpha = policy.ab_test.min_improvement, policy.ab_test.alpha
    ended = next((e for e in transitions if (e.from_state or "").startswith("ab_test")), None)
    if ended is not None:
        return ab_result(
            ended.data,
            rule=ended.rule or "-",
            reason=ended.reason or "",
            final=True,
            time=ended.time,
            margin=margin,
            alpha=alpha,
        )
    status = stored.status or {}
    if stored.state.outcome is None and stored.state.phase.value == "ab_test" and status:
        checked = status.get("checked_at")
        return ab_result(
            status.get("numbers") or {},
            rule=str(status.get("rule")),
            reason=str(status.get("reason")),
            final=False,
            time=datetime.fromisoformat(checked) if checked else None,
            margin=margin,
            alpha=alpha,
        )
    return None
