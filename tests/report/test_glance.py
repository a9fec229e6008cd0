"""The dashboard's glance of a rollout that ended, and the shared words for one in progress."""

from __future__ import annotations

from datetime import timedelta

from pitstop.events import EventKind
from pitstop.formats import MAX_KEY_NUMBERS, decision_numbers
from pitstop.report import report_data
from pitstop.report.glance import glance
from pitstop.report.words import next_check, verdict
from report.conftest import Story
from report.rollouts import MODEL


def test_an_ended_rollout_says_how_it_ended_and_its_last_decision_with_every_number(story: Story) -> None:
    data = report_data(story.ws, MODEL, story.promoted)
    seen = glance("promoted", (2, None), None, data, None)
    assert seen.verdict == f"{data.words.headline}." and seen.verdict.startswith("Promoted: version 2")
    assert seen.next_check is None and seen.latency is None  # nothing is pending once it has ended
    ending = [e for e in data.events if e.kind is EventKind.ROLLOUT_TRANSITION][-1]
    last = seen.last_decision
    assert last is not None and (last.rule, last.change) == (ending.rule, f"{ending.from_state} → promoted")
    assert last.numbers + last.more_numbers == decision_numbers(ending.data)
    assert len(last.numbers) <= MAX_KEY_NUMBERS
    assert seen.share == "champion v2 serves every user"


def test_an_ended_rollouts_counters_are_its_own_predictions(story: Story) -> None:
    rejected = report_data(story.ws, MODEL, story.rejected)
    counters = {c.name: c for c in glance("rejected", (1, None), None, rejected, None).counters}
    requests = {arm: sum(series.requests) for arm, series in rejected.arms.items()}
    assert counters["predictions"].champion == f"{requests['champion']:,}"
    assert counters["predictions"].challenger == f"{requests['challenger']:,}"
    promoted = report_data(story.ws, MODEL, story.promoted)  # the next rollout counts from zero again
    later = {c.name: c for c in glance("promoted", (2, None), None, promoted, None).counters}
    assert later["predictions"].challenger == f"{sum(promoted.arms['challenger'].requests):,}"
    assert later["predictions"] != counters["predictions"]


def test_a_model_without_a_rollout_says_so() -> None:
    seen = glance("no rollout", (1, None), None, None, None)
    assert (seen.verdict, seen.share, seen.counters) == (
        "No rollout yet.",
        "champion v1 serves every user",
        [],
    )


def test_worse_so_far_when_the_whole_interval_is_above_no_change() -> None:
    worse = {"estimate": 0.12, "low": 0.05, "high": 0.19}
    sentence = verdict({"test": "msprt", "p_value": 0.001, "level": 0.95, "relative": worse}, None)
    assert sentence.startswith("Worse so far: the challenger's error is 12.0% higher")


def test_next_check_names_each_arm_when_they_need_different_counts() -> None:
    progress = {
        "unit": "labelled requests",
        "labelled": {"champion": 150, "challenger": 20},
        "required": {"champion": 150, "challenger": 150},
    }
    words = next_check("ramp", progress, timedelta(hours=2), timedelta(hours=1), {"action": "stay"})
    assert words == "needs 130 more labelled requests on the challenger; now: stay"
