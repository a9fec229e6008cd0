"""Evidence counts a label only once its request is older than `ab_test.label_maturation`, in the
A/B test and the ramp alike: early labels are the short-delay ones, so counting them biases both."""

from __future__ import annotations

from datetime import timedelta

from pitstop.rollout.controller import read_evidence
from pitstop.rollout.phases import Phase
from pitstop.serving.labels import Label, upsert_labels
from pitstop.serving.predlog import write_records
from pitstop.store.predictions.write import PredictionRecord
from pitstop.workspace import Workspace


def _labelled_requests(ws: Workspace, routing_version: int, ages: list[timedelta]) -> None:
    """One served request per arm at each age before now, each with a label already in."""
    model_id, now = ws.model("eta").id, ws.clock.now()
    records, labels = [], []
    for arm in ("champion", "challenger"):
        for i, age in enumerate(ages):
            rid = f"{arm}-{i}"
            when = (now - age).timestamp()
            version = 1 if arm == "champion" else 2
            records.append(
                PredictionRecord(
                    model_id,
                    rid,
                    f"u-{rid}",
                    when,
                    version,
                    arm,
                    "served",
                    routing_version,
                    "user",
                    10.0,
                    2.0,
                    None,
                )
            )
            labels.append(Label(rid, 10.0 + i))
    write_records(ws.engine, records)
    with ws.writing() as conn:
        upsert_labels(conn, model_id, labels, received_at=now)


def test_the_ramp_counts_only_labels_past_the_maturation_window_as_the_ab_test_does(
    rollout_ws: Workspace,
) -> None:
    rollout_ws.start_rollout("eta", 2, skip_gate=True, reason="test")
    rollout_ws.promote("eta", reason="to the A/B test")
    stored = rollout_ws.promote("eta", reason="to the ramp")
    assert stored.state.phase is Phase.RAMP
    rollout_ws.clock.advance(timedelta(hours=2))  # type: ignore[attr-defined]
    # the policy's label_maturation is 15 minutes: the 1-minute-old requests do not count yet
    _labelled_requests(
        rollout_ws, stored.state.phase_routing_version, [timedelta(hours=1), timedelta(minutes=1)]
    )
    evidence = read_evidence(rollout_ws, stored, rollout_ws.clock.now())
    assert evidence.champion.labelled == 1 and evidence.challenger.labelled == 1
    assert evidence.champion.requests == 2  # failures, latency and units still count every request
