"""The report as one self-contained HTML file (plotly.js, styles and data inline: it opens offline), and
the dashboard's page shell (which loads plotly.js from the gateway itself).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import cache
from html import escape
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import plotly.io as pio

from pitstop import __version__
from pitstop.formats import fmt_time, fmt_value
from pitstop.report.data import report_data
from pitstop.report.figures import build_figures
from pitstop.report.values import ReportData, ShadowComparison

if TYPE_CHECKING:
    from pitstop.context import Context
    from pitstop.records.gate_result import Check

PLOT_CONFIG = {"responsive": True, "displaylogo": False}
CHARTS = ("timeline", "share", "errors", "latency", "progress")  # each in a section of its own


def write_report(ws: Context, model: str, out: Path, rollout_id: int | None = None) -> Path:
    """Write the HTML report of a rollout of `model` (default: the latest) to `out`; returns its path.

    Raises NotFoundError when the model has no rollout (or `rollout_id` is not one of its rollouts).
    """
    return write_html(report_data(ws, model, rollout_id), out)


def write_html(data: ReportData, out: Path) -> Path:
    """Write an already gathered report to `out` (folders are created)."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(data), encoding="utf-8")
    return path


# plotly.js's basic bundle (scatter, bar and pie traces: all the report and the dashboard draw), as
# published on npm (plotly.js-basic-dist-min, MIT), at the version of plotly.js the installed plotly
# package writes figures for. 1.2 MB against the full bundle's 4.8 MB: a report weighs about a quarter.
PLOTLY_JS = "plotly-basic.min.js"


@cache
def asset(name: str) -> str:
    """A file shipped with this package (`style.css`, `dashboard.js`, `plotly-basic.min.js`)."""
    return resources.files("pitstop.report").joinpath(name).read_text(encoding="utf-8")


def plotly_js_path() -> Path:
    """plotly.js as the dashboard loads it: the file the report inlines."""
    return Path(str(resources.files("pitstop.report").joinpath(PLOTLY_JS)))


def _e(value: Any) -> str:
    return escape(str(value))


def table_html(headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Sequence[int] = ()) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{_e(cell)}</td>' if i in numeric else f"<td>{_e(cell)}</td>"
            for i, cell in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f'<div class="scroll"><table><tr>{head}</tr>{"".join(body)}</table></div>'


def _pct(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value * 100:+.{digits}f} %"


def chart_html(name: str, figure: Any) -> str:
    div = pio.to_html(
        figure, full_html=False, include_plotlyjs=False, div_id=f"fig-{name}", config=PLOT_CONFIG
    )
    return f'<div class="chart" data-chart="{_e(name)}">{div}</div>'


def _decision(data: ReportData) -> str:
    words = data.words
    numbers = table_html(["number", "value"], words.numbers) if words.numbers else ""
    path = "".join(f"<li>{_e(line)}</li>" for line in words.path)
    return (
        '<section class="card" id="decision"><h2>Decision</h2>'
        f'<p class="headline">{_e(words.headline)}</p><p class="because">{_e(words.because)}</p>'
        f"{'<h3>What the rule saw</h3>' + numbers if numbers else ''}"
        f'<h3>Path</h3><ol class="path">{path}</ol></section>'
    )


def _summaries(data: ReportData) -> str:
    rows = [
        (
            s.band,
            s.arm,
            s.requests,
            s.failures,
            s.labelled,
            fmt_value(s.error_mean),
            fmt_value(None if s.error_se is None else 1.96 * s.error_se),
            fmt_value(s.latency_p50),
            fmt_value(s.latency_p99),
        )
        for s in data.summaries
    ]
    headers = ["phase", "arm", "requests", "failures", "labelled", "mean error", "± 95 %", "p50 ms", "p99 ms"]
    note = (
        '<p class="muted">Labelled requests count as they were known by the end of each phase (label '
        "arrival), as the controller saw them; latency quantiles from a 2 %-wide log histogram.</p>"
    )
    table = table_html(headers, rows, range(2, 9))
    return f'<section class="card" id="phases"><h2>Per phase</h2>{table}{note}</section>'


def _gate_check_result(check: Check) -> str:
    if check.skipped:
        return "skipped"
    if check.passed:
        return "passed"
    return "held for review" if check.review else "failed"


def _gate(data: ReportData) -> str:
    gate = data.gate
    if gate is None:
        note = data.gate_note or "no offline gate result is stored for this version"
        return (
            '<section class="card" id="gate"><h2>Offline gate</h2>'
            f'<p class="because">{_e(note)}</p></section>'
        )
    verdict = "passed" if gate.passed else "failed"
    checks = table_html(
        ["check", "result", "observed", "threshold", "detail"],
        [
            (c.name, _gate_check_result(c), fmt_value(c.observed), fmt_value(c.threshold), c.detail)
            for c in gate.checks
        ],
    )
    metrics = gate.metrics
    names = sorted({key for side in metrics.values() if side for key in side})
    metric_rows = [
        (
            name,
            fmt_value((metrics.get("champion") or {}).get(name)),
            fmt_value((metrics.get("challenger") or {}).get(name)),
        )
        for name in names
    ]
    facts = [
        f"test set {gate.test_set.name} v{gate.test_set.version}",
        f"{gate.test_set.rows} rows",
        f"evaluated {gate.evaluated_at.isoformat()}",
    ]
    if gate.decided_by:
        facts.append(f"decided by {gate.decided_by}")
    if gate.accepted:
        facts.append(f"held for review, accepted by {gate.accepted.actor}: {gate.accepted.reason}")
    if data.gate_note:
        facts.append(data.gate_note)
    sides = [
        "metric",
        f"champion v{data.rollout['champion_version']}",
        f"challenger v{data.rollout['challenger_version']}",
    ]
    badge = "good" if verdict == "passed" else "bad"
    return (
        f'<section class="card" id="gate"><h2>Offline gate: <span class="badge {badge}">{verdict}</span></h2>'
        f'<p class="because">{_e("; ".join(facts))}</p>{checks}'
        f"<h3>Metrics on the test set</h3>{table_html(sides, metric_rows, (1, 2))}</section>"
    )


def shadow_section(shadow: ShadowComparison | None, figure_html: str, running: str) -> str:
    """The paired comparison of a shadow: its verdict (or `running` while there is none), the
    differences' histogram and the numbers the rule used."""
    if shadow is None:
        return ""
    test = shadow.test or {}
    rows = [
        ("labelled pairs (same requests)", shadow.n),
        ("champion mean error", fmt_value(shadow.champion_mean)),
        ("challenger mean error", fmt_value(shadow.challenger_mean)),
        ("ratio challenger / champion", fmt_value(shadow.ratio)),
        ("tolerance", fmt_value(shadow.tolerance)),
        ("mean difference ± sd", f"{fmt_value(shadow.diff_mean)} ± {fmt_value(shadow.diff_sd)}"),
    ]
    if test:
        rows.append((f"{test.get('method', 'test')} p-value", fmt_value(test.get("p_value"))))
        rows.append(
            ("difference interval", f"{fmt_value(test.get('ci_low'))} to {fmt_value(test.get('ci_high'))}")
        )
    verdict = (
        f'<p class="because">verdict: rule {_e(shadow.rule)}: {_e(shadow.reason)}</p>'
        if shadow.rule
        else f'<p class="because">{_e(running)}</p>'
    )
    return (
        '<section class="card" id="shadow"><h2>Shadow: paired comparison</h2>'
        f"{verdict}{figure_html}{table_html(['', 'value'], rows, (1,))}</section>"
    )


def _ab(data: ReportData, figure_html: str) -> str:
    ab = data.ab
    if ab is None:
        return ""
    srm = ab.srm or {}
    units, labelled = ab.units, ab.labelled
    mismatch = "-" if not srm else f"{fmt_value(srm.get('mismatch'))} (p = {fmt_value(srm.get('p_value'))})"
    rows = [
        ("method", ab.method),
        ("relative change in error", _pct(ab.effect)),
        ("interval", f"{_pct(ab.ci_low)} to {_pct(ab.ci_high)}"),
        ("p-value", fmt_value(ab.p_value)),
        ("margin (must beat)", _pct(-ab.margin)),
        ("alpha", fmt_value(ab.alpha)),
        ("users champion / challenger", f"{units.get('champion', '-')} / {units.get('challenger', '-')}"),
        (
            "labelled champion / challenger",
            f"{labelled.get('champion', '-')} / {labelled.get('challenger', '-')}",
        ),
        ("sample-ratio mismatch", mismatch),
    ]
    plan = (data.rollout.get("plan") or {}).get("summary")
    state = "verdict" if ab.final else "last look (the test is still running)"
    planned = f'<p class="muted">{_e(plan)}</p>' if plan else ""
    return (
        '<section class="card" id="ab"><h2>A/B test</h2>'
        f'<p class="because">{_e(state)} at {_e(fmt_time(ab.time))}: rule {_e(ab.rule)}: {_e(ab.reason)}</p>'
        f"{planned}{figure_html}{table_html(['', 'value'], rows, (1,))}</section>"
    )


def _failures(data: ReportData) -> str:
    """A challenger gateways cannot load, and the failed calls' messages, most frequent first."""
    errors = data.errors
    if not data.unavailable and not errors.messages:
        return ""
    lines = "".join(f'<p class="problem">{_e(line)}</p>' for line in data.unavailable)
    rows = [
        (f"v{m.version}", m.role, m.count, fmt_time(m.first_seen), fmt_time(m.last_seen), m.error)
        for m in errors.messages
    ]
    headers = ["version", "role", "calls", "first seen", "last seen", "error"]
    table = table_html(headers, rows, (2,)) if rows else ""
    more = f'<p class="muted">and {errors.more} other error messages</p>' if errors.more else ""
    return f'<section class="card" id="failures"><h2>Failures</h2>{lines}{table}{more}</section>'


def _events(data: ReportData) -> str:
    rows = [
        (
            fmt_time(e.time),
            e.kind,
            e.actor,
            f"{e.from_state or '-'} → {e.to_state or '-'}",
            e.rule or "-",
            e.reason or "",
        )
        for e in data.events
    ]
    return (
        '<section class="card" id="events"><h2>Events</h2>'
        f"{table_html(['time', 'event', 'actor', 'from → to', 'rule', 'reason'], rows)}</section>"
    )


def render_report(data: ReportData) -> str:
    """The whole report page: header, decision, charts, tables; plotly.js inline once."""
    figures = build_figures(data)
    charts = {name: chart_html(name, figure) for name, figure in figures.items()}
    rollout = data.rollout
    outcome = data.outcome or "in progress"
    badge = data.outcome or str(rollout.get("phase"))
    meta = (
        f"champion v{rollout['champion_version']} · challenger v{rollout['challenger_version']} · "
        f"started {fmt_time(data.start)} by {rollout.get('started_by')} · "
        f"policy from {rollout.get('policy_source')} · "
        + (f"ended {fmt_time(data.end)}" if data.outcome else f"as of {fmt_time(data.end)}")
    )
    sections = [
        f'<section class="card" id="{name}">{charts[name]}</section>' for name in CHARTS if name in charts
    ]
    body = "".join(
        [
            _decision(data),
            _failures(data),
            *sections,
            _summaries(data),
            _gate(data),
            shadow_section(data.shadow, charts.get("shadow", ""), "shadow is still running"),
            _ab(data, charts.get("ab", "")),
            _events(data),
        ]
    )
    heading = f"{data.model}: rollout {data.rollout_id}"
    footer = f"time buckets of {data.bucket_seconds:g} s"
    return page(f"{heading} ({outcome})", heading, (badge, outcome), meta, body, data.generated_at, footer)


def page(
    title: str,
    heading: str,
    badge: tuple[str, str],
    meta: str,
    body: str,
    generated_at: datetime,
    footer: str,
) -> str:
    """A self-contained report page: styles and plotly.js inline, so it opens offline. `badge` is (its
    style class, its text); the text is also the body's `data-outcome`, which the browser tests read."""
    style, text = badge
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>pitstop · {_e(title)}</title><link rel="icon" href="data:,">'
        f"<style>{asset('style.css')}</style>"
        f'<script type="text/javascript">{asset(PLOTLY_JS)}</script></head>'
        f'<body data-outcome="{_e(text)}"><header class="top"><h1>{_e(heading)}</h1>'
        f'<span class="badge {_e(style)}" id="outcome">{_e(text)}</span>'
        f'<span class="meta">{_e(meta)}</span></header><main>{body}</main>'
        f"<footer>pitstop {__version__} · generated {_e(fmt_time(generated_at))} · {_e(footer)} · "
        "self-contained: opens offline</footer></body></html>"
    )


def render_dashboard(every_seconds: float) -> str:
    """The dashboard page: a shell that loads plotly.js from the gateway and polls `v1/dashboard`."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<title>pitstop dashboard</title><link rel="icon" href="data:,">'
        f"<style>{asset('style.css')}</style>"
        '<script src="static/plotly.min.js"></script></head>'
        f'<body data-every="{every_seconds:g}"><header class="top"><h1>pitstop</h1>'
        '<span class="badge" id="ready">…</span><span class="meta" id="updated">loading…</span></header>'
        '<main><p class="muted" id="empty"></p><div id="models" class="models"></div>'
        '<section class="card" id="gateways"><h2>Gateways</h2></section>'
        '<section class="card" id="health"><h2>Gateway health (this process)</h2></section></main>'
        "<footer>read-only view of this gateway and its store; refreshes every "
        f"{every_seconds:g} s</footer><script>{asset('dashboard.js')}</script></body></html>"
    )
