"""The prediction log by day on PostgreSQL (migration 0014, `store.predictions.partitions`) and its
retention on both stores (`store.retention`, `pitstop store prune`)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from helpers import fresh_postgres_schema
from pitstop.clock import ManualClock
from pitstop.config import CONFIG_FILE
from pitstop.rollout.controller import Controller
from pitstop.rollout.gather import CLOCK_SKEW
from pitstop.serving.metrics import GatewayMetrics
from pitstop.serving.predlog import PredictionLog, write_new_records, write_records
from pitstop.store.engine import make_engine, write_transaction
from pitstop.store.migrate import _alembic_config, upgrade
from pitstop.store.predictions import partitions
from pitstop.store.predictions.partitions import DAY, DEFAULT, day_of, partition_name
from pitstop.store.predictions.write import PredictionRecord
from pitstop.workspace import Workspace

NOW = datetime(2026, 3, 20, 12, tzinfo=UTC)
TODAY = day_of(NOW.timestamp())


def record(request: int, time: float) -> PredictionRecord:
    return PredictionRecord(1, f"r{request}", "u", time, 1, "champion", "served", 1, "user", 1.0, 2.0, None)


def where(engine: sa.Engine) -> dict[str, str]:
    """request id → the table (partition) holding it."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT request_id, tableoid::regclass::text FROM predictions"))
        return {request: table.split(".")[-1] for request, table in rows}


@pytest.fixture
def pg_url(postgres_url: str) -> Iterator[str]:
    yield from fresh_postgres_schema(postgres_url, "part")


@pytest.mark.postgres
def test_the_migration_moves_every_row_into_its_day_and_back(pg_url: str) -> None:
    engine = make_engine(pg_url)
    upgrade(engine, "0013")
    old = [record(0, TODAY + 10), record(1, TODAY - 3 * DAY + 5), record(2, 1e13), record(3, -1e13)]
    write_records(engine, old)
    upgrade(engine, "0014")
    assert where(engine) == {
        "r0": partition_name(TODAY),
        "r1": partition_name(TODAY - 3 * DAY),
        "r2": DEFAULT,  # beyond any day a partition may hold
        "r3": DEFAULT,
    }
    write_records(engine, [record(4, TODAY + 20)])  # the ids' sequence goes on
    config = _alembic_config()
    with write_transaction(engine) as conn:
        config.attributes["connection"] = conn
        from alembic import command

        command.downgrade(config, "0013")
        assert not partitions.is_partitioned(conn)
        ids = conn.execute(sa.text("SELECT request_id, id FROM predictions ORDER BY id")).all()
    assert [tuple(row) for row in ids] == [("r0", 1), ("r1", 2), ("r2", 3), ("r3", 4), ("r4", 5)]
    assert set(where(engine).values()) == {"predictions"}
    engine.dispose()


@pytest.mark.postgres
def test_days_ahead_are_created_once_and_stray_records_get_a_day_of_their_own(pg_url: str) -> None:
    engine = make_engine(pg_url)
    upgrade(engine)
    later = TODAY + 400 * DAY  # a clock gone wrong, far ahead of every partition
    write_records(engine, [record(0, later + 1), record(1, TODAY - 900 * DAY)])
    assert set(where(engine).values()) == {DEFAULT}
    made = partitions.keep_days_ahead(engine, NOW.timestamp())
    expected = {TODAY + k * DAY for k in range(-1, partitions.AHEAD_DAYS + 1)} | {later, TODAY - 900 * DAY}
    assert {p.start for p in made} == expected
    assert partitions.keep_days_ahead(engine, NOW.timestamp()) == []
    assert where(engine) == {"r0": partition_name(later), "r1": partition_name(TODAY - 900 * DAY)}
    engine.dispose()


@pytest.mark.postgres
def test_a_spooled_batch_across_midnight_written_twice_is_stored_once(pg_url: str) -> None:
    """The log has no unique key by request (a partitioned table's would have to hold the time): the
    write-back finds the records already stored by request id within the batch's time span."""
    engine = make_engine(pg_url)
    upgrade(engine)
    partitions.keep_days_ahead(engine, NOW.timestamp())
    batch = [record(i, TODAY + DAY - 2 + i) for i in range(4)]  # two before midnight, two after
    write_new_records(engine, batch)
    write_new_records(engine, batch)
    assert sorted(where(engine).items()) == [
        ("r0", partition_name(TODAY)),
        ("r1", partition_name(TODAY)),
        ("r2", partition_name(TODAY + DAY)),
        ("r3", partition_name(TODAY + DAY)),
    ]
    engine.dispose()


@pytest.mark.postgres
def test_a_range_of_time_reads_only_its_days_partitions(pg_url: str) -> None:
    engine = make_engine(pg_url)
    upgrade(engine)
    partitions.keep_days_ahead(engine, NOW.timestamp())
    write_records(engine, [record(i, TODAY - 2 * DAY + i * 3600) for i in range(72)])
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(
            "EXPLAIN SELECT count(*) FROM predictions WHERE model_id = %s AND time >= %s AND time < %s",
            (1, TODAY + 600, TODAY + 7200),
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
    finally:
        raw.close()
    scanned = {name for name in plan.split() if name.startswith(partitions.PREFIX) or name == DEFAULT}
    assert scanned == {partition_name(TODAY)}, plan
    engine.dispose()


def _workspace(folder: Path, retention: str | None) -> Workspace:
    config = yaml.safe_load((folder / CONFIG_FILE).read_text())
    config.setdefault("store", {})["retention"] = retention
    (folder / CONFIG_FILE).write_text(yaml.safe_dump(config))
    ws = Workspace(folder, clock=ManualClock(NOW))
    with ws.writing() as conn:  # model 1, whose records `_days` logs
        conn.execute(
            sa.text(
                "INSERT INTO models (name, task, target, id_columns, created_at, created_by, allow_pickle) "
                "VALUES ('eta', 'regression', 'y', '[]', '2026-01-01 00:00:00', 'test', false)"
            )
        )
    return ws


def _open_rollout(ws: Workspace, started: datetime) -> None:
    with ws.writing() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO rollouts (model_id, champion_version, challenger_version, phase, salt, policy, "
                "memory, phase_routing_version, phase_started_at, started_at, started_by, updated_at, "
                "revision) VALUES (1, 1, 2, 'shadow', 's', '{}', '{}', 1, :at, :at, 'test', :at, 1)"
            ),
            {"at": started.replace(tzinfo=None)},
        )


def _days(ws: Workspace, days: range) -> None:
    """One record at noon of each day `days` before today (model 1)."""
    write_records(ws.engine, [record(d, TODAY - d * DAY + DAY / 2) for d in days])
    if ws.engine.dialect.name == "postgresql":
        partitions.keep_days_ahead(ws.engine, NOW.timestamp())


def _kept(ws: Workspace) -> list[str]:
    with ws.reading() as conn:
        return sorted(conn.execute(sa.text("SELECT request_id FROM predictions")).scalars())


def test_retention_removes_the_days_older_than_the_bound(workspace_dir: Path) -> None:
    ws = _workspace(workspace_dir, "10d")
    _days(ws, range(20))
    preview = ws.prune_log(dry_run=True)
    assert preview.rows == 9 and len(_kept(ws)) == 20  # days 11 to 19 end before NOW - 10d
    done = ws.prune_log()
    assert done.rows == 9 and done.held_by_rollout is None
    assert _kept(ws) == sorted(f"r{d}" for d in range(11))
    if ws.engine.dialect.name == "postgresql":  # whole days dropped; DEFAULT kept
        assert {p.name for p in done.parts} == {partition_name(TODAY - d * DAY) for d in range(11, 20)}
        with ws.reading() as conn:
            assert DEFAULT in {p.name for p in partitions.partitions(conn)}
    ws.close()


def test_retention_keeps_what_an_open_rollout_may_read(workspace_dir: Path) -> None:
    ws = _workspace(workspace_dir, "2d")
    _days(ws, range(20))
    started = NOW - timedelta(days=6, hours=10)  # day 6 at 2:00; its windows read from a minute before
    _open_rollout(ws, started)
    done = ws.prune_log()
    assert done.held_by_rollout == started and done.before == started - CLOCK_SKEW
    assert _kept(ws) == sorted(f"r{d}" for d in range(7))  # day 7 ends before the windows' start
    ws.close()


def test_prune_without_retention_set_says_which_key_to_set(workspace_dir: Path, cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("store", "prune", "--workspace", str(workspace_dir))
    assert result.exit_code == 2 and "store.retention: not set" in result.stderr


def test_prune_dry_run_json_reports_and_keeps(workspace_dir: Path, cli) -> None:  # type: ignore[no-untyped-def]
    ws = _workspace(workspace_dir, "10d")
    _days(ws, range(3))  # in March: the command's clock is the system's, months later
    result = cli("store", "prune", "--workspace", str(workspace_dir), "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["dry_run"] is True and report["rows"] == 3
    assert len(_kept(ws)) == 3
    ws.close()


def test_the_leading_controller_prunes_every_hour_and_a_follower_never(workspace_dir: Path) -> None:
    ws = _workspace(workspace_dir, "10d")
    clock = ws.clock
    assert isinstance(clock, ManualClock)
    _days(ws, range(20))
    leader, follower = Controller(ws, holder="one"), Controller(ws, holder="two")
    assert leader.acquire() and not follower.acquire()
    follower.tick()
    assert len(_kept(ws)) == 20
    leader.tick()
    assert _kept(ws) == sorted(f"r{d}" for d in range(11))
    _days(ws, range(15, 16))  # a late record of a day already removed
    clock.advance(timedelta(minutes=30))
    leader.tick()
    assert "r15" in _kept(ws)
    clock.advance(timedelta(minutes=31))
    leader.tick()
    assert "r15" not in _kept(ws) and {f"r{d}" for d in range(10)} <= set(_kept(ws))
    ws.close()


@pytest.mark.postgres
def test_the_gateways_log_writer_creates_a_missing_day_and_moves_its_records_there(pg_url: str) -> None:
    engine = make_engine(pg_url)
    upgrade(engine)
    now = time.time()
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE {partition_name(day_of(now))}"))

    async def main() -> None:
        log = PredictionLog(engine, GatewayMetrics(), queue_size=10, batch_size=10, flush_interval=0.01)
        log.append(record(0, now))
        await log.flush()
        await log.stop()

    asyncio.run(main())
    assert where(engine) == {"r0": partition_name(day_of(now))}
    engine.dispose()
