"""The shadow timeout is the challenger's own time: waits of its process for a CPU do not count.

A runner whose future the test resolves and whose process's CPU accounting the test sets stands in
for a shadow model's child process, so each case is exact (the real, starved child process is in
test_serving_isolation.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from pitstop.serving.metrics import GatewayMetrics
from pitstop.serving.priority import CpuTime
from pitstop.serving.shadow import STARVED_LIMIT, ShadowRequest, ShadowScorer, ShadowTarget
from pitstop.store.predictions.write import PredictionRecord

TIMEOUT = 0.1
TARGET = ShadowTarget("eta", 1, 2, "challenger", 7)


class ScriptedRunner:
    """A `Runner` whose answer comes when the test gives it, in a process the test says is running,
    sleeping or waiting for a CPU."""

    version = 2

    def __init__(self) -> None:
        self.cpu = CpuTime(pid=42, ran=1.0, waited=5.0, runnable=False)
        self.futures: list[asyncio.Future[list[float]]] = []

    def submit(
        self,
        rows: list[dict[str, Any]],
        *,
        max_wait: float | None = None,
        request_ids: Sequence[str] | None = None,
    ) -> asyncio.Future[list[float]]:
        future: asyncio.Future[list[float]] = asyncio.get_running_loop().create_future()
        self.futures.append(future)
        return future

    async def predict(self, rows: list[dict[str, Any]]) -> list[float]:
        return await self.submit(rows)

    def backlog_seconds(self) -> float:
        return 0.0

    def cpu_time(self) -> CpuTime | None:
        return self.cpu

    def memory(self) -> None:
        return None

    async def close(self) -> None:
        pass


def score_one(runner: ScriptedRunner, script: Any) -> tuple[list[PredictionRecord], str]:
    """Score one request in shadow while `script(runner)` plays the model; the records and metrics."""
    metrics, records = GatewayMetrics(), []

    async def main() -> None:
        scorer = ShadowScorer(metrics, records.append, timeout=TIMEOUT, concurrency=4, batch_wait=0.0)
        scorer.score(runner, TARGET, ShadowRequest(0.0, [{"a": 1.0}], ["r1"], ["u1"], ["user"]))
        await asyncio.sleep(0.01)  # the call starts
        await script(runner)
        await asyncio.wait_for(scorer.drain(), timeout=10)

    asyncio.run(main())
    return records, metrics.render().decode()


def test_a_call_whose_process_waits_for_a_cpu_is_not_abandoned_at_the_timeout() -> None:
    async def starved_then_answered(runner: ScriptedRunner) -> None:
        runner.cpu = runner.cpu._replace(runnable=True)  # ready to run, never given the CPU
        await asyncio.sleep(2 * TIMEOUT)
        runner.futures[0].set_result([3.5])

    records, metrics = score_one(ScriptedRunner(), starved_then_answered)
    assert [(r.request_id, r.prediction, r.error) for r in records] == [("r1", 3.5, None)]
    assert "pitstop_shadow_timeouts_total{" not in metrics


def test_a_call_starved_past_its_limit_is_skipped_as_starved_without_a_record() -> None:
    async def starved(runner: ScriptedRunner) -> None:
        runner.cpu = runner.cpu._replace(runnable=True)
        await asyncio.sleep(STARVED_LIMIT * TIMEOUT + 0.1)

    records, metrics = score_one(ScriptedRunner(), starved)
    assert records == []
    assert 'pitstop_shadow_skipped_total{model="eta",reason="starved",version="2"} 1.0' in metrics
    assert "pitstop_shadow_timeouts_total{" not in metrics


def test_waits_for_a_cpu_that_ended_are_left_out_of_the_timeout() -> None:
    async def waited_then_answered(runner: ScriptedRunner) -> None:
        await asyncio.sleep(TIMEOUT / 2)
        runner.cpu = runner.cpu._replace(waited=runner.cpu.waited + TIMEOUT)  # it waited, then ran
        await asyncio.sleep(TIMEOUT)
        runner.futures[0].set_result([1.0])

    records, _ = score_one(ScriptedRunner(), waited_then_answered)
    assert [(r.prediction, r.error) for r in records] == [(1.0, None)]


@pytest.mark.parametrize(
    "cpu",
    [
        CpuTime(pid=42, ran=1.0, waited=5.0, runnable=False),  # sleeping (a hang, or slow I/O)
        None,  # a runner without its own process: the wall clock is all there is
    ],
)
def test_a_call_that_is_slow_on_its_own_times_out_at_the_timeout(cpu: CpuTime | None) -> None:
    runner = ScriptedRunner()
    runner.cpu = cpu  # type: ignore[assignment]

    async def hangs(runner: ScriptedRunner) -> None:
        await asyncio.sleep(TIMEOUT * 1.5)
        assert runner.futures[0].cancelled()

    records, metrics = score_one(runner, hangs)
    assert [(r.prediction, r.error) for r in records] == [(None, f"timeout after {TIMEOUT:g}s")]
    assert 'pitstop_shadow_timeouts_total{model="eta",version="2"} 1.0' in metrics


def test_a_process_computing_at_full_speed_times_out_by_its_cpu_time() -> None:
    """Ready to run and given the CPU: its CPU time is its own, and it is slow."""
    runner = ScriptedRunner()

    async def computes(runner: ScriptedRunner) -> None:
        runner.cpu = runner.cpu._replace(runnable=True, ran=runner.cpu.ran + 10.0)
        await asyncio.sleep(TIMEOUT * 1.5)
        assert runner.futures[0].cancelled()

    records, _ = score_one(runner, computes)
    assert [r.error for r in records] == [f"timeout after {TIMEOUT:g}s"]
