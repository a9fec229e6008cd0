"""The prediction log's SQL (`store.predictions`), on real SQLite and PostgreSQL: what each query
counts, on a handful of rows whose answers are worked out by hand."""

from __future__ import annotations

import json
import math

import pytest
from sqlalchemy import ColumnElement, func

from pitstop.store.predictions import labels, latency, losses, series, summaries
from pitstop.store.predictions.rows import TIMING, LogRange, LossInputs
from pitstop.store.predictions.write import PredictionRecord, insert_predictions
from pitstop.workspace import Workspace

MODEL = 7


def absolute(row: LossInputs) -> ColumnElement[float]:
    return func.abs(row.prediction - row.label)


def record(
    request: str,
    *,
    arm: str = "champion",
    role: str = "served",
    user: str | None = None,
    time: float = 100.0,
    prediction: float | None = 1.0,
    latency_ms: float = 10.0,
    error: str | None = None,
    routing: int = 1,
    version: int = 1,
    bucketed_by: str = "user",
    probabilities: str | None = None,
) -> PredictionRecord:
    return PredictionRecord(
        MODEL, request, user, time, version, arm, role, routing, bucketed_by, prediction, latency_ms, error,
        probabilities,
    )  # fmt: skip


def write(ws: Workspace, records: list[PredictionRecord], answers: dict[str, float] | None = None) -> None:
    with ws.writing() as conn:
        insert_predictions(conn, records)
        rows = [labels.LabelRow(MODEL, r, v, 100.0, 150.0) for r, v in (answers or {}).items()]
        if rows:
            labels.upsert_labels(conn, rows)


def test_inserted_records_are_read_back_field_for_field(workspace: Workspace) -> None:
    multiclass = record("m", prediction=2.0, probabilities=json.dumps([0.1, 0.2, 0.7]))
    write(workspace, [record("a", user="u", error="boom", prediction=None), multiclass], {"m": 2.0})
    with workspace.reading() as conn:
        counts = summaries.arm_counts(conn, LogRange(MODEL))
        outputs = [row for chunk in losses.labelled_outputs(conn, LogRange(MODEL), 10) for row in chunk]
    assert counts == [summaries.ArmCounts("served", "champion", 2, 1, 2, 0)]
    assert [(o.prediction, o.probabilities, o.value) for o in outputs] == [(2.0, [0.1, 0.2, 0.7], 2.0)]


def test_a_label_is_replaced_by_a_later_one_for_the_same_request(workspace: Workspace) -> None:
    with workspace.writing() as conn:
        labels.upsert_labels(conn, [labels.LabelRow(MODEL, "a", 1.0, 10.0, 11.0)])
        labels.upsert_labels(conn, [labels.LabelRow(MODEL, "a", 3.0, 12.0, 13.0)])
    with workspace.reading() as conn:
        assert labels.get_labels(conn, MODEL) == {"a": (3.0, 12.0)}


def test_a_range_bounds_routing_versions_times_versions_and_roles(workspace: Workspace) -> None:
    write(
        workspace,
        [
            record("old-routing", routing=1),
            record("in", routing=2, time=50.0),
            record("late", routing=2, time=200.0),
            record("other-version", routing=2, version=9),
            record("next-routing", routing=3),
            record("timed", routing=2, role=TIMING),
        ],
    )
    rows = LogRange(MODEL, skip_role=TIMING, routing_from=2, routing_before=3, time_to=150.0, versions=(1,))
    with workspace.reading() as conn:
        assert [c.requests for c in summaries.arm_counts(conn, rows)] == [1]


def test_arm_counts_count_failures_units_and_requests_bucketed_by_request(workspace: Workspace) -> None:
    write(
        workspace,
        [
            record("a", user="u1"),
            record("b", user="u1", error="boom"),
            record("c", bucketed_by="request"),  # no user: a unit of its own
            record("d", arm="challenger", role="shadow"),
        ],
    )
    with workspace.reading() as conn:
        counts = {(c.role, c.arm): c for c in summaries.arm_counts(conn, LogRange(MODEL))}
    assert counts["served", "champion"] == summaries.ArmCounts("served", "champion", 3, 1, 2, 1)
    assert counts["shadow", "challenger"].requests == 1


def test_error_moments_sum_per_user_then_over_users(workspace: Workspace) -> None:
    write(
        workspace,
        [
            record("a", user="u1", prediction=1.0),
            record("b", user="u1", prediction=3.0),
            record("c", prediction=4.0),
        ],
        {"a": 0.0, "b": 0.0, "c": 0.0},
    )  # errors: u1 1 and 3, request c 4
    with workspace.reading() as conn:
        [moments] = summaries.error_moments(conn, LogRange(MODEL), absolute)
    assert moments.squares == 1 + 9 + 16
    assert (moments.users, moments.error_sum, moments.request_sum) == (2, 8.0, 3.0)
    assert (moments.error_sq_sum, moments.request_sq_sum, moments.cross_sum) == (16 + 16, 4 + 1, 8 + 4)
    assert (moments.mean_sum, moments.mean_sq_sum) == (2 + 4, 4 + 16)


def test_only_a_request_ids_first_prediction_per_role_meets_its_label(workspace: Workspace) -> None:
    write(workspace, [record("a", prediction=1.0), record("a", prediction=5.0)], {"a": 0.0})
    with workspace.reading() as conn:
        [moments] = summaries.error_moments(conn, LogRange(MODEL), absolute)
    assert (moments.request_sum, moments.error_sum) == (1.0, 1.0)


def test_errors_count_only_requests_matured_by_the_given_time(workspace: Workspace) -> None:
    write(workspace, [record("early", time=10.0), record("late", time=90.0)], {"early": 0.0, "late": 0.0})
    with workspace.reading() as conn:
        [moments] = summaries.error_moments(conn, LogRange(MODEL), absolute, matured_before=50.0)
    assert moments.request_sum == 1.0


def test_user_mean_errors_are_one_value_per_user_and_arm(workspace: Workspace) -> None:
    write(
        workspace,
        [
            record("a", user="u", prediction=1.0),
            record("b", user="u", prediction=3.0),
            record("c", arm="challenger"),
        ],
        {"a": 0.0, "b": 0.0, "c": 0.0},
    )
    with workspace.reading() as conn:
        means = summaries.user_mean_errors(conn, LogRange(MODEL, role="served"), absolute)
    assert means == {"champion": (2.0,), "challenger": (1.0,)}


def test_pairs_are_requests_both_arms_predicted_successfully(workspace: Workspace) -> None:
    write(
        workspace,
        [
            record("a", user="u", prediction=1.0, time=1.0),
            record("a", arm="challenger", role="shadow", prediction=4.0, time=1.0),
            record("b", user="u", prediction=2.0, time=2.0),
            record("b", arm="challenger", role="shadow", prediction=1.0, time=2.0),
            record("c", prediction=2.0),
            record("c", arm="challenger", role="shadow", error="boom", prediction=None),
        ],
        {"a": 0.0, "b": 0.0, "c": 0.0},
    )
    with workspace.reading() as conn:
        sums = summaries.paired_sums(conn, LogRange(MODEL), absolute)
        differences = summaries.paired_differences(conn, LogRange(MODEL), absolute)
    assert (sums.n, sums.sum_a, sums.sum_b, sums.sum_d, sums.sum_d2, sums.sum_a2) == (
        2,
        3.0,
        5.0,
        2.0,
        10.0,
        5.0,
    )
    assert (sums.users, sums.user_aa, sums.user_bb, sums.user_ab) == (1, 9.0, 25.0, 15.0)
    assert differences == (3.0, -1.0)


def test_no_pairs_is_an_empty_summary(workspace: Workspace) -> None:
    write(workspace, [record("a")], {"a": 0.0})
    with workspace.reading() as conn:
        assert summaries.paired_sums(conn, LogRange(MODEL), absolute) == summaries.PairedSums()


def test_latency_histogram_counts_rows_and_distinct_calls_per_bucket(workspace: Workspace) -> None:
    width = math.log(1.02)
    write(
        workspace, [record("a", latency_ms=10.0), record("b", latency_ms=10.0), record("c", latency_ms=50.0)]
    )
    with workspace.reading() as conn:
        buckets = latency.latency_histogram(conn, LogRange(MODEL), width)
    expected = {math.floor(math.log(11.0) / width): (2, 1), math.floor(math.log(51.0) / width): (1, 1)}
    assert {b.bucket: (b.rows, b.calls) for b in buckets} == expected


def test_units_first_seen_accumulate_by_each_mark(workspace: Workspace) -> None:
    write(
        workspace,
        [record("a", user="u", time=10.0), record("b", user="u", time=30.0), record("c", time=25.0)],
    )
    with workspace.reading() as conn:
        assert summaries.units_first_seen(conn, LogRange(MODEL), [5.0, 20.0, 40.0]) == (0, 1, 2)


def test_time_series_cells_are_per_time_bucket_routing_version_and_arm(workspace: Workspace) -> None:
    width, buckets = math.log(1.02), series.TimeBuckets(start=0.0, width=10.0)
    write(
        workspace,
        [
            record("a", time=5.0, prediction=2.0),
            record("b", time=15.0, prediction=3.0, latency_ms=10.0),
            record("c", time=16.0, error="boom", prediction=None, latency_ms=10.0, routing=2),
        ],
        {"a": 0.0, "b": 0.0, "c": 0.0},
    )
    rows = LogRange(MODEL)
    with workspace.reading() as conn:
        errors = series.error_cells(conn, rows, absolute, buckets)
        cells = series.latency_cells(conn, rows, width, buckets)
        calls = series.call_cells(conn, rows, width, buckets)
    assert sorted(errors) == [
        series.ErrorCell(0, 1, "champion", 1, 2.0, 4.0),
        series.ErrorCell(1, 1, "champion", 1, 3.0, 9.0),
    ]
    assert sorted((c.bucket, c.routing_version, c.rows, c.failures) for c in cells) == [
        (0, 1, 1, 0),
        (1, 1, 1, 0),
        (1, 2, 1, 1),
    ]
    assert sorted((c.bucket, c.routing_version, c.calls) for c in calls) == [(0, 1, 1), (1, 1, 1), (1, 2, 1)]


def test_known_errors_and_pairs_count_from_the_labels_arrival(workspace: Workspace) -> None:
    buckets = series.TimeBuckets(start=0.0, width=100.0)
    write(
        workspace,
        [
            record("a", user="u", time=10.0, prediction=1.0),
            record("a", arm="challenger", role="shadow", time=10.0, prediction=3.0),
        ],
        {"a": 0.0},
    )  # the label arrives at 150: bucket 1, though the request is in bucket 0
    rows = LogRange(MODEL)
    with workspace.reading() as conn:
        known = series.known_errors(conn, rows, absolute, buckets, until=200.0)
        unknown = series.known_errors(conn, rows, absolute, buckets, until=120.0)
        pairs = series.paired_known(conn, rows, absolute, until=200.0)
        per_bucket = series.pairs_per_bucket(conn, rows, absolute, 200.0, buckets)
        bins = series.difference_bins(conn, rows, absolute, 200.0, low=0.0, step=1.0)
        users = series.new_units(conn, LogRange(MODEL, role="served"), buckets, until=200.0)
    assert sorted(known) == [
        series.KnownErrors(1, "challenger", 1, 3.0, 9.0),
        series.KnownErrors(1, "champion", 1, 1.0, 1.0),
    ]
    assert unknown == []
    assert pairs == series.PairedKnown(1, 1.0, 3.0, 2.0, 4.0, 2.0, 2.0)
    assert (per_bucket, bins, users) == ({1: 1}, {2: 1}, [(1, "champion", 1)])


def test_computed_losses_are_found_by_prediction_id(workspace: Workspace) -> None:
    write(workspace, [record("a", prediction=1.0), record("b", prediction=2.0)], {"a": 0.0, "b": 0.0})
    with workspace.writing() as conn:
        losses.clear_losses(conn)
        outputs = [row for chunk in losses.labelled_outputs(conn, LogRange(MODEL), 1) for row in chunk]
        losses.save_losses(
            conn, [o.id for o in outputs], [o.prediction * 10 for o in outputs if o.prediction]
        )
        [moments] = summaries.error_moments(conn, LogRange(MODEL), lambda row: losses.computed_loss(row.id))
    assert moments.error_sum == 30.0


@pytest.mark.parametrize("prefix, used", [("r1-", 2), ("r2-", 0)])
def test_request_ids_used_counts_distinct_ids_of_a_prefix(
    workspace: Workspace, prefix: str, used: int
) -> None:
    write(
        workspace,
        [record("r1-0"), record("r1-0", arm="challenger", role="shadow"), record("r1-1"), record("t1-0")],
    )
    with workspace.reading() as conn:
        assert summaries.request_ids_used(conn, MODEL, prefix) == used


def test_served_per_arm_leaves_shadow_predictions_out(workspace: Workspace) -> None:
    write(
        workspace, [record("a"), record("b", arm="challenger"), record("a", arm="challenger", role="shadow")]
    )
    with workspace.reading() as conn:
        assert summaries.served_per_arm(conn, MODEL) == {"champion": 1, "challenger": 1}
