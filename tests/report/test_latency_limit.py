"""The report's p99 limit is the limit the latency rule applies: ratio x the champion's baseline (an
always-valid upper bound of its p99 over the calls it served since the rollout began) + slack, and at a
latency decision the limit it recorded.

A challenger that sleeps on every call passes shadow (its latency limit there is wide) and is rolled back
by the latency guardrail in its A/B test, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import joblib
import pytest

from pitstop import registry
from pitstop.events import Event
from pitstop.report import ReportData, report_data, shaping
from pitstop.report.figures import build_figures
from pitstop.report.values import LatencyLimit
from pitstop.rollout.evidence import LATENCY_BUCKET_RATIO
from pitstop.rollout.gather import Window, gather_evidence
from pitstop.rollout.guardrails import latency_baseline
from pitstop.rollout.reads import EVERYTHING
from pitstop.workspace import Workspace
from report.conftest import Story, fresh_store
from report.rollouts import MODEL, SHORT_POLICY, rollout_workspace, send_traffic
from serving.fake_models import SlowModel

DELAY = 0.05  # seconds per challenger call: far above 1.5 x any champion p99 + 5 ms on a busy machine
# Wide in shadow (so it passes), the default 1.5 x (and 5 ms slack) from the A/B test on. A p99 bound
# valid at every look needs ~550 champion calls at the default guardrails.alpha; a lenient alpha lets
# this short test's fewer calls bound it. A quarter of the requests are scored in shadow: enough for
# shadow's 60 labelled pairs, and the sleeping shadow calls no longer take most of the setup.
LATENCY_POLICY = (
    SHORT_POLICY.replace("max_p99_ratio: 1000}\nramp", "max_p99_ratio: 1.5, alpha: 0.9}\nramp")
    .replace("min_users_per_arm: 20}", "min_users_per_arm: 20, start_unwinnable: true}")
    .replace("serving: {", "serving: {shadow_sample: 0.25, ")
)  # an equally accurate challenger cannot win its A/B test: started anyway, for the latency rule to act


@dataclass
class SlowRollout:
    ws: Workspace
    data: ReportData
    decision: Event  # the transition that ended the rollout


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def slow_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from fresh_store(request, tmp_path_factory, "slow-store", prefix="lat")


@pytest.fixture(scope="module")
def slow(slow_store: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlowRollout]:
    """v4 (v1, sleeping `DELAY` per call) through shadow into its A/B test, where latency rolls it back."""
    scratch = tmp_path_factory.mktemp("slow")
    ws = rollout_workspace(scratch / "ws", scratch, slow_store, policy=LATENCY_POLICY)
    artifact = scratch / "slow.joblib"
    joblib.dump(SlowModel(ws.load(MODEL, 1), DELAY), artifact)  # as good as the champion: no early win
    version = ws.register(MODEL, artifact, train_data="train").version
    rollout = ws.start_rollout(MODEL, version, skip_gate=True, reason="a slow model on purpose").state.id
    send_traffic(ws, hours=3, requests=2000)
    moves = [e for e in ws.events(MODEL) if e.kind == "rollout_transition" and e.rollout_id == rollout]
    yield SlowRollout(ws, report_data(ws, MODEL, rollout), moves[-1])
    ws.close()


def band_limit(data: ReportData, decision: Event) -> LatencyLimit:
    """The limit of the band the decision ended."""
    (band,) = [b for b in data.bands if b.start < decision.time <= b.end]
    (limit,) = [limit for limit in data.latency_limits if limit.band == band.label]
    return limit


def rule_limit(
    ws: Workspace, routing_version: int, since: datetime, now: datetime, began: datetime
) -> float | None:
    """The limit the A/B test's latency rule would apply at `now`: from the controller's own evidence."""
    with ws.reading() as conn:
        info = registry.get_model(conn, MODEL)
        window = Window(info.id, info.task, routing_version, since, now, rollout_started_at=began)
        evidence = gather_evidence(conn, window, EVERYTHING)
    baseline = latency_baseline(evidence.champion_calls, ws.config)
    if not baseline:
        return None
    policy = ws.config.guardrails
    return policy.max_p99_ratio * baseline + policy.latency_slack.total_seconds() * 1000


def test_the_slow_challenger_is_rolled_back_by_the_latency_guardrail(slow: SlowRollout) -> None:
    assert (slow.decision.to_state, slow.decision.rule) == ("rolled_back", "guardrail.latency_p99")
    assert slow.data.outcome == "rolled_back"


def test_limit_at_the_rollback_is_the_limit_the_rule_applied(slow: SlowRollout) -> None:
    numbers = slow.decision.data
    limit = band_limit(slow.data, slow.decision)
    assert (limit.ratio, limit.slack_ms) == (1.5, 5.0)
    assert slow.data.thresholds.latency_slack_ms == 5.0
    assert limit.time[-1] == slow.decision.time and limit.recorded[-1]
    assert limit.limit_ms[-1] == numbers["limit_ms"]
    assert limit.baseline_ms[-1] == pytest.approx(numbers["champion_p99_ms"])
    assert numbers["limit_ms"] == pytest.approx(1.5 * numbers["champion_p99_ms"] + 5.0)  # slack included


def test_limit_before_the_rollback_is_the_rules_limit_at_each_look(slow: SlowRollout) -> None:
    limit = band_limit(slow.data, slow.decision)
    (band,) = [b for b in slow.data.bands if b.label == limit.band]
    points = zip(limit.time, limit.limit_ms, limit.recorded, strict=True)
    looks = [(time, value) for time, value, recorded in points if not recorded]
    # Each look before the rollback draws the limit the rule would have applied then (none while the
    # rollout's champion calls are too few for a bound valid at every look).
    assert looks
    began = slow.data.bands[0].start
    for time, value in looks:
        expected = rule_limit(slow.ws, band.routing_version, band.start, time, began)
        assert value == (None if expected is None else pytest.approx(expected)), time


def test_latency_chart_draws_the_limit_and_marks_the_decisions(slow: SlowRollout) -> None:
    traces = {trace.name: trace for trace in build_figures(slow.data)["latency"].data}
    line = traces["p99 limit: 1.5 / 1000 x champion p99 + 5 ms (per phase)"]
    assert slow.decision.data["limit_ms"] in line.y
    marked = traces["limit the decision applied"]
    assert list(marked.y) == [slow.decision.data["limit_ms"]]


def test_limit_at_a_full_ramp_is_the_baseline_of_the_calls_before_it(story: Story) -> None:
    """The champion serves nobody at 100 %: the limit there is the bound of the calls it served before."""
    data = report_data(story.ws, MODEL, story.promoted)
    (full,) = [limit for limit in data.latency_limits if limit.band == "ramp 100%"]
    before = [b for limit in data.latency_limits if limit.band != "ramp 100%" for b in limit.baseline_ms]
    assert set(full.baseline_ms) == {before[-1]}
    (band,) = [b for b in data.bands if b.label == "ramp 100%"]
    index = shaping_index(7.0)
    top = math.expm1((index + 1) * math.log(LATENCY_BUCKET_RATIO))  # the 7 ms bucket's upper edge
    drawn = shaping.latency_limit(band, {}, [], 1000, 5.0, alpha=0.005, earlier={index: 5000})
    assert drawn.baseline_ms == [pytest.approx(top)] * 2
    assert drawn.limit_ms == [pytest.approx(1000 * top + 5.0)] * 2


def shaping_index(ms: float) -> int:
    """The latency bucket index of a call of `ms` milliseconds (2 %-wide buckets of log(1 + ms))."""
    return math.floor(math.log1p(ms) / math.log(LATENCY_BUCKET_RATIO))
