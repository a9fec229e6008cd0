"""Evidence gathered from a real prediction log (SQLite and PostgreSQL): latency per model call."""

from __future__ import annotations

import statistics
from datetime import timedelta
from typing import Any

import pytest

from pitstop.registry import Task
from pitstop.rollout.evidence import PairedSummary
from pitstop.rollout.gather import Window, arm_summaries, gather_evidence, paired_summary, users_first_seen
from pitstop.rollout.reads import EVERYTHING
from pitstop.serving.labels import Label, upsert_labels
from pitstop.serving.predlog import write_records
from pitstop.store.predictions.write import PredictionRecord
from pitstop.workspace import Workspace
from rollout.conftest import START


def _batch(model_id: int, arm: str, first: int, rows: int, latency_ms: float) -> list[PredictionRecord]:
    """The records of one micro-batch: every row carries its call's time."""
    time = START.timestamp() + 1
    ids = [(f"{arm}-{first + i}", f"u{first + i}") for i in range(rows)]
    return [
        PredictionRecord(model_id, rid, uid, time, 1, arm, "served", 1, "user", 1.0, latency_ms, None)
        for rid, uid in ids
    ]


def test_latency_counts_model_calls_not_rows(rollout_ws: Workspace) -> None:
    model_id = rollout_ws.model("eta").id
    records = []
    for call in range(30):  # 30 calls of 10 rows at 2.0x ms, then one stalled call of 10 rows
        records += _batch(model_id, "challenger", call * 10, 10, 2.0 + call / 1000)
    records += _batch(model_id, "challenger", 300, 10, 80.0)
    write_records(rollout_ws.engine, records)
    window = Window(model_id, Task.REGRESSION, 1, START, START.replace(year=2027))
    with rollout_ws.reading() as conn:
        challenger = arm_summaries(conn, window).arms["served", "challenger"]
    assert challenger.latency_samples == 310
    assert challenger.latency_call_count == 31
    assert challenger.latency_p99 == pytest.approx(80.0, rel=0.021)  # the stall is 10 of 310 rows
    assert challenger.calls_slower_than(50.0) == 1  # but one call
    assert challenger.calls_slower_than(1.0) == 31


def test_the_champions_latency_history_spans_the_rollout_not_the_window(rollout_ws: Workspace) -> None:
    """The latency baseline's sample: every call the champion served since the rollout began, whatever
    routing version (phase, step) it came from; its shadow calls and the challenger's are no part of it."""
    model_id = rollout_ws.model("eta").id

    def call(i: int, routing: int, arm: str, role: str, latency_ms: float) -> PredictionRecord:
        at = START.timestamp() + 60 * i
        return PredictionRecord(
            model_id, f"r{i}", f"u{i}", at, 1, arm, role, routing, "user", 1.0, latency_ms, None
        )

    before = [call(i, 1, "champion", "served", 1.0 + i / 100) for i in range(5)]  # before the rollout
    earlier = [call(i, 2, "champion", "served", 2.0 + i / 100) for i in range(10, 40)]
    now = [call(i, 3, "champion", "served", 3.0 + i / 100) for i in range(40, 50)]
    others = [call(i, 3, "challenger", "served", 9.0 + i / 100) for i in range(50, 60)]
    others += [call(i, 3, "champion", "shadow", 9.0 + i / 100) for i in range(60, 70)]
    write_records(rollout_ws.engine, before + earlier + now + others)
    began = START + timedelta(minutes=10)
    window = Window(model_id, Task.REGRESSION, 3, began, START + timedelta(hours=5), rollout_started_at=began)
    with rollout_ws.reading() as conn:
        evidence = gather_evidence(conn, window, EVERYTHING)
    assert evidence.champion.latency_call_count == 10  # this window's
    assert evidence.champion_calls.latency_call_count == 40  # the rollout's
    assert evidence.champion_calls.latency_p99 == pytest.approx(3.49, rel=0.021)
    assert evidence.champion_calls.calls_slower_than(8.0) == 0


def test_every_role_and_arm_is_summarised_apart_from_one_pass_over_the_window(rollout_ws: Workspace) -> None:
    """Served and shadow rows of both arms share the window; each (role, arm) gets its own numbers,
    the same as computed row by row here, and only served requests without a user count as unbucketed."""
    model_id = rollout_ws.model("eta").id
    time = START.timestamp() + 1
    records, labels = [], []
    for i in range(40):
        arm = "challenger" if i % 4 == 0 else "champion"
        user = None if i % 5 == 0 else f"u{i % 7}"
        failed = i % 9 == 0
        prediction = None if failed else float(i % 6)
        by = "request" if user is None else "user"
        problem = "x" if failed else None
        records += [
            PredictionRecord(
                model_id, f"q{i}", user, time, 1, arm, "served", 1, by, prediction, 2.0, problem
            ),
            PredictionRecord(
                model_id, f"q{i}", user, time, 2, "challenger", "shadow", 1, by, i / 10, 3.0, None
            ),
        ]
        if i % 3:
            labels.append(Label(f"q{i}", float(i % 4)))
    write_records(rollout_ws.engine, records)
    with rollout_ws.writing() as conn:
        upsert_labels(conn, model_id, labels, received_at=START)
    label_of = {label.request_id: label.value for label in labels}
    window = Window(model_id, Task.REGRESSION, 1, START, START.replace(year=2027))
    with rollout_ws.reading() as conn:
        summaries = arm_summaries(conn, window)
    assert set(summaries.arms) == {("served", "champion"), ("served", "challenger"), ("shadow", "challenger")}
    assert summaries.unbucketed_served == sum(r.role == "served" and r.user_id is None for r in records)
    for (role, arm), summary in summaries.arms.items():
        mine = [r for r in records if (r.role, r.arm) == (role, arm)]
        errors = [
            abs(r.prediction - label_of[r.request_id])
            for r in mine
            if r.error is None and r.prediction is not None and r.request_id in label_of
        ]
        assert summary.requests == len(mine)
        assert summary.failures == sum(r.error is not None for r in mine)
        assert summary.units == len({r.user_id or f"request:{r.request_id}" for r in mine})
        assert summary.labelled == len(errors) == summary.moments.request_sum
        assert summary.error_mean == pytest.approx(statistics.fmean(errors))
        assert summary.error_var == pytest.approx(statistics.variance(errors))
        assert summary.latency_samples == len(mine)
        by_user: dict[str, list[float]] = {}
        for r in mine:
            if r.error is None and r.prediction is not None and r.request_id in label_of:
                error = abs(r.prediction - label_of[r.request_id])
                by_user.setdefault(r.user_id or f"request:{r.request_id}", []).append(error)
        means = [statistics.fmean(user) for user in by_user.values()]
        assert summary.moments.mean_sum == pytest.approx(sum(means))
        assert summary.moments.mean_sq_sum == pytest.approx(sum(m * m for m in means))


def _labelled_view(conn: Any, window: Window) -> tuple[dict[tuple[str, str], tuple[Any, ...]], PairedSummary]:
    arms = {
        key: (arm.labelled, arm.error_mean, arm.error_var, arm.moments)
        for key, arm in arm_summaries(conn, window).arms.items()
    }
    return arms, paired_summary(conn, window, with_differences=True)


def test_a_forged_duplicate_request_id_does_not_change_the_evidence_a_label_joins(
    rollout_ws: Workspace,
) -> None:
    """Predict is open and a request_id already logged was accepted again, so an outsider knowing a
    labelled id could add predictions that join its real label and steer a verdict (issue 16, row 5).
    A label binds to the first prediction of its id per role; later ones add no labelled evidence."""
    model_id = rollout_ws.model("eta").id
    time = START.timestamp() + 1
    real, labels = [], []
    for i in range(30):
        user = f"u{i % 6}"
        failed = i % 7 == 0
        real += [
            PredictionRecord(
                model_id,
                f"q{i}",
                user,
                time,
                1,
                "champion",
                "served",
                1,
                "user",
                None if failed else float(i % 5),
                2.0,
                "x" if failed else None,
            ),
            PredictionRecord(
                model_id, f"q{i}", user, time, 2, "challenger", "shadow", 1, "user", i / 10, 3.0, None
            ),
        ]
        labels.append(Label(f"q{i}", float(i % 4)))
    write_records(rollout_ws.engine, real)
    with rollout_ws.writing() as conn:
        upsert_labels(conn, model_id, labels, received_at=START)
    window = Window(model_id, Task.REGRESSION, 1, START, START.replace(year=2027))
    with rollout_ws.reading() as conn:
        before = _labelled_view(conn, window)
    forged = [
        PredictionRecord(model_id, f"q{i}", f"evil{i}", time + 5, v, arm, role, 1, "user", 1000.0, 1.0, None)
        for i in range(30)
        for v, arm, role in (
            (1, "champion", "served"),
            (2, "challenger", "served"),
            (2, "challenger", "shadow"),
        )
    ]
    write_records(rollout_ws.engine, forged)
    with rollout_ws.reading() as conn:
        after_arms, after_paired = _labelled_view(conn, window)
    before_arms, before_paired = before
    assert before_paired.n > 0
    assert after_paired == before_paired
    assert {key: after_arms[key] for key in before_arms} == before_arms
    assert after_arms["served", "challenger"][0] == 0  # forged into an arm: requests, but no labelled ones


def test_paired_evidence_sums_each_users_errors_before_summing_over_users(rollout_ws: Workspace) -> None:
    """The shadow's per-user sums: per user A_i, B_i (champion, challenger error over the user's pairs),
    then K, sum A_i^2, sum B_i^2, sum A_i B_i over users, as computed here row by row; requests without
    a user are their own user, and a failed or unlabelled request is no pair."""
    model_id = rollout_ws.model("eta").id
    time = START.timestamp() + 1
    records, labels = [], []
    for i in range(60):
        user = None if i % 11 == 0 else f"u{i % 7}"
        by = "request" if user is None else "user"
        failed = i % 13 == 0
        guess, problem = (None, "x") if failed else (i / 7, None)
        records += [
            PredictionRecord(model_id, f"p{i}", user, time, 1, "champion", "served", 1, by, i % 5, 2.0, None),
            PredictionRecord(
                model_id, f"p{i}", user, time, 2, "challenger", "shadow", 1, by, guess, 3.0, problem
            ),
        ]
        if i % 4:
            labels.append(Label(f"p{i}", float(i % 3)))
    write_records(rollout_ws.engine, records)
    with rollout_ws.writing() as conn:
        upsert_labels(conn, model_id, labels, received_at=START)
    label_of = {label.request_id: label.value for label in labels}
    sums: dict[str, list[float]] = {}
    for champion, challenger in zip(records[::2], records[1::2], strict=True):
        if challenger.error is not None or champion.request_id not in label_of:
            continue
        assert champion.prediction is not None and challenger.prediction is not None
        value = label_of[champion.request_id]
        unit = champion.user_id or f"request:{champion.request_id}"
        a_b = sums.setdefault(unit, [0.0, 0.0])
        a_b[0] += abs(champion.prediction - value)
        a_b[1] += abs(challenger.prediction - value)
    window = Window(model_id, Task.REGRESSION, 1, START, START.replace(year=2027))
    with rollout_ws.reading() as conn:
        paired = paired_summary(conn, window, with_differences=False)
    assert paired.users == len(sums)
    assert paired.user_champion_sq == pytest.approx(sum(a * a for a, _ in sums.values()))
    assert paired.user_challenger_sq == pytest.approx(sum(b * b for _, b in sums.values()))
    assert paired.user_cross == pytest.approx(sum(a * b for a, b in sums.values()))
    assert paired.champion_mean is not None and paired.n > 0
    assert paired.champion_mean * paired.n == pytest.approx(sum(a for a, _ in sums.values()))


def test_users_are_counted_when_first_seen_over_the_window(rollout_ws: Workspace) -> None:
    """Three users over eight hours, one coming back, and a request without a user (its own user):
    the distinct users first seen by each eighth of the window, as the A/B plan's curve needs them."""
    model_id = rollout_ws.model("eta").id
    start = START.timestamp()
    visits = [("u1", 0.5), ("u2", 2.5), ("u1", 3.5), (None, 4.5), ("u3", 7.5), ("u2", 7.9)]
    records = [
        PredictionRecord(
            model_id,
            f"q{i}",
            user,
            start + hours * 3600,
            1,
            "champion",
            "served",
            1,
            "request" if user is None else "user",
            1.0,
            2.0,
            None,
        )
        for i, (user, hours) in enumerate(visits)
    ]
    shadow = PredictionRecord(
        model_id, "s", "u9", start + 1800, 2, "challenger", "shadow", 1, "user", 1.0, 2.0, None
    )
    write_records(rollout_ws.engine, [*records, shadow])  # a shadow row is nobody's visit
    window = Window(model_id, Task.REGRESSION, 1, START, START + timedelta(hours=8))
    with rollout_ws.reading() as conn:
        seen = users_first_seen(conn, window)
    assert seen == ((1.0, 1), (2.0, 1), (3.0, 2), (4.0, 2), (5.0, 3), (6.0, 3), (7.0, 3), (8.0, 4))


def test_timing_records_give_the_shadows_latency_and_nothing_else(rollout_ws: Workspace) -> None:
    """A sampled shadow request timed as served (role `timing`) repeats the shadow's prediction: the
    evidence takes its latency, and its pairs, errors and counts stay those of the shadow's records."""
    model_id = rollout_ws.model("eta").id

    def record(i: int, role: str, prediction: float, latency_ms: float) -> PredictionRecord:
        version, arm = (1, "champion") if role == "served" else (2, "challenger")
        at = START.timestamp() + 1
        return PredictionRecord(
            model_id, f"t{i}", f"u{i}", at, version, arm, role, 1, "user", prediction, latency_ms, None
        )

    write_records(
        rollout_ws.engine, [record(i, role, 1.0, 2.0) for i in range(40) for role in ("served", "shadow")]
    )
    with rollout_ws.writing() as conn:
        upsert_labels(conn, model_id, [Label(f"t{i}", 0.0) for i in range(40)], received_at=START)
    window = Window(model_id, Task.REGRESSION, 1, START, START.replace(year=2027))
    with rollout_ws.reading() as conn:
        before = gather_evidence(conn, window, EVERYTHING)
    # a different prediction, so a pair or error taken from them would show
    write_records(rollout_ws.engine, [record(i, "timing", 9.0, 40.0 + i) for i in range(0, 40, 2)])
    with rollout_ws.reading() as conn:
        after = gather_evidence(conn, window, EVERYTHING)
    assert after.paired == before.paired and after.shadow == before.shadow
    assert before.shadow_timing.latency_call_count == 0
    assert after.shadow_timing.latency_call_count == 20
    assert after.shadow_timing.latency_p99 == pytest.approx(78.0, rel=0.021)
