"""A look reads one bounded range of the prediction log, whatever the model's older history holds:
every query of it reaches the log through an index range on the model and, on SQLite, on both ends of
the request time (the store's own query plans, on SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, text

from pitstop.registry import Task
from pitstop.rollout.gather import CLOCK_SKEW, Window, gather_evidence
from pitstop.rollout.reads import EVERYTHING
from pitstop.serving.labels import Label, upsert_labels
from pitstop.serving.predlog import write_records
from pitstop.store.predictions.partitions import DAY, keep_days_ahead, partition_name
from pitstop.store.predictions.write import PredictionRecord
from pitstop.workspace import Workspace
from rollout.conftest import START

MODEL = 7
SQLITE_RANGE = "SEARCH predictions USING INDEX ix_predictions_model_time (model_id=? AND time>? AND time<?)"


def _log(ws: Workspace, first: int, rows: int, routing: int, seconds_from_start: float) -> None:
    at = START.timestamp() + seconds_from_start
    records = [
        PredictionRecord(
            MODEL,
            f"r{i}",
            f"u{i % 50}",
            at + i,
            1,
            ("champion", "challenger")[i % 2],
            "served",
            routing,
            "user",
            1.0,
            2.0,
            None,
        )
        for i in range(first, first + rows)
    ]
    write_records(ws.engine, records)
    with ws.writing() as conn:
        upsert_labels(conn, MODEL, [Label(r.request_id, 1.5) for r in records], received_at=START)


def _plans_of_a_look(ws: Workspace, window: Window) -> list[str]:
    """Each statement of one look (every query) with its plan, as the store explains it."""
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    event.listen(ws.engine, "before_cursor_execute", record)
    try:
        with ws.reading() as conn:
            gather_evidence(conn, window, EVERYTHING)
    finally:
        event.remove(ws.engine, "before_cursor_execute", record)
    explain = "EXPLAIN QUERY PLAN " if ws.engine.dialect.name == "sqlite" else "EXPLAIN "
    plans = []
    raw = ws.engine.raw_connection()
    try:
        cursor = raw.cursor()
        for statement, parameters in seen:
            if "predictions" not in statement:
                continue
            cursor.execute(explain + statement, parameters)
            plans.append("\n".join(str(row[-1]) for row in cursor.fetchall()))
    finally:
        raw.close()
    return plans


def _postgres_ranges(plan: str) -> list[str]:
    """The index conditions of each scan of a prediction-log index in a PostgreSQL plan."""
    lines, found = plan.splitlines(), []
    for i, line in enumerate(lines):
        if re.search(r"Index (Only )?Scan (using|on) ix_predictions_", line):
            found.append(next(cond for cond in lines[i + 1 :] if "Index Cond:" in cond))
    return found


def test_every_query_of_a_look_reads_one_bounded_range_of_the_log(workspace: Workspace) -> None:
    _log(workspace, 0, 20_000, 1, -200_000)  # older history: earlier phases, earlier routing versions
    _log(workspace, 100_000, 100, 2, 0)  # the window: from routing version 2, at START
    if workspace.engine.dialect.name == "postgresql":
        with workspace.writing() as conn:  # autovacuum's statistics, now
            conn.execute(text("ANALYZE predictions"))
    window = Window(
        MODEL,
        Task.REGRESSION,
        2,
        START,
        START + timedelta(hours=1),
        rollout_started_at=START,
        coverage_before=START + timedelta(minutes=30),
    )
    plans = _plans_of_a_look(workspace, window)
    assert len(plans) >= 8  # counts, errors, latency, champion's history, pairs, users, coverage, both arms
    for plan in plans:
        if workspace.engine.dialect.name == "sqlite":
            touching = [line for line in plan.splitlines() if " predictions " in f"{line} "]
            assert touching and all(line == SQLITE_RANGE for line in touching), plan
        else:
            assert "Seq Scan on predictions" not in plan, plan
            ranges = _postgres_ranges(plan)
            assert ranges and all("time" in r or "routing_version >=" in r for r in ranges), plan


def test_the_window_allows_for_gateway_clocks_behind_the_controllers(workspace: Workspace) -> None:
    """A gateway whose clock lags stamps the phase's first requests before the phase began: they are
    the phase's all the same (its routing version says so), within `CLOCK_SKEW`."""
    lag = CLOCK_SKEW.total_seconds()
    _log(workspace, 0, 10, 2, -lag + 1)
    window = Window(MODEL, Task.REGRESSION, 2, START, START + timedelta(hours=1))
    with workspace.reading() as conn:
        evidence = gather_evidence(conn, window, EVERYTHING)
    assert evidence.champion.requests + evidence.challenger.requests == 10


def test_on_postgresql_a_look_reads_only_the_partitions_of_its_days(workspace: Workspace) -> None:
    """The log by day (migration 0014): a look's queries are planned on the partitions of the days its
    window touches (from a `CLOCK_SKEW` before midnight), none of the older history's nor DEFAULT."""
    if workspace.engine.dialect.name != "postgresql":
        pytest.skip("SQLite keeps the log in one table")
    _log(workspace, 0, 2_000, 1, -200_000)  # two days before the window
    _log(workspace, 100_000, 100, 2, 0)
    made = keep_days_ahead(workspace.engine, START.timestamp())
    assert partition_name(START.timestamp() - 200_000) in {p.name for p in made}
    window = Window(MODEL, Task.REGRESSION, 2, START, START + timedelta(hours=1), rollout_started_at=START)
    plans = _plans_of_a_look(workspace, window)
    window_days = {partition_name(START.timestamp() - DAY), partition_name(START.timestamp())}
    for plan in plans:
        read = set(re.findall(r" on (predictions_\w+)", plan))
        assert read and read <= window_days, plan
