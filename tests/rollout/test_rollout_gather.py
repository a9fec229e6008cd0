"""Evidence gathered from a real prediction log (SQLite and PostgreSQL): latency per model call."""

from __future__ import annotations

import pytest

from pitstop.registry import Task
from pitstop.rollout.gather import Window, arm_summaries
from pitstop.serving.predlog import PredictionRecord, write_records
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
