"""Plotly figures of a rollout, built from `ReportData` alone (the report and the dashboard share them).

Times are drawn in UTC. Phases and ramp steps are tinted behind every chart over time, so each curve
reads against the phase it belongs to; the thresholds the controller applies are drawn as lines.
"""

from __future__ import annotations

import html
import json
import math
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from pitstop.events import Event, EventKind
from pitstop.formats import decision_numbers, fmt_time, fmt_value
from pitstop.report.values import (
    ArmSeries,
    Band,
    BandCurve,
    LatencyCheck,
    LatencyLimit,
    ReportData,
    ShadowComparison,
)

ARM_COLORS = {"champion": "#2563eb", "challenger": "#dc2626"}
ARM_FILLS = {"champion": "rgba(37,99,235,0.16)", "challenger": "rgba(220,38,38,0.16)"}
PHASE_COLORS = {"shadow": "#7c3aed", "ab_test": "#d97706", "ramp": "#059669"}
LIMIT_COLORS = {"shadow tolerance": "#d97706", "rollback": "#b91c1c"}
OUTCOME_COLORS = {
    "promoted": "#059669",
    "rejected": "#6b7280",
    "rolled_back": "#b91c1c",
    "aborted": "#6b7280",
}
EVENT_ROWS = {
    EventKind.ROLLOUT_TRANSITION: "decisions",
    EventKind.ROLLOUT_HELD: "decisions",
    EventKind.ROLLOUT_RESUMED: "decisions",
    EventKind.ROLLOUT_APPROVED: "decisions",
    EventKind.ROLLOUT_WARNING: "warnings",
    EventKind.ROUTING_CHANGED: "routing",
    EventKind.ALIAS_MOVED: "aliases",
}
HEIGHT = 380
LEGEND_GAP = 86  # pixels from the bottom of the plot area to the legend: tick labels and axis title
GRID = "#e5e7eb"
HOVER_TIME = "%Y-%m-%dT%H:%M:%SZ"  # as `formats.fmt_time` writes a moment everywhere else
NICE_MANTISSAS = ((1, 2, 5), (1,))  # log-axis ticks: 1, 2, 5, 10 …; or one per decade when too many
MAX_LOG_TICKS = 9
SUBTITLE_WIDTH = 60  # characters of 11 px text on a 390 px phone's chart
SUBTITLE_LINE = 16  # pixels more of top margin for each subtitle line after the first
FONT = "system-ui, -apple-system, Segoe UI, Roboto, sans-serif"


def build_figures(data: ReportData) -> dict[str, go.Figure]:
    """Every chart of the report, by name, in reading order (charts without data are left out)."""
    figures = {
        "timeline": timeline(data),
        "share": share(data),
        "errors": errors(data),
        "latency": latency(data),
        "progress": progress(data),
    }
    if data.shadow is not None and data.shadow.n:
        figures["shadow"] = shadow_differences(data)
    if data.ab is not None and data.ab.effect is not None:
        figures["ab"] = ab_effect(data)
    return figures


def figure_json(figure: go.Figure) -> dict[str, Any]:
    """A figure as plain JSON (for `Plotly.react` in the dashboard)."""
    value: dict[str, Any] = json.loads(figure.to_json())
    return value


# -- shared pieces --------------------------------------------------------------------------------


def _t(moment: datetime) -> str:
    """A time as plotly's date axis reads it (plotly.js has no time zones: UTC, written without one)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _span(start: datetime, end: datetime) -> list[str]:
    """A time axis range with a little room on both sides, so markers at the edges show whole."""
    pad = max((end - start) * 0.015, timedelta(seconds=1))
    return [_t(start - pad), _t(end + pad)]


def _centres(data: ReportData) -> list[str]:
    half = timedelta(seconds=data.bucket_seconds / 2)
    return [_t(min(start + half, data.active_until)) for start in data.times]


def _width_text(seconds: float) -> str:
    """`2 min`, `1 h`, `30 s`.

    >>> _width_text(120), _width_text(3600), _width_text(30), _width_text(172800)
    ('2 min', '1 h', '30 s', '2 d')
    """
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)} {unit}"
    return f"{seconds:g} s"


def _style(figure: go.Figure, title: str, subtitle: str = "", *, height: int = HEIGHT) -> go.Figure:
    """Shared look: a short title (it must fit a phone's width) and smaller lines under it, broken
    between words to fit a phone too (plotly does not wrap a title)."""
    top, bottom = 64, 40
    if subtitle:
        lines = _subtitle_lines(subtitle)
        top = 80 + SUBTITLE_LINE * (len(lines) - 1)
        small = "<br>".join(f"<span style='font-size:11px;color:#4b5563'>{line}</span>" for line in lines)
        title = f"{title}<br>{small}"
    below_axis = -LEGEND_GAP / (height - top - bottom)  # the legend starts under the x axis and its title
    figure.update_layout(
        title={
            "text": title,
            "x": 0.0,
            "xanchor": "left",
            "y": 1 - 12 / height,  # from the top down: more subtitle lines push nothing into the plot
            "yref": "container",
            "yanchor": "top",
            "font": {"size": 15},
        },
        template="none",  # the few styles below, instead of a template copied into every figure
        paper_bgcolor="white",
        plot_bgcolor="white",
        height=height,
        margin={"l": 60, "r": 16, "t": top, "b": bottom},
        legend={"orientation": "h", "yanchor": "top", "y": below_axis, "x": 0.0, "font": {"size": 11}},
        hovermode="closest",
        font={"family": FONT, "size": 12},
        hoverlabel={"align": "left"},
    )
    axes = {"gridcolor": GRID, "linecolor": "#9ca3af", "zerolinecolor": GRID, "automargin": True}
    figure.update_xaxes(**axes)
    figure.update_yaxes(**axes)
    return figure


def _subtitle_lines(text: str, width: int = SUBTITLE_WIDTH) -> list[str]:
    """`text` in lines of at most `width` characters, broken between words.

    >>> _subtitle_lines("now: challenger p99 7.3 ms (cumulative in phase); no limit yet", 40)
    ['now: challenger p99 7.3 ms (cumulative', 'in phase); no limit yet']
    """
    lines: list[str] = []
    for word in text.split(" "):
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


def _escape(text: Any) -> str:
    return html.escape(str(text), quote=False)


def _numbers_hover(numbers: dict[str, Any]) -> str:
    lines = [f"{_escape(key)}: {_escape(value)}" for key, value in decision_numbers(numbers, limit=24)]
    return "<br>".join(lines)


def _wrap(text: str, width: int = 70) -> str:
    """Long reasons broken into hover lines."""
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    if line:
        lines.append(line)
    return "<br>".join(_escape(item) for item in lines)


def _backdrop(figure: go.Figure, data: ReportData, *, label: bool = True) -> None:
    """Each phase and ramp step tinted behind the plot, labelled when wide enough to read."""
    span = max((data.end - data.start).total_seconds(), 1.0)
    for band in data.bands:
        figure.add_shape(
            type="rect",
            xref="x",
            yref="paper",
            x0=_t(band.start),
            x1=_t(band.end),
            y0=0,
            y1=1,
            fillcolor=PHASE_COLORS.get(band.phase, "#9ca3af"),
            opacity=0.08,
            line_width=0,
            layer="below",
        )
        if label and (band.end - band.start).total_seconds() / span >= 0.2:
            figure.add_annotation(
                x=_t(band.start),
                y=1.0,
                xref="x",
                yref="paper",
                text=_escape(band.label),
                showarrow=False,
                xanchor="left",
                yanchor="bottom",
                font={"size": 10, "color": PHASE_COLORS.get(band.phase, "#374151")},
            )


def _band_hover(band: Band) -> str:
    lines = [
        f"<b>{_escape(band.label)}</b>",
        f"{fmt_time(band.start)} → {fmt_time(band.end)}",
        f"challenger share {band.share:.0%}",
        f"routing version {band.routing_version}",
    ]
    if band.rule:
        lines.append(f"began by rule {_escape(band.rule)} ({_escape(band.actor)})")
    if band.reason:
        lines.append(_wrap(band.reason))
    return "<br>".join(lines)


def _event_hover(event: Event) -> str:
    lines = [f"<b>{_escape(event.kind)}</b> {fmt_time(event.time)}", f"by {_escape(event.actor)}"]
    if event.from_state or event.to_state:
        lines.append(f"{_escape(event.from_state or '-')} → {_escape(event.to_state or '-')}")
    if event.rule:
        lines.append(f"rule: {_escape(event.rule)}")
    if event.reason:
        lines.append(_wrap(event.reason))
    numbers = _numbers_hover(event.data)
    if numbers:
        lines.append("<i>numbers</i><br>" + numbers)
    return "<br>".join(lines)


# -- the charts -----------------------------------------------------------------------------------


def timeline(data: ReportData) -> go.Figure:
    """Phases and ramp steps as bands over time; every event of the rollout marked, rule and numbers
    on hover."""
    figure = go.Figure()
    for band in data.bands:
        figure.add_trace(
            go.Bar(
                x=[(band.end - band.start).total_seconds() * 1000],
                base=[_t(band.start)],
                y=["phases"],
                orientation="h",
                marker_color=PHASE_COLORS.get(band.phase, "#9ca3af"),
                text=[_escape(band.label)],
                textposition="inside",
                insidetextanchor="middle",
                name=band.label,
                hovertext=[_band_hover(band)],
                hovertemplate="%{hovertext}<extra></extra>",
                showlegend=False,
            )
        )
    rows: dict[str, list[Event]] = {}
    for event in data.events:
        rows.setdefault(EVENT_ROWS.get(event.kind, "other"), []).append(event)
    for row, events in rows.items():
        colors = [
            OUTCOME_COLORS.get(e.to_state or "", "#111827")
            if e.kind is EventKind.ROLLOUT_TRANSITION
            else "#4b5563"
            for e in events
        ]
        figure.add_trace(
            go.Scatter(
                x=[_t(e.time) for e in events],
                y=[row] * len(events),
                mode="markers",
                marker={
                    "size": 11,
                    "symbol": "diamond",
                    "color": colors,
                    "line": {"width": 1, "color": "white"},
                },
                name=f"{row} ({len(events)})",
                hovertext=[_event_hover(e) for e in events],
                hovertemplate="%{hovertext}<extra></extra>",
            )
        )
    order = ["phases", "decisions", "routing", "aliases", "other"]
    present = [row for row in order if row == "phases" or row in rows]
    figure.update_xaxes(
        type="date", title_text="time (UTC)", range=_span(data.start, data.end), hoverformat=HOVER_TIME
    )
    figure.update_yaxes(
        type="category", categoryorder="array", categoryarray=list(reversed(present)), title_text=""
    )
    figure.update_layout(barmode="overlay", bargap=0.35, showlegend=False)
    subtitle = f"rollout {data.rollout_id}; hover a band or a marker for its rule, reason and numbers"
    return _style(figure, "Timeline: phases and events", subtitle, height=300)


def share(data: ReportData) -> go.Figure:
    """The share of users the challenger version serves, as a step chart."""
    points = list(data.share)
    xs = [_t(p.time) for p in points]
    ys = [p.share * 100 for p in points]
    hover = [f"{_escape(p.label)}<br>from {fmt_time(p.time)}: {p.share:.0%} of users" for p in points]
    if points:
        xs.append(_t(data.end))
        ys.append(points[-1].share * 100)
        hover.append(f"{fmt_time(data.end)}: {points[-1].share:.0%} of users")
    figure = go.Figure(
        go.Scatter(
            x=xs,
            y=ys,
            mode="lines+markers",
            line={"shape": "hv", "color": ARM_COLORS["challenger"], "width": 2.5},
            name=f"version {data.rollout['challenger_version']} (challenger)",
            hovertext=hover,
            hovertemplate="%{hovertext}<extra></extra>",
        )
    )
    _backdrop(figure, data)
    figure.update_xaxes(
        type="date", title_text="time (UTC)", range=_span(data.start, data.end), hoverformat=HOVER_TIME
    )
    figure.update_yaxes(title_text="share of users (%)", range=[-3, 105], ticksuffix=" %")
    figure.update_layout(showlegend=True)
    subtitle = f"users served by version {data.rollout['challenger_version']}, by routing table"
    return _style(figure, "Challenger traffic share", subtitle, height=300)


def _band_trace(series: ArmSeries, xs: list[str]) -> go.Scatter:
    """Mean ± 1.96 standard errors of one arm: one filled polygon per run of buckets with data."""
    px: list[str | None] = []
    py: list[float | None] = []
    run: list[tuple[str, float, float]] = []
    points = zip(xs, series.error_mean, series.error_se, strict=True)
    for x, mean, se in [*points, ("", None, None)]:
        if mean is not None and se is not None:
            run.append((x, mean + 1.96 * se, mean - 1.96 * se))
            continue
        if run:
            px += [p[0] for p in run] + [p[0] for p in reversed(run)] + [None]
            py += [p[1] for p in run] + [p[2] for p in reversed(run)] + [None]
            run = []
    return go.Scatter(
        x=px,
        y=py,
        mode="lines",
        line={"width": 0},
        fill="toself",
        fillcolor=ARM_FILLS[series.arm],
        name=f"{series.arm} 95 % band",
        hoverinfo="skip",
        showlegend=False,
        legendgroup=series.arm,
    )


def errors(data: ReportData) -> go.Figure:
    """Mean error per time bucket for both models with 95 % bands; below, the challenger/champion ratio
    accumulated within each phase against the shadow tolerance and the rollback threshold."""
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.62, 0.38], vertical_spacing=0.07)
    xs = _centres(data)
    for arm, series in data.arms.items():
        figure.add_trace(_band_trace(series, xs), row=1, col=1)
        figure.add_trace(
            go.Scatter(
                x=xs,
                y=series.error_mean,
                mode="lines+markers",
                marker={"size": 4},
                line={"color": ARM_COLORS[arm], "width": 2},
                name=f"{arm} (v{data.rollout[f'{arm}_version']})",
                legendgroup=arm,
                customdata=list(zip(series.labelled, series.error_se, strict=True)),
                hovertemplate=f"{arm}<br>%{{x}}<br>mean error %{{y:.4g}} ± %{{customdata[1]:.2g}} (se)"
                "<br>%{customdata[0]} labelled requests<extra></extra>",
            ),
            row=1,
            col=1,
        )
    shown: set[str] = set()
    for curve in data.ratios:
        figure.add_trace(
            go.Scatter(
                x=[_t(t) for t in curve.time],
                y=curve.value,
                mode="lines+markers",
                marker={"size": 4},
                line={"color": "#111827", "width": 2},
                name="challenger / champion error (cumulative in phase)",
                legendgroup="ratio",
                showlegend="ratio" not in shown,
                hovertemplate=f"{_escape(curve.band)}<br>%{{x}}<br>ratio %{{y:.3f}}<extra></extra>",
            ),
            row=2,
            col=1,
        )
        shown.add("ratio")
        band = next(b for b in data.bands if b.label == curve.band)
        if curve.limit is not None and curve.limit_name is not None:
            figure.add_trace(
                go.Scatter(
                    x=[_t(band.start), _t(band.end)],
                    y=[curve.limit, curve.limit],
                    mode="lines",
                    line={"color": LIMIT_COLORS.get(curve.limit_name, "#b91c1c"), "dash": "dash", "width": 2},
                    name=f"{curve.limit_name} ({curve.limit:g} x)",
                    legendgroup=curve.limit_name,
                    showlegend=curve.limit_name not in shown,
                    hovertemplate=f"{_escape(curve.limit_name)} {curve.limit:g} x champion<extra></extra>",
                ),
                row=2,
                col=1,
            )
            shown.add(curve.limit_name)
    _backdrop(figure, data)
    figure.update_xaxes(type="date", range=_span(data.start, data.active_until), hoverformat=HOVER_TIME)
    figure.update_xaxes(title_text="time (UTC)", row=2, col=1)
    figure.update_yaxes(title_text=data.error_unit, row=1, col=1)
    figure.update_yaxes(title_text="ratio (x)", row=2, col=1, rangemode="tozero")
    subtitle = (
        f"mean per {_width_text(data.bucket_seconds)} with 95 % band; below: ratio, cumulative in phase"
    )
    return _style(figure, "Error: champion vs challenger", subtitle, height=520)


def latency(data: ReportData) -> go.Figure:
    """p50 and p99 latency of both models per time bucket, with the p99 limit the latency rule applies
    (ratio x the champion's baseline + slack), and the limit each latency decision recorded."""
    figure = go.Figure()
    xs = _centres(data)
    for arm, series in data.arms.items():
        for name, values, dash in (("p50", series.latency_p50, "dot"), ("p99", series.latency_p99, "solid")):
            figure.add_trace(
                go.Scatter(
                    x=xs,
                    y=values,
                    mode="lines",
                    line={"color": ARM_COLORS[arm], "dash": dash, "width": 2 if name == "p99" else 1.5},
                    name=f"{arm} {name}",
                    legendgroup=arm,
                    hovertemplate=f"{arm} {name}<br>%{{x}}<br>%{{y:.1f}} ms<extra></extra>",
                )
            )
    shown = False
    for curve in data.challenger_p99:
        figure.add_trace(
            go.Scatter(
                x=[_t(t) for t in curve.time],
                y=curve.value,
                mode="lines",
                line={"color": "#7f1d1d", "width": 3},
                name="challenger p99, cumulative in phase",
                legendgroup="cumulative",
                showlegend=not shown,
                hovertemplate=f"{_escape(curve.band)}: challenger p99 so far<br>%{{x}}<br>%{{y:.1f}} ms"
                "<extra></extra>",
            )
        )
        shown = True
    if data.latency_limits:
        figure.add_trace(_limit_trace(data.latency_limits))
    decided = [(limit, i) for limit in data.latency_limits for i, r in enumerate(limit.recorded) if r]
    if decided:
        figure.add_trace(_decided_trace(decided))
    check = data.latency_check
    if check is not None and check.p99_ms is not None:
        figure.add_trace(_check_trace(check, data.active_until))
    _backdrop(figure, data)
    figure.update_xaxes(
        type="date",
        title_text="time (UTC)",
        range=_span(data.start, data.active_until),
        hoverformat=HOVER_TIME,
    )
    figure.update_yaxes(title_text="latency (ms, log scale)", **log_axis(_latency_values(data)))
    subtitle = f"per {_width_text(data.bucket_seconds)}; dotted p50, solid p99, dashed the rule's limit"
    if check is not None:
        subtitle = _check_text(check)
    return _style(figure, "Latency p50 / p99", subtitle)


def _check_text(check: LatencyCheck) -> str:
    """`now: challenger p99 2.0 ms, limit 40.1 ms; 0 of 523 calls slower (the rule's count)`."""
    p99 = "-" if check.p99_ms is None else f"{check.p99_ms:.1f} ms"
    if check.limit_ms is None:
        return f"now: challenger p99 {p99} (cumulative in phase); no limit yet (too few champion calls)"
    return (
        f"now: challenger p99 {p99}, limit {check.limit_ms:.1f} ms; "
        f"{check.slow_calls} of {check.calls} calls slower (the rule's count)"
    )


def _check_trace(check: LatencyCheck, now: datetime) -> go.Scatter:
    """The latency rule's look now: the challenger's p99 over the phase's calls, with its slow calls."""
    limit = "no limit yet" if check.limit_ms is None else f"limit {check.limit_ms:.1f} ms"
    slow = (
        ""
        if check.slow_calls is None
        else f"<br>{check.slow_calls} of {check.calls} calls slower than the limit"
    )
    return go.Scatter(
        x=[_t(now)],
        y=[check.p99_ms],
        mode="markers",
        marker={"color": "#7f1d1d", "size": 12, "symbol": "star"},
        name="the rule's look now",
        hovertext=[f"latency rule now: challenger p99 {check.p99_ms:.1f} ms, {limit}{slow}"],
        hovertemplate="%{hovertext}<extra></extra>",
    )


def _latency_values(data: ReportData) -> list[float]:
    values: list[float | None] = []
    for series in data.arms.values():
        values += series.latency_p50 + series.latency_p99
    for limit in data.latency_limits:
        values += limit.limit_ms
    for curve in data.challenger_p99:
        values += curve.value
    if data.latency_check is not None:
        values += [data.latency_check.p99_ms]
    return [v for v in values if v is not None and math.isfinite(v) and v > 0]


def log_axis(values: list[float]) -> dict[str, Any]:
    """A log axis over `values` with round ticks (1, 2, 5, 10 …), never plotly's 3.16 (10^0.5).

    >>> axis = log_axis([1.3, 47.0])
    >>> axis["tickvals"], axis["ticktext"]
    ([1, 2, 5, 10, 20, 50], ['1', '2', '5', '10', '20', '50'])
    >>> log_axis([0.2, 3000.0])["ticktext"]
    ['0.1', '1', '10', '100', '1000', '10000']
    >>> log_axis([])["type"]
    'log'
    """
    if not values:
        return {"type": "log"}
    ticks = log_ticks(min(values), max(values))
    return {
        "type": "log",
        "range": [math.log10(ticks[0]), math.log10(ticks[-1])],
        "tickvals": ticks,
        "ticktext": [f"{tick:g}" for tick in ticks],
    }


def log_ticks(low: float, high: float) -> list[float]:
    """Round values from the largest at or below `low` to the smallest at or above `high`."""
    for mantissas in NICE_MANTISSAS:
        nice = [
            m * 10**k if k >= 0 else m / 10**-k
            for k in range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 1)
            for m in mantissas
        ]
        start = max(n for n in nice if n <= low * (1 + 1e-9))
        end = min(n for n in nice if n >= high * (1 - 1e-9))
        ticks = [n for n in nice if start <= n <= end]
        if len(ticks) <= MAX_LOG_TICKS:
            break
    return ticks


def _limit_text(limits: list[LatencyLimit]) -> str:
    """`p99 limit: 1.5 x champion p99 + 5 ms` (ratios per phase when they differ)."""
    ratios = sorted({limit.ratio for limit in limits})
    ratio = " / ".join(f"{r:g}" for r in ratios)
    per_phase = " (per phase)" if len(ratios) > 1 else ""
    return f"p99 limit: {ratio} x champion p99 + {limits[0].slack_ms:g} ms{per_phase}"


def _limit_trace(limits: list[LatencyLimit]) -> go.Scatter:
    """Each band's limit as a step line (a look at a time applies the value drawn there), gaps between."""
    xs: list[str | None] = []
    ys: list[float | None] = []
    hover: list[str] = []
    for limit in limits:
        for time, baseline, value in zip(limit.time, limit.baseline_ms, limit.limit_ms, strict=True):
            xs.append(_t(time))
            ys.append(value)
            hover.append(_limit_hover(limit, baseline, value))
        xs.append(None)
        ys.append(None)
        hover.append("")
    return go.Scatter(
        x=xs,
        y=ys,
        mode="lines",
        line={"color": LIMIT_COLORS["rollback"], "dash": "dash", "width": 2, "shape": "hv"},
        name=_limit_text(limits),
        hovertext=hover,
        hovertemplate="%{hovertext}<extra></extra>",
    )


def _limit_hover(limit: LatencyLimit, baseline: float | None, value: float | None) -> str:
    if baseline is None or value is None:
        return f"{_escape(limit.band)}: too few champion calls for a limit yet"
    return (
        f"{_escape(limit.band)}: limit {value:.1f} ms<br>= {limit.ratio:g} x champion p99 {baseline:.2f} ms "
        f"(upper bound) + {limit.slack_ms:g} ms slack"
    )


def _decided_trace(points: list[tuple[LatencyLimit, int]]) -> go.Scatter:
    """The limits latency decisions recorded, where they were made."""
    return go.Scatter(
        x=[_t(limit.time[i]) for limit, i in points],
        y=[limit.limit_ms[i] for limit, i in points],
        mode="markers",
        marker={"color": LIMIT_COLORS["rollback"], "size": 11, "symbol": "x"},
        name="limit the decision applied",
        hovertext=[
            "decision: " + _limit_hover(limit, limit.baseline_ms[i], limit.limit_ms[i]) for limit, i in points
        ],
        hovertemplate="%{hovertext}<extra></extra>",
    )


def progress(data: ReportData) -> go.Figure:
    """Labelled samples per phase (as they arrived) toward what the phase needs. One legend entry per
    arm (A/B: users, ramp: labelled requests), one for shadow pairs, one for the requirement lines."""
    figure = go.Figure()
    legend_names = {
        "champion": "champion (A/B users, ramp labelled)",
        "challenger": "challenger (A/B users, ramp labelled)",
        "pairs": "labelled pairs (shadow)",
        "needed": "needed / planned (dashed)",
    }
    shown: set[str] = set()
    drawn: set[tuple[str, str, float]] = set()
    for curve in data.progress:
        group = next((a for a in ARM_COLORS if curve.name.startswith(a)), "pairs")
        color = ARM_COLORS.get(group, PHASE_COLORS["shadow"])
        figure.add_trace(
            go.Scatter(
                x=[_t(t) for t in curve.time],
                y=curve.value,
                mode="lines+text",
                text=_end_label(curve),
                textposition="top left",
                textfont={"color": color, "size": 11},
                line={"shape": "hv", "color": color, "width": 2},
                name=legend_names[group],
                legendgroup=group,
                showlegend=group not in shown,
                hovertemplate=f"{_escape(curve.band)}: {_escape(curve.name)}<br>%{{x}}<br>%{{y:.0f}}"
                "<extra></extra>",
            )
        )
        shown.add(group)
        band = next(b for b in data.bands if b.label == curve.band)
        if curve.limit is None or curve.limit_name is None:
            continue
        key = (curve.band, curve.limit_name, curve.limit)
        if key in drawn:
            continue
        drawn.add(key)
        figure.add_trace(
            go.Scatter(
                x=[_t(band.start), _t(band.end)],
                y=[curve.limit, curve.limit],
                mode="lines",
                line={"color": color, "dash": "dash", "width": 1.5},
                name=legend_names["needed"],
                legendgroup="needed",
                showlegend="needed" not in shown,
                hovertemplate=f"{_escape(curve.band)}: {_escape(curve.limit_name)} {curve.limit:g}"
                "<extra></extra>",
            )
        )
        shown.add("needed")
    _backdrop(figure, data)
    figure.update_xaxes(
        type="date",
        title_text="time (UTC)",
        range=_span(data.start, data.active_until),
        hoverformat=HOVER_TIME,
    )
    counts = [v for curve in data.progress for v in curve.value if v]
    needs = [curve.limit for curve in data.progress if curve.limit]
    if counts and needs and max(needs) > 10 * max(counts):  # a plan far above the counts: log, both read
        figure.update_yaxes(title_text="labelled samples (count, log scale)", **log_axis(counts + needs))
    else:
        figure.update_yaxes(title_text="labelled samples (count)", rangemode="tozero")
    subtitle = "per phase, as labels arrived, with the count reached; dashed: what the phase needs"
    return _style(figure, "Labelled samples vs required", subtitle, height=400)


def _end_label(curve: BandCurve) -> list[str]:
    """The count a curve reached, at its last point, beside what its phase needs: `66 of 438`."""
    last = next((v for v in reversed(curve.value) if v is not None), None)
    labels = [""] * len(curve.value)
    if labels and last is not None:
        labels[-1] = f"{last:,.0f}" + (f" of {curve.limit:,.0f}" if curve.limit else "")
    return labels


def shadow_differences(data: ReportData) -> go.Figure:
    """The distribution of per-request error differences on the same live requests during shadow."""
    assert data.shadow is not None
    return difference_histogram(data.shadow, data.error_unit)


def difference_histogram(comparison: ShadowComparison, error_unit: str) -> go.Figure:
    """Per-request error differences, challenger - champion, on the same labelled live requests (a
    rollout's shadow phase or a shadow set by hand), with zero and the mean marked."""
    edges = comparison.edges
    centres = [(a + b) / 2 for a, b in pairwise(edges)]
    widths = [b - a for a, b in pairwise(edges)]
    figure = go.Figure(
        go.Bar(
            x=centres,
            y=comparison.counts,
            width=widths,
            marker_color=PHASE_COLORS["shadow"],
            opacity=0.75,
            name="requests",
            hovertemplate="difference %{x:.3g}<br>%{y} requests<extra></extra>",
        )
    )
    figure.add_vline(x=0, line_color="#6b7280", line_dash="dot")
    if comparison.diff_mean is not None:
        figure.add_vline(
            x=comparison.diff_mean,
            line_color="#111827",
            line_width=2,
            annotation_text=f"mean {comparison.diff_mean:+.3g}",
            annotation_position="top",
        )
    ratio = f"{comparison.ratio:.3f}" if comparison.ratio is not None else "-"
    subtitle = f"{comparison.n} labelled pairs; ratio {ratio} (tolerance {comparison.tolerance:g})"
    figure.update_xaxes(title_text=f"error difference, challenger - champion ({error_unit})")
    figure.update_yaxes(title_text="requests (count)")
    figure.update_layout(showlegend=False, bargap=0)
    return _style(figure, "Shadow: error difference per request", subtitle, height=340)


def ab_effect(data: ReportData) -> go.Figure:
    """The A/B effect on error with its interval, against zero and the practical margin."""
    result = data.ab
    assert result is not None and result.effect is not None
    effect = result.effect * 100
    low = (result.ci_low if result.ci_low is not None else result.effect) * 100
    high = (result.ci_high if result.ci_high is not None else result.effect) * 100
    margin = -result.margin * 100
    figure = go.Figure(
        go.Scatter(
            x=[effect],
            y=["challenger vs champion"],
            mode="markers",
            marker={"size": 14, "color": ARM_COLORS["challenger"], "symbol": "diamond"},
            error_x={
                "type": "data",
                "symmetric": False,
                "array": [high - effect],
                "arrayminus": [effect - low],
                "thickness": 3,
                "width": 10,
            },
            name="relative change in error with its interval",
            hovertemplate=f"effect {effect:+.2f} %<br>interval {low:+.2f} % to {high:+.2f} %<extra></extra>",
        )
    )
    left = min(low, margin, 0.0)
    right = max(high, 0.0)
    pad = max((right - left) * 0.15, 0.5)
    figure.add_vrect(x0=left - pad, x1=margin, fillcolor="#059669", opacity=0.08, line_width=0, layer="below")
    figure.add_vline(
        x=0,
        line_color="#6b7280",
        line_dash="dot",
        annotation_text="no change",
        annotation_position="top left",
    )
    figure.add_vline(
        x=margin,
        line_color="#059669",
        line_dash="dash",
        annotation_text=f"margin {margin:+.1f} %",
        annotation_position="bottom left",
    )
    p_value = fmt_value(result.p_value)
    state = "verdict" if result.final else "last look (still running)"
    subtitle = f"{state}: {_escape(result.rule)}, p = {p_value}; interval of the relative change"
    figure.update_xaxes(
        title_text="challenger error relative to champion (%)", range=[left - pad, right + pad]
    )
    figure.update_yaxes(showticklabels=False)
    figure.update_layout(showlegend=False)
    return _style(figure, "A/B test: change in error", subtitle, height=280)


def labelled_pairs(points: list[tuple[datetime, int]], since: datetime, needed: int) -> go.Figure:
    """Labelled pairs (both models on the same labelled request) as they became known, at the end of
    each time bucket, against what a rollout's shadow phase needs before it may decide (a shadow set by
    hand: `report.hand_made`)."""
    times = [_t(moment) for moment, _ in points]
    counts = [count for _, count in points]
    color = PHASE_COLORS["shadow"]
    last = counts[-1] if counts else 0
    figure = go.Figure(
        go.Scatter(
            x=times,
            y=counts,
            mode="lines+text",
            text=[""] * (len(counts) - 1) + [f"{last:,} of {needed:,}"],
            textposition="top left",
            textfont={"color": color, "size": 11},
            line={"shape": "hv", "color": color, "width": 2},
            name="labelled pairs",
            hovertemplate="%{x}<br>%{y:.0f} labelled pairs<extra></extra>",
        )
    )
    if times:
        figure.add_trace(
            go.Scatter(
                x=[_t(since), times[-1]],
                y=[needed, needed],
                mode="lines",
                line={"color": color, "dash": "dash", "width": 1.5},
                name="needed (shadow.min_labeled)",
                hovertemplate=f"needed: {needed:,}<extra></extra>",
            )
        )
    figure.update_xaxes(type="date", title_text="time (UTC)", hoverformat=HOVER_TIME)
    figure.update_yaxes(title_text="labelled pairs (count)", rangemode="tozero")
    subtitle = "both models on the same labelled requests, as labels arrived; dashed: what shadow needs"
    return _style(figure, "Labelled pairs vs required", subtitle, height=360)
