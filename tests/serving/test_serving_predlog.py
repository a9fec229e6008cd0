"""The prediction log: batched writes off the request path; full queues and failed writes are counted."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from pitstop.serving.metrics import GatewayMetrics
from pitstop.serving.predlog import PredictionLog, PredictionRecord
from pitstop.store.tables import predictions
from pitstop.workspace import Workspace


def record(i: int) -> PredictionRecord:
    return PredictionRecord(
        1, f"r{i}", None, 1_700_000_000.0 + i, 1, "champion", "served", 0, "request", 0.5, 1.0, None
    )


def count(ws: Workspace) -> int:
    with ws.reading() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(predictions)).scalar_one())


def new_log(ws: Workspace, metrics: GatewayMetrics, **options: float) -> PredictionLog:
    settings = {"queue_size": 1000, "batch_size": 10, "flush_interval": 0.05, **options}
    return PredictionLog(ws.engine, metrics, **settings)  # type: ignore[arg-type]


def test_records_are_written_in_batches_by_the_background_writer(workspace: Workspace) -> None:
    metrics = GatewayMetrics()

    async def main() -> None:
        log = new_log(workspace, metrics, batch_size=10)
        log.start()
        for i in range(35):
            assert log.append(record(i))
        deadline = asyncio.get_running_loop().time() + 10
        while count(workspace) < 35:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.02)
        await log.stop()

    asyncio.run(main())
    assert metrics.registry.get_sample_value("pitstop_predlog_written_total") == 35
    with workspace.reading() as conn:
        assert [r.request_id for r in conn.execute(sa.select(predictions).order_by(predictions.c.id))] == [
            f"r{i}" for i in range(35)
        ]


def test_a_full_queue_drops_and_counts_never_blocks(workspace: Workspace) -> None:
    metrics = GatewayMetrics()

    async def main() -> list[bool]:
        log = new_log(workspace, metrics, queue_size=5)
        accepted = [log.append(record(i)) for i in range(8)]
        await log.flush()
        await log.stop()
        return accepted

    assert asyncio.run(main()) == [True] * 5 + [False] * 3
    assert count(workspace) == 5
    assert 'pitstop_predlog_dropped_total{reason="queue_full"} 3.0' in metrics.render().decode()


def test_a_failed_write_is_counted_kept_and_retried(workspace: Workspace) -> None:
    metrics = GatewayMetrics()

    def rename(old: str, new: str) -> None:
        with workspace.writing() as conn:
            conn.execute(sa.text(f"ALTER TABLE {old} RENAME TO {new}"))

    async def main() -> tuple[bool, str | None]:
        log = new_log(workspace, metrics, flush_interval=0.02)
        log.start()
        await asyncio.to_thread(rename, "predictions", "predictions_away")
        for i in range(3):
            log.append(record(i))
        while (metrics.registry.get_sample_value("pitstop_predlog_write_failures_total") or 0) < 2:
            await asyncio.sleep(0.01)
        failing = (log.healthy, log.last_error)
        await asyncio.to_thread(rename, "predictions_away", "predictions")
        while log.depth:
            await asyncio.sleep(0.01)
        assert log.healthy
        await log.stop()
        return failing

    healthy, error = asyncio.run(main())
    assert not healthy and error and "predictions" in error
    assert count(workspace) == 3


def test_stop_flushes_everything_queued(workspace: Workspace) -> None:
    async def main() -> None:
        log = new_log(workspace, GatewayMetrics(), batch_size=1000, flush_interval=3600)
        log.start()
        for i in range(250):
            log.append(record(i))
        await log.stop()

    asyncio.run(main())
    assert count(workspace) == 250
