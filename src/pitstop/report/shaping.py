"""Pure shaping of what the store returned into report values: bucket widths, bands, quantiles, curves.

Nothing here reads the store or the clock; `data.py` does the I/O and calls these.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta

from pitstop.events import Event
from pitstop.report.values import Band, BandCurve, LatencyLimit, SharePoint
from pitstop.rollout.evidence import ArmSummary
from pitstop.rollout.gather import call_edges, log_quantiles
from pitstop.rollout.guardrails import champion_p99_bound, latency_limit_ms
from pitstop.routing.table import RoutingTable

NICE_WIDTHS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
MAX_BUCKETS = 100
HISTOGRAM_BINS = 40

Sums = tuple[int, float, float]  # count, sum, sum of squares


def bucket_width(duration_seconds: float, max_buckets: int = MAX_BUCKETS) -> float:
    """The smallest round width (seconds) that cuts `duration_seconds` into at most `max_buckets` buckets.

    >>> bucket_width(3 * 3600), bucket_width(86400), bucket_width(14 * 86400)
    (120.0, 900.0, 21600.0)
    """
    for width in NICE_WIDTHS:
        if duration_seconds / width <= max_buckets:
            return float(width)
    return float(math.ceil(duration_seconds / 86400 / max_buckets) * 86400)


def bucket_count(duration_seconds: float, width: float) -> int:
    """How many buckets of `width` cover the duration (at least one).

    >>> bucket_count(250, 100), bucket_count(0, 100)
    (3, 1)
    """
    return max(1, math.ceil(duration_seconds / width))


def bucket_times(start: datetime, width: float, count: int) -> list[datetime]:
    return [start + timedelta(seconds=width * i) for i in range(count)]


def phase_of(table: RoutingTable) -> str | None:
    """The rollout phase a routing table implements; None for `off` (the rollout has ended)."""
    if table.mode == "shadow":
        return "shadow"
    if table.mode == "split":
        return "ramp" if table.step is not None else "ab_test"
    return None


def served_share(table: RoutingTable, version: int) -> float:
    """The share of users `version` serves under `table` (after a promotion it is the champion: all).

    >>> from datetime import UTC
    >>> t = RoutingTable("m", 3, 1, 2, 0.25, None, "s", 1, 0, None, datetime(2026, 1, 1, tzinfo=UTC))
    >>> served_share(t, 2), served_share(t, 1)
    (0.25, 0.75)
    """
    if table.challenger == version:
        return table.challenger_share
    if table.champion == version:
        return 1.0 - (table.challenger_share if table.challenger is not None else 0.0)
    return 0.0


def bands(tables: list[RoutingTable], transitions: list[Event], until: datetime) -> list[Band]:
    """Every routing table of the rollout that shadows or splits is a band, up to the next table (or
    `until`); its label, rule and reason come from the transition recorded at the same moment."""
    at = {event.time: event for event in transitions}
    out = []
    for index, table in enumerate(tables):
        phase = phase_of(table)
        if phase is None or table.created_at >= until:
            continue
        end = tables[index + 1].created_at if index + 1 < len(tables) else until
        event = at.get(table.created_at)
        label = event.to_state if event is not None and event.to_state else _describe(phase, table)
        out.append(
            Band(
                label=label,
                phase=phase,
                start=table.created_at,
                end=min(end, until),
                share=table.challenger_share,
                routing_version=table.version,
                rule=event.rule if event else None,
                reason=event.reason if event else None,
                actor=event.actor if event else None,
            )
        )
    return out


def _describe(phase: str, table: RoutingTable) -> str:
    return phase if phase == "shadow" else f"{phase} {table.challenger_share:.0%}"


def band_index(bands_: list[Band], routing_version: int) -> int | None:
    """Which band a prediction routed by `routing_version` belongs to (None: before the first)."""
    found = None
    for index, band in enumerate(bands_):
        if band.routing_version <= routing_version:
            found = index
    return found


def share_steps(tables: list[RoutingTable], version: int, until: datetime) -> list[SharePoint]:
    """The share `version` served, from each routing table of the rollout on, up to `until`."""
    return [
        SharePoint(t.created_at, served_share(t, version), t.version, t.describe())
        for t in tables
        if t.created_at <= until
    ]


def mean_se(n: int, total: float | None, squares: float | None) -> tuple[float | None, float | None]:
    """Mean and its standard error from a count, sum and sum of squares.

    >>> mean_se(4, 10.0, 30.0)
    (2.5, 0.6454972243679028)
    """
    if n <= 0 or total is None:
        return None, None
    mean = total / n
    if n < 2 or squares is None:
        return mean, None
    variance = max((squares - n * mean * mean) / (n - 1), 0.0)
    return mean, math.sqrt(variance / n)


def histogram_range(mean: float, sd: float, low: float, high: float) -> tuple[float, float]:
    """Where to draw a histogram: mean ± 4 sd, within the observed range (a point: a unit around it).

    >>> histogram_range(0.0, 1.0, -10.0, 2.0)
    (-4.0, 2.0)
    """
    lo, hi = max(low, mean - 4 * sd), min(high, mean + 4 * sd)
    if hi - lo <= 1e-12:
        return lo - 0.5, lo + 0.5
    return lo, hi


def fold_histogram(raw: Mapping[int, int], bins: int) -> list[int]:
    """Counts per bin index with out-of-range indices folded into the edge bins.

    >>> fold_histogram({-2: 1, 0: 2, 3: 1, 9: 4}, 4)
    [3, 0, 0, 5]
    """
    counts = [0] * bins
    for index, count in raw.items():
        counts[min(max(index, 0), bins - 1)] += count
    return counts


def cumulative_ratio(
    band: Band,
    cells: Mapping[int, Mapping[str, Sums]],
    bucket_ends: list[datetime],
    limit: tuple[str, float] | None,
) -> BandCurve:
    """Challenger / champion mean error accumulated from the start of `band`, at each bucket end."""
    totals = {"champion": [0, 0.0], "challenger": [0, 0.0]}
    times: list[datetime] = [band.start]
    values: list[float | None] = [None]
    for bucket in sorted(cells):
        for arm, (n, total, _) in cells[bucket].items():
            if arm in totals:
                totals[arm][0] += n
                totals[arm][1] += total
        a_n, a_sum = totals["champion"]
        b_n, b_sum = totals["challenger"]
        ratio = None
        if a_n and b_n and a_sum > 0:
            ratio = (b_sum / b_n) / (a_sum / a_n)
        times.append(min(bucket_ends[bucket], band.end))
        values.append(ratio)
    return BandCurve(
        band=band.label,
        name="challenger / champion error",
        time=times,
        value=values,
        limit=limit[1] if limit else None,
        limit_name=limit[0] if limit else None,
    )


def cumulative_count(
    band: Band,
    name: str,
    counts: Mapping[int, int],
    bucket_ends: list[datetime],
    limit: float | None,
    limit_name: str | None,
) -> BandCurve:
    """A count accumulated from zero at the start of `band`, at each bucket end that added to it."""
    times: list[datetime] = [band.start]
    values: list[float | None] = [0.0]
    running = 0
    for bucket in sorted(counts):
        running += counts[bucket]
        times.append(min(bucket_ends[bucket], band.end))
        values.append(float(running))
    return BandCurve(band.label, name, times, values, limit, limit_name)


def latency_limit(
    band: Band,
    calls: Mapping[int, Mapping[int, int]],
    bucket_ends: list[datetime],
    ratio: float,
    slack_ms: float,
    *,
    alpha: float,
    earlier: Mapping[int, int],
) -> LatencyLimit:
    """The p99 limit a look at each bucket end of `band` applies, from the champion's served model calls
    per bucket (latency bucket index -> calls) accumulated over the rollout: `earlier` (the bands before
    this one) and the band's own from its start, at the level of its p99 bound
    (`Thresholds.baseline_alpha`)."""
    seen = dict(earlier)
    times, baselines = [band.start], [champion_baseline(seen, alpha)]
    for bucket in sorted(calls):
        for index, n in calls[bucket].items():
            seen[index] = seen.get(index, 0) + n
        times.append(min(bucket_ends[bucket], band.end))
        baselines.append(champion_baseline(seen, alpha))
    if not calls:
        times.append(band.end)  # a band where the champion serves nobody (a 100 % ramp step)
        baselines.append(baselines[0])
    return LatencyLimit(
        band=band.label,
        ratio=ratio,
        slack_ms=slack_ms,
        time=times,
        baseline_ms=baselines,
        limit_ms=[None if b is None else latency_limit_ms(ratio, b, slack_ms) for b in baselines],
        recorded=[False] * len(times),
    )


def champion_baseline(calls: Mapping[int, int], alpha: float) -> float | None:
    """The controller's baseline (`guardrails.champion_p99_bound`) of calls per latency bucket index.

    >>> champion_baseline({0: 5}, 0.005) is None  # fewer calls than the rule needs
    True
    """
    baseline = champion_p99_bound(ArmSummary(latency_calls=call_edges(dict(calls))), alpha)
    return baseline or None  # a zero baseline is none to the rule either (`guardrails.latency_breach`)


def with_decision(limit: LatencyLimit, time: datetime, limit_ms: float) -> LatencyLimit:
    """`limit` with the limit a decision recorded at `time` as its point there (replacing a computed
    point at the same time): what the rule applied, whatever the report's buckets approximate."""
    keep = [i for i, t in enumerate(limit.time) if t != time]
    points = sorted(
        [(limit.time[i], limit.baseline_ms[i], limit.limit_ms[i], limit.recorded[i]) for i in keep]
        + [(time, (limit_ms - limit.slack_ms) / limit.ratio, limit_ms, True)],
        key=lambda point: point[0],
    )
    return replace(
        limit,
        time=[p[0] for p in points],
        baseline_ms=[p[1] for p in points],
        limit_ms=[p[2] for p in points],
        recorded=[p[3] for p in points],
    )


def cumulative_p99(
    band: Band, histograms: Mapping[int, Mapping[int, int]], bucket_ends: list[datetime], width: float
) -> BandCurve:
    """The p99 latency of the band's predictions so far (latency histograms per time bucket, merged from
    the band's start), at each bucket end that added to it: the p99 the latency rule compares, cumulative
    in the phase (the rule counts model calls; a micro-batch's rows share one call's latency).

    >>> from datetime import UTC
    >>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
    >>> band = Band("ramp 50%", "ramp", t0, t0 + timedelta(hours=1), 0.5, 3)
    >>> ends = [t0 + timedelta(minutes=30), t0 + timedelta(hours=1)]
    >>> [round(v, 2) for v in cumulative_p99(band, {0: {5: 100}, 1: {20: 100}}, ends, 0.1).value]
    [0.82, 7.17]
    """
    merged: dict[int, int] = {}
    times: list[datetime] = []
    values: list[float | None] = []
    for bucket in sorted(histograms):
        for index, n in histograms[bucket].items():
            merged[index] = merged.get(index, 0) + n
        times.append(min(bucket_ends[bucket], band.end))
        values.append(log_quantiles(merged.items(), width, (0.99,))[0])
    return BandCurve(band.label, "challenger p99, cumulative in phase", times, values)
