"""`report_data` against numbers computed in Python from the same prediction log, on SQLite and PostgreSQL.

The story (see conftest): rollout 1 put a bad challenger in shadow and was rejected; rollout 2 took a good
one through shadow, A/B test and ramp to promotion. Every series is recomputed here from the raw rows.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import and_, select

from pitstop.errors import NotFoundError
from pitstop.events import Event
from pitstop.report import ReportData, report_data
from pitstop.report.shaping import NICE_WIDTHS
from pitstop.report.values import Band
from pitstop.rollout.evidence import LATENCY_BUCKET_RATIO
from pitstop.store.tables import labels, predictions
from pitstop.workspace import Workspace
from report.conftest import Story
from report.rollouts import MODEL

COLUMNS = [
    "request_id",
    "user_id",
    "time",
    "arm",
    "role",
    "routing_version",
    "prediction",
    "error",
    "latency_ms",
    "label",
    "received_at",
]


def log_of(ws: Workspace, data: ReportData) -> pd.DataFrame:
    """Every prediction of the rollout's routing and time, with its label (if any) and bucket."""
    with ws.reading() as conn:
        rows = conn.execute(
            select(
                predictions.c.request_id,
                predictions.c.user_id,
                predictions.c.time,
                predictions.c.arm,
                predictions.c.role,
                predictions.c.routing_version,
                predictions.c.prediction,
                predictions.c.error,
                predictions.c.latency_ms,
                labels.c.value,
                labels.c.received_at,
            ).select_from(
                predictions.outerjoin(
                    labels,
                    and_(
                        labels.c.model_id == predictions.c.model_id,
                        labels.c.request_id == predictions.c.request_id,
                    ),
                )
            )
        ).all()
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame = frame[frame.role != "timing"]  # shadow calls timed as served repeat a shadow record
    start, until = data.start.timestamp(), data.active_until.timestamp()
    first = data.bands[0].routing_version
    frame = frame[(frame.time >= start) & (frame.time <= until) & (frame.routing_version >= first)].copy()
    frame["bucket"] = np.minimum(
        np.floor((frame.time - start) / data.bucket_seconds).astype(int), len(data.times) - 1
    )
    frame["known"] = np.maximum(frame.received_at.fillna(np.inf), frame.time)
    ok = frame.error.isna() & frame.prediction.notna() & frame.label.notna()
    frame["err"] = np.where(ok, (frame.prediction - frame.label).abs(), np.nan)
    return frame


def in_band(frame: pd.DataFrame, data: ReportData, band: Band) -> pd.DataFrame:
    later = [b.routing_version for b in data.bands if b.routing_version > band.routing_version]
    mask = frame.routing_version >= band.routing_version
    if later:
        mask &= frame.routing_version < min(later)
    return frame[mask & (frame.known <= band.end.timestamp())]


def transitions(ws: Workspace, rollout_id: int) -> list[Event]:
    return [e for e in ws.events(MODEL) if e.kind == "rollout_transition" and e.rollout_id == rollout_id]


@pytest.fixture(scope="module")
def promoted(story: Story) -> ReportData:
    return report_data(story.ws, MODEL)


@pytest.fixture(scope="module")
def rejected(story: Story) -> ReportData:
    return report_data(story.ws, MODEL, story.rejected)


def test_the_latest_rollout_is_reported_by_default(story: Story, promoted: ReportData) -> None:
    assert promoted.rollout_id == story.promoted
    assert promoted.outcome == "promoted"
    assert report_data(story.ws, MODEL, story.rejected).rollout_id == story.rejected


def test_bands_follow_the_routing_tables_and_the_transitions(story: Story, promoted: ReportData) -> None:
    assert [b.label for b in promoted.bands] == ["shadow", "ab_test 50%", "ramp 75%", "ramp 100%"]
    events = transitions(story.ws, story.promoted)
    assert [b.start for b in promoted.bands] == [e.time for e in events[:-1]]
    assert [b.rule for b in promoted.bands] == [e.rule for e in events[:-1]]
    assert promoted.active_until == events[-1].time == promoted.bands[-1].end
    # The finest round width that cuts the rollout into at most 100 buckets (its length varies with the
    # rollout's random salt, which decides when the A/B test ends).
    span = (promoted.active_until - promoted.start).total_seconds()
    assert len(promoted.times) <= 100 and promoted.bucket_seconds * len(promoted.times) >= span
    assert all(span / width > 100 for width in NICE_WIDTHS if width < promoted.bucket_seconds)


def test_share_steps_are_the_challengers_share_of_users(promoted: ReportData) -> None:
    # After promotion the challenger version is the champion: it serves everyone.
    assert [p.share for p in promoted.share] == [0.0, 0.5, 0.75, 1.0, 1.0]


def test_every_event_of_the_rollout_is_there(story: Story, promoted: ReportData) -> None:
    kinds = {e.kind for e in promoted.events}
    assert {"rollout_transition", "routing_changed", "alias_moved"} <= kinds
    assert [e.id for e in promoted.events if e.kind == "rollout_transition"] == [
        e.id for e in transitions(story.ws, story.promoted)
    ]


def test_error_series_match_the_log(story: Story, promoted: ReportData) -> None:
    frame = log_of(story.ws, promoted)
    labelled = frame[frame.err.notna()]
    for arm, series in promoted.arms.items():
        groups = labelled[labelled.arm == arm].groupby("bucket").err
        counts, means, sds = groups.count(), groups.mean(), groups.std(ddof=1)
        expected_counts = [int(counts.get(b, 0)) for b in range(len(promoted.times))]
        assert series.labelled == expected_counts
        for b, (mean, se) in enumerate(zip(series.error_mean, series.error_se, strict=True)):
            if expected_counts[b] == 0:
                assert mean is None
                continue
            assert mean == pytest.approx(means[b], rel=1e-9)
            if expected_counts[b] > 1:
                assert se == pytest.approx(sds[b] / math.sqrt(counts[b]), rel=1e-6)
    assert sum(sum(s.labelled) for s in promoted.arms.values()) == len(labelled)


def test_requests_failures_and_latency_quantiles_match_the_log(story: Story, promoted: ReportData) -> None:
    frame = log_of(story.ws, promoted)
    for arm, series in promoted.arms.items():
        mine = frame[frame.arm == arm]
        assert series.requests == [int((mine.bucket == b).sum()) for b in range(len(promoted.times))]
        assert series.failures == [
            int(((mine.bucket == b) & mine.error.notna()).sum()) for b in range(len(promoted.times))
        ]
        for b, (p50, p99) in enumerate(zip(series.latency_p50, series.latency_p99, strict=True)):
            values = np.sort(mine[mine.bucket == b].latency_ms.to_numpy())
            if not len(values):
                assert p50 is None and p99 is None
                continue
            for q, reported in ((0.5, p50), (0.99, p99)):
                exact = values[math.ceil(q * len(values)) - 1]  # the nearest-rank quantile
                # the upper edge of its 2 %-wide log bucket: never below it, at most 2 % above (in 1 + x)
                assert exact <= reported <= (1 + exact) * LATENCY_BUCKET_RATIO - 1 + 1e-9


def test_shadow_pairs_as_the_controller_saw_them(story: Story, promoted: ReportData) -> None:
    frame = log_of(story.ws, promoted)
    band = promoted.bands[0]
    rows = in_band(frame, promoted, band)
    rows = rows[rows.err.notna()]
    wide = rows.pivot_table(index="request_id", columns="arm", values="err", aggfunc="first").dropna()
    differences = wide.challenger - wide.champion
    shadow = promoted.shadow
    assert shadow is not None
    assert shadow.n == len(differences)
    assert shadow.diff_mean == pytest.approx(differences.mean(), rel=1e-9)
    assert shadow.ratio == pytest.approx(wide.challenger.mean() / wide.champion.mean(), rel=1e-9)
    assert sum(shadow.counts) == shadow.n and len(shadow.edges) == len(shadow.counts) + 1
    recorded = transitions(story.ws, story.promoted)[1]
    assert (shadow.rule, shadow.reason) == (recorded.rule, recorded.reason)
    # Labels are counted by arrival up to the decision, so the report saw at least what the rule saw.
    assert shadow.n >= recorded.data["labelled_pairs"]
    assert shadow.test == recorded.data["test"]


def test_progress_counts_toward_what_each_phase_needs(story: Story, promoted: ReportData) -> None:
    frame = log_of(story.ws, promoted)
    labelled = frame[frame.err.notna()]
    plan = promoted.rollout["plan"]
    curves = {(c.band, c.name): c for c in promoted.progress}
    assert set(curves) == {
        ("shadow", "labelled pairs"),
        ("ab_test 50%", "champion users"),
        ("ab_test 50%", "challenger users"),
        ("ramp 75%", "champion labelled"),
        ("ramp 75%", "challenger labelled"),
        ("ramp 100%", "champion labelled"),
        ("ramp 100%", "challenger labelled"),
    }
    assert curves["shadow", "labelled pairs"].value[-1] == promoted.shadow.n  # type: ignore[union-attr]
    assert curves["shadow", "labelled pairs"].limit == 60
    ab = in_band(labelled, promoted, promoted.bands[1])
    for arm in ("champion", "challenger"):
        curve = curves["ab_test 50%", f"{arm} users"]
        served = ab[(ab.arm == arm) & (ab.role == "served")]
        assert curve.value[-1] == served.user_id.nunique()
        assert curve.limit == plan[f"n_{arm}"]
    for band in promoted.bands[2:]:
        rows = in_band(labelled, promoted, band)
        for arm in ("champion", "challenger"):
            curve = curves[band.label, f"{arm} labelled"]
            assert curve.value[-1] == (rows.arm == arm).sum()
            assert curve.limit == 30
    for curve in promoted.progress:
        values = [v for v in curve.value if v is not None]
        assert values == sorted(values) and values[0] == 0


def test_error_ratio_accumulates_within_each_phase(story: Story, promoted: ReportData) -> None:
    frame = log_of(story.ws, promoted)
    labelled = frame[frame.err.notna()]
    limits = {"shadow": ("shadow tolerance", 1.05), "ab_test": ("rollback", 1.15), "ramp": ("rollback", 1.15)}
    for band, curve in zip(promoted.bands, promoted.ratios, strict=True):
        rows = in_band(labelled, promoted, band)
        means = rows.groupby("arm").err.mean()
        assert curve.value[-1] == pytest.approx(means["challenger"] / means["champion"], rel=1e-9)
        assert (curve.limit_name, curve.limit) == limits[band.phase]


def test_ab_result_is_the_recorded_verdict(story: Story, promoted: ReportData) -> None:
    recorded = transitions(story.ws, story.promoted)[2]
    look = recorded.data["sequential"]
    ab = promoted.ab
    assert ab is not None and ab.final
    assert (ab.rule, ab.reason, ab.time) == (recorded.rule, recorded.reason, recorded.time)
    baseline = look["details"]["mean_champion"]
    assert ab.effect == pytest.approx(look["estimate"] / baseline)
    assert (ab.ci_low, ab.ci_high) == pytest.approx((look["ci_low"] / baseline, look["ci_high"] / baseline))
    assert ab.p_value == look["p_value"] and ab.margin == 0.01
    assert ab.srm == recorded.data["srm"]


def test_thresholds_come_from_the_stored_policy_and_plan(promoted: ReportData) -> None:
    t = promoted.thresholds
    plan = promoted.rollout["plan"]
    assert (t.shadow_tolerance, t.rollback_error_ratio, t.rollback_p99_ratio) == (1.05, 1.15, 1000)
    assert t.latency_slack_ms == 5.0  # the guardrails' default slack, added to every p99 limit
    assert t.ab_required == {"champion": plan["n_champion"], "challenger": plan["n_challenger"]}


def test_decision_in_words_is_the_recorded_rule_reason_and_numbers(
    story: Story, promoted: ReportData
) -> None:
    final = transitions(story.ws, story.promoted)[-1]
    words = promoted.words
    assert words.headline.startswith("Promoted: version 2 replaced version 1")
    assert final.rule is not None and final.reason is not None
    assert final.rule in words.because and final.reason in words.because
    assert ("share", "1") in words.numbers
    assert len(words.path) == len(transitions(story.ws, story.promoted))


def test_rejected_rollout_says_why_in_its_words(story: Story, rejected: ReportData) -> None:
    final = transitions(story.ws, story.rejected)[-1]
    assert [b.label for b in rejected.bands] == ["shadow"]
    assert rejected.words.headline.startswith("Rejected in shadow")
    assert "shadow.error_ratio" in rejected.words.because and str(final.reason) in rejected.words.because
    assert rejected.ab is None
    assert rejected.shadow is not None and rejected.shadow.rule == "shadow.error_ratio"
    assert [p.share for p in rejected.share] == [0.0, 0.0]


def test_report_data_is_plain_json(promoted: ReportData) -> None:
    text = json.dumps(promoted.to_dict(), allow_nan=False)
    back: dict[str, Any] = json.loads(text)
    assert back["rollout"]["outcome"] == "promoted"
    assert len(back["arms"]["challenger"]["error_mean"]) == len(back["times"])


def test_a_model_without_rollouts_is_a_clear_not_found(workspace: Workspace) -> None:
    workspace.create_model("fresh", task="regression", target="y", features="all", id_columns=["user_id"])
    with pytest.raises(NotFoundError, match="no rollout to report on yet"):
        report_data(workspace, "fresh")
    with pytest.raises(NotFoundError, match="model 'fresh' has no rollout 99; it has none yet"):
        report_data(workspace, "fresh", 99)
