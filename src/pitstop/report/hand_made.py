"""The report of a shadow set by hand (`pitstop report MODEL --shadow`): one self-contained HTML file
with what `pitstop compare` says, in the same words and by the same tests as a rollout's shadow phase.

It shows the verdict so far, what a rollout's shadow phase would now do and why, both sides' live
numbers, the labelled pairs as they arrived against what the phase needs, and the distribution of
per-request error differences, read from the log by the queries a rollout's report uses
(`report.data.paired_comparison`). Nothing is decided or written but the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pitstop import registry
from pitstop.durations import describe_span
from pitstop.formats import fmt_time, fmt_value, short_sha256
from pitstop.losses import Scoring
from pitstop.policies import PolicyChoice, choose
from pitstop.report import shaping
from pitstop.report.data import BandScope, Scope, paired_comparison, scope_rows
from pitstop.report.figures import difference_histogram, labelled_pairs
from pitstop.report.html import chart_html, page, shadow_section, table_html
from pitstop.report.values import Band, ShadowComparison, StatusWords
from pitstop.report.words import shadow_comparison_words
from pitstop.rollout import manual_shadow
from pitstop.rollout.python_losses import prepare_losses

if TYPE_CHECKING:
    from pitstop.context import Context

LABEL = "shadow (set by hand)"


@dataclass(frozen=True)
class HandMadeShadowReport:
    """What the page shows: the live comparison (`pitstop compare`), its words, the paired
    differences, and the labelled pairs known at the end of each time bucket."""

    result: manual_shadow.ShadowComparison
    words: StatusWords
    differences: ShadowComparison
    pairs_over_time: list[tuple[datetime, int]]  # (bucket end, pairs known by then), cumulative
    error_unit: str


def hand_made_shadow_report(ctx: Context, model: str, policy: PolicyChoice = None) -> HandMadeShadowReport:
    """Gather the report of `model`'s shadow set by hand, judged by `policy`'s shadow rules (as
    `rollout start --policy` takes it; default pitstop.yaml's). NotFoundError without such a shadow;
    ConflictError while a rollout runs (its own report covers its shadow)."""
    result = manual_shadow.compare(ctx, model, choose(ctx, policy))
    duration = max((result.now - result.since).total_seconds(), 0.0)
    width = shaping.bucket_width(duration)
    with ctx.reading() as conn:
        info = registry.get_model(conn, model)
        scope = Scope(
            model_id=info.id,
            scoring=Scoring.of(info),
            start=result.since.timestamp(),
            until=result.now.timestamp(),
            width=width,
            count=shaping.bucket_count(duration, width),
            first_version=result.since_routing_version,
            versions=(result.champion_version, result.shadow_version),
        )
        band = Band(LABEL, "shadow", result.since, result.now, 0.0, result.since_routing_version)
        prepare_losses(conn, scope_rows(scope), scope.scoring)
        differences, new_pairs = paired_comparison(
            conn,
            scope,
            BandScope(band, result.since_routing_version, None, scope.until),
            result.policy,
            result.verdict.numbers,
            None,
        )
    known, pairs_over_time = 0, []
    for index, start in enumerate(shaping.bucket_times(result.since, width, scope.count)):
        known += new_pairs.get(index, 0)
        pairs_over_time.append((min(start + timedelta(seconds=width), result.now), known))
    return HandMadeShadowReport(
        result=result,
        words=shadow_comparison_words(result),
        differences=differences,
        pairs_over_time=pairs_over_time,
        error_unit=scope.scoring.loss.unit,
    )


def write_hand_made_shadow_report(ctx: Context, model: str, out: Path, policy: PolicyChoice = None) -> Path:
    """Write the HTML report of `model`'s shadow set by hand to `out` (folders are created)."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_hand_made_shadow_report(hand_made_shadow_report(ctx, model, policy)), "utf-8")
    return path


def render_hand_made_shadow_report(report: HandMadeShadowReport) -> str:
    result, words = report.result, report.words
    would = result.verdict
    meta = (
        f"champion v{result.champion_version} · shadow v{result.shadow_version} set by hand "
        f"{fmt_time(result.since)} (routing version {result.since_routing_version}), "
        f"{describe_span(timedelta(hours=result.elapsed_hours))} ago · judged by the policy from "
        f"{short_sha256(result.policy_source)} · as of {fmt_time(result.now)}"
    )
    verdict = (
        '<section class="card" id="decision"><h2>Verdict so far</h2>'
        f'<p class="headline">{escape(words.verdict)}</p>'
        f'<p class="because">A rollout\'s shadow phase would now: {escape(would.action.value)} '
        f"({escape(would.rule)}): {escape(would.reason)}</p>"
        f'<p class="muted">{escape(words.next_check)}</p>'
        f"{_numbers(would.numbers)}</section>"
    )
    histogram = (
        chart_html("shadow", difference_histogram(report.differences, report.error_unit))
        if report.differences.n
        else ""
    )
    would_now = f"a rollout's shadow phase would now {would.action.value} ({would.rule})"
    needed = result.policy.shadow.min_labeled
    pairs = chart_html("progress", labelled_pairs(report.pairs_over_time, result.since, needed))
    body = "".join(
        [
            verdict,
            _sides(result),
            f'<section class="card" id="progress">{pairs}</section>',
            shadow_section(report.differences, histogram, f"nothing decided (set by hand); {would_now}"),
        ]
    )
    heading = f"{result.model}: shadow v{result.shadow_version} beside champion v{result.champion_version}"
    badge = ("shadow", "set by hand")
    return page(heading, heading, badge, meta, body, result.now, "nothing decided: a shadow set by hand")


def _numbers(numbers: dict[str, Any]) -> str:
    rows = [(name, fmt_value(value)) for name, value in numbers.items() if not isinstance(value, dict)]
    return "<h3>What the rule saw</h3>" + table_html(["number", "value"], rows, (1,)) if rows else ""


def _sides(result: manual_shadow.ShadowComparison) -> str:
    """Both sides' live numbers since the shadow began, as `pitstop compare` prints them."""
    evidence = result.evidence.to_dict()
    headers = ["side", "requests", "failures", "failure rate", "labelled", "error", "p50 ms", "p99 ms"]
    rows = [
        (
            f"{side} v{version}",
            evidence[side]["requests"],
            evidence[side]["failures"],
            _pct(evidence[side]["failure_rate"]),
            evidence[side]["labelled"],
            fmt_value(evidence[side]["error_mean"]),
            fmt_value(evidence[side]["latency_p50"]),
            fmt_value(evidence[side]["latency_p99"]),
        )
        for side, version in (("champion", result.champion_version), ("shadow", result.shadow_version))
    ]
    return (
        '<section class="card" id="sides"><h2>Both sides on live traffic</h2>'
        f"{table_html(headers, rows, range(1, 8))}</section>"
    )


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"
