"""The prediction log's spool: records kept on disk while the store is down, written once it answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from pitstop.serving.metrics import GatewayMetrics
from pitstop.serving.predlog import PredictionLog, write_new_records, write_records
from pitstop.serving.spool import PredictionSpool, decode, encode, workspace_spool
from pitstop.store import spool_backlog
from pitstop.store.predictions.write import PredictionRecord
from pitstop.store.tables import predictions
from pitstop.workspace import Workspace


def record(i: int, request_id: str | None = None) -> PredictionRecord:
    return PredictionRecord(
        1,
        request_id or f"r{i}",
        f"u{i}",
        1_700_000_000.1 + i,
        1,
        "champion",
        "served",
        3,
        "user",
        0.1 + 0.2,
        1.5,
        None,
    )


def stored(ws: Workspace) -> list[PredictionRecord]:
    columns = [predictions.c[name] for name in PredictionRecord._fields]
    with ws.reading() as conn:
        rows = conn.execute(sa.select(*columns).order_by(predictions.c.id))
        return [PredictionRecord(*row) for row in rows]


def rename(ws: Workspace, old: str, new: str) -> None:
    """Takes the predictions table away (the store then fails every write, as when it is down) or back."""
    with ws.writing() as conn:
        conn.execute(sa.text(f"ALTER TABLE {old} RENAME TO {new}"))


def test_a_record_survives_the_spool_exactly() -> None:
    odd = PredictionRecord(
        7,
        "id\udc80é\x00",
        None,
        1e-300,
        2,
        "challenger",
        "shadow",
        9,
        "request",
        None,
        0.1,
        "boom\n",
        "[0.25,0.75]",
    )
    line = encode(odd)
    assert line.isascii() and line.count("\n") == 1
    assert decode(line) == odd
    assert decode(encode(record(1))) == record(1)


def test_beyond_its_bound_the_spool_keeps_the_oldest_and_refuses_the_newest(tmp_path: Path) -> None:
    batches = [[record(b * 10 + i) for i in range(10)] for b in range(5)]
    three = sum(len(encode(r)) for batch in batches[:3] for r in batch)
    spool = PredictionSpool(tmp_path / "spool", max_bytes=three + 10)
    kept = [spool.save(batch) for batch in batches]
    assert kept == [True, True, True, False, False]
    assert spool.size().files == 3 and spool.size().bytes <= spool.max_bytes
    first = spool.pending()[0]
    with spool.claim(first) as records:
        assert records == [record(i) for i in range(10)]  # the oldest batch, first


def test_a_batch_is_drained_by_one_process_at_a_time(tmp_path: Path) -> None:
    spool = PredictionSpool(tmp_path, max_bytes=2**20)
    assert spool.save([record(1)])
    [path] = spool.pending()
    with spool.claim(path) as mine:
        with spool.claim(path) as other:  # another open file, as another gateway's would be
            assert other is None
        assert mine == [record(1)]
        spool.done(path)
    assert spool.pending() == []
    with spool.claim(path) as gone:
        assert gone is None


def test_an_unreadable_batch_is_set_aside_and_counted_not_retried(
    workspace: Workspace, tmp_path: Path
) -> None:
    metrics = GatewayMetrics()
    spool = PredictionSpool(tmp_path, max_bytes=2**20)
    path = tmp_path / "00000000000000000001-1-000000.jsonl"
    path.write_text('["not", "a record"]\n' + encode(record(1)))

    async def main() -> None:
        log = PredictionLog(
            workspace.engine, metrics, queue_size=10, batch_size=10, flush_interval=1, spool=spool
        )
        await log.flush()
        await log.stop()

    asyncio.run(main())
    assert spool.pending() == [] and (tmp_path / f"{path.name}.unreadable").exists()
    assert (
        metrics.registry.get_sample_value("pitstop_predlog_dropped_total", {"reason": "spool_unreadable"})
        == 2
    )


def test_a_spooled_batch_written_twice_is_stored_once(workspace: Workspace) -> None:
    """A commit whose answer was lost leaves its file spooled: draining it again adds nothing."""
    write_records(workspace.engine, [record(i) for i in range(3)])
    write_new_records(workspace.engine, [record(i) for i in range(5)])
    assert stored(workspace) == [record(i) for i in range(5)]


def test_records_go_to_the_spool_while_the_store_is_down_and_reach_it_once_back(workspace: Workspace) -> None:
    metrics = GatewayMetrics()
    spool = workspace_spool(workspace.path, 2**20)

    async def main() -> None:
        log = PredictionLog(
            workspace.engine, metrics, queue_size=1000, batch_size=10, flush_interval=0.02, spool=spool
        )
        log.start()
        await asyncio.to_thread(rename, workspace, "predictions", "predictions_away")
        for i in range(25):
            log.append(record(i))
        while log.depth or log.spool_size.files < 3:
            await asyncio.sleep(0.01)
        assert not log.healthy and log.spooled == 25
        await asyncio.to_thread(rename, workspace, "predictions_away", "predictions")
        for i in range(25, 30):
            log.append(record(i))
        while log.depth or log.spool_size.files or not log.healthy:
            await asyncio.sleep(0.01)
        await log.stop()

    asyncio.run(asyncio.wait_for(main(), 30))
    assert sorted(stored(workspace)) == sorted(record(i) for i in range(30))
    # the 5 queued after the store came back are spooled too when the writer was still backing off
    assert 25 <= (metrics.registry.get_sample_value("pitstop_predlog_spooled_total") or 0) <= 30
    assert metrics.registry.get_sample_value("pitstop_predlog_spool_files") == 0


def test_records_a_stopped_log_spooled_are_written_by_the_next_one(workspace: Workspace) -> None:
    spool = workspace_spool(workspace.path, 2**20)

    def new_log() -> PredictionLog:
        return PredictionLog(
            workspace.engine,
            GatewayMetrics(),
            queue_size=1000,
            batch_size=10,
            flush_interval=0.02,
            spool=spool,
        )

    async def down() -> None:
        log = new_log()
        log.start()
        for i in range(12):
            log.append(record(i))
        await log.stop(timeout=0.5)  # the store stays down: what is queued goes to the spool

    async def back() -> None:
        log = new_log()
        await log.flush()
        await log.stop()

    rename(workspace, "predictions", "predictions_away")
    asyncio.run(down())
    assert sum(1 for _ in spool.pending()) == 2
    rename(workspace, "predictions_away", "predictions")
    asyncio.run(back())
    assert spool.pending() == []
    assert stored(workspace) == [record(i) for i in range(12)]


def test_a_log_draining_a_spool_announces_it_until_the_spool_is_empty(workspace: Workspace) -> None:
    spool = workspace_spool(workspace.path, 2**20)
    assert spool.save([record(1)])
    [path] = spool.pending()

    def spooling() -> list[str]:
        with workspace.reading() as conn:
            return spool_backlog.spooling_gateways(conn, datetime.now(UTC))

    async def main() -> None:
        log = PredictionLog(
            workspace.engine,
            GatewayMetrics(),
            queue_size=10,
            batch_size=10,
            flush_interval=0.02,
            spool=spool,
            identity="gw-a",
        )
        with spool.claim(path):  # another gateway drains this file: it stays, and so does the backlog
            await log.flush()
            assert spooling() == ["gw-a"]
        await log.flush()
        assert spooling() == []
        await log.stop()

    asyncio.run(main())
    assert stored(workspace) == [record(1)]


def test_records_beyond_a_full_spool_are_dropped_and_counted(workspace: Workspace, tmp_path: Path) -> None:
    metrics = GatewayMetrics()
    first = "".join(encode(record(i)) for i in range(10)).encode()
    spool = PredictionSpool(tmp_path / "spool", max_bytes=len(first) + 10)  # room for one batch

    async def main() -> PredictionLog:
        log = PredictionLog(
            workspace.engine, metrics, queue_size=1000, batch_size=10, flush_interval=0.02, spool=spool
        )
        for i in range(30):
            log.append(record(i))
        await log.stop(timeout=0.5)
        return log

    rename(workspace, "predictions", "predictions_away")
    log = asyncio.run(main())
    assert (log.spooled, log.spool_dropped) == (10, 20)
    assert metrics.registry.get_sample_value("pitstop_predlog_dropped_total", {"reason": "spool_full"}) == 20
    [path] = spool.pending()
    with spool.claim(path) as kept:
        assert kept == [record(i) for i in range(10)]  # the oldest


def spooling_log(ws: Workspace, spool: PredictionSpool) -> PredictionLog:
    return PredictionLog(
        ws.engine, GatewayMetrics(), queue_size=1000, batch_size=10, flush_interval=0.02, spool=spool
    )


@asynccontextmanager
async def steady_traffic(log: PredictionLog) -> AsyncIterator[list[PredictionRecord]]:
    """A record appended every turn of the event loop until the block ends, so more than one arrives
    during each write or save; yields the records the log accepted."""
    accepted: list[PredictionRecord] = []
    stop = asyncio.Event()

    async def send() -> None:
        i = 0
        while not stop.is_set():
            if log.append(record(i)):
                accepted.append(record(i))
            i += 1
            await asyncio.sleep(0)

    sender = asyncio.create_task(send())
    try:
        yield accepted
    finally:
        stop.set()
        await sender


def test_a_log_spooling_under_steady_traffic_tries_the_store_again(workspace: Workspace) -> None:
    """Records keep coming while the store is down: the writer spools what is queued and goes back to
    the store, so once it is back everything accepted is stored, each once. (It used to spool every
    record that arrived during a save as well, and with one arriving per save never tried the store
    again.)"""
    spool = workspace_spool(workspace.path, 2**24)

    async def main() -> list[PredictionRecord]:
        log = spooling_log(workspace, spool)
        log.start()
        await asyncio.to_thread(rename, workspace, "predictions", "predictions_away")
        async with steady_traffic(log) as accepted:
            while log.spool_size.files < 3:
                await asyncio.sleep(0.01)
            await asyncio.to_thread(rename, workspace, "predictions_away", "predictions")
            while not log.healthy:
                await asyncio.sleep(0.01)
        await log.flush()
        await log.stop()
        return accepted

    accepted = asyncio.run(asyncio.wait_for(main(), 60))
    assert accepted and sorted(stored(workspace)) == sorted(accepted)
    assert spool.pending() == []


def test_a_busy_log_drains_files_another_gateway_spooled(workspace: Workspace) -> None:
    """Records keep coming faster than batches are written: each pass writes what was queued when it
    began, then drains the spool, where another gateway left a file. (A pass used to write until the
    queue was short of a batch, which under such traffic it never was: the file stayed.)"""
    spool = workspace_spool(workspace.path, 2**24)
    theirs = [record(i, f"theirs-{i}") for i in range(5)]

    async def main() -> list[PredictionRecord]:
        log = spooling_log(workspace, spool)
        log.start()
        async with steady_traffic(log) as accepted:
            while len(await asyncio.to_thread(stored, workspace)) < 100:  # the writer is busy
                await asyncio.sleep(0.01)
            assert await asyncio.to_thread(spool.save, theirs)
            while await asyncio.to_thread(spool.pending):
                await asyncio.sleep(0.01)
        await log.flush()
        await log.stop()
        return accepted

    accepted = asyncio.run(asyncio.wait_for(main(), 60))
    assert sorted(stored(workspace)) == sorted(accepted + theirs)


def test_records_queued_during_a_backoff_go_to_the_spool_before_the_store_is_tried_again(
    workspace: Workspace,
) -> None:
    """While the store is down, a record never waits in memory for the next probe of the store: one
    queued during the writer's backoff is spooled within `flush_interval`, before the next attempt,
    so a gateway killed during an outage loses at most that interval's records. (It used to wait for
    the next pass, a backoff of up to `MAX_BACKOFF` later, and a store probe.)"""
    metrics = GatewayMetrics()
    spool = workspace_spool(workspace.path, 2**20)

    def failures() -> float:
        return metrics.registry.get_sample_value("pitstop_predlog_write_failures_total") or 0.0

    async def main() -> float:
        # backoffs of flush_interval x 2^failures: 1.0 s after the first failure, 2.0 s after the next
        log = PredictionLog(
            workspace.engine, metrics, queue_size=1000, batch_size=10, flush_interval=0.5, spool=spool
        )
        log.start()
        await asyncio.to_thread(rename, workspace, "predictions", "predictions_away")
        log.append(record(0))
        while failures() < 1 or log.depth:
            await asyncio.sleep(0.01)
        log.append(record(1))  # during the backoff after the first failure
        while log.depth:
            await asyncio.sleep(0.01)
        spooled_after = failures()
        await asyncio.to_thread(rename, workspace, "predictions_away", "predictions")
        while log.spool_size.files or not log.healthy:
            await asyncio.sleep(0.01)
        await log.stop()
        return spooled_after

    assert asyncio.run(asyncio.wait_for(main(), 30)) == 1.0
    assert sorted(stored(workspace)) == [record(0), record(1)]
