"""The shadow's latency, measured the way served calls are made (role `timing`).

Shadow calls run in the shadow's own process at idle priority, in patient batches of up to hundreds
of rows (`shadow.py`, `isolation.py`): fair evidence of errors, not of latency. A served call runs in
the gateway's process, on its runner's thread beside the event loop and the champion's thread: it
waits for the interpreter lock they hold, and its native threads compete with them for the CPU
(LightGBM sizes its OpenMP team to every core whatever `serving.model_threads` says). None of that
happens in the shadow's process, so a LightGBM challenger's shadow p99 was a third to two thirds of
the p99 it showed when served (bench/shadow_latency.py, bench/RESULTS.md), and the shadow passed a
challenger the A/B guardrail then rolled back.

So a sample of shadow requests (`serving.shadow_timing_sample`) is also scored by a runner built as a
served one (`make_runner(shadow=False)`: in this process, on its own thread, with the served batching
and thread settings), one row at a time, submitted as a served request is (nobody's batch to wait
for). Its record has role `timing` and its duration measured as a served call's; the shadow verdict's
latency rule reads these records (`Evidence.shadow_timing`). The errors stay the shadow's own.

Guarantee 1 holds because the sample is bounded, per model version: one timing call in flight at a
time (samples arriving meanwhile are not timed), and their own time (as recorded: without waits for
a CPU) at most `BUDGET_SHARE` of wall time (a token bucket holding at most `BUDGET_BURST` seconds, so
a slow spell is still sampled). A call still running at the shadow timeout is recorded as a timeout
then; no other starts until it ends.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from time import perf_counter

from pitstop.routing.table import TIMING
from pitstop.serving.batching import model_seconds
from pitstop.serving.errors import RunnerClosedError
from pitstop.serving.metrics import GatewayMetrics
from pitstop.serving.runner import Runner
from pitstop.serving.shadow import ShadowRequest, ShadowTarget
from pitstop.store.predictions.write import PredictionRecord

BUDGET_SHARE = 0.05  # of wall time a model version's timing calls may take, on average
BUDGET_BURST = 5.0  # seconds of calls the budget may save up: a slow spell is sampled as a quiet one


@dataclass(slots=True)
class _Budget:
    """One model version's timing calls: whether one is in flight, and the seconds it may still spend."""

    busy: bool = False
    seconds: float = BUDGET_BURST
    refilled: float = field(default_factory=perf_counter)

    def available(self, now: float) -> bool:
        self.seconds = min(BUDGET_BURST, self.seconds + (now - self.refilled) * BUDGET_SHARE)
        self.refilled = now
        return not self.busy and self.seconds > 0


@dataclass(slots=True, eq=False)
class _Call:
    target: ShadowTarget
    request: ShadowRequest
    budget: _Budget
    started: float
    timer: asyncio.TimerHandle | None = None
    recorded: bool = False


class ShadowTimer:
    """Times sampled shadow requests on a served-style runner and records them; `drain()` waits until
    every call started is recorded (each within `timeout`)."""

    def __init__(
        self, metrics: GatewayMetrics, record: Callable[[PredictionRecord], object], *, timeout: float
    ) -> None:
        self.metrics, self._record, self.timeout = metrics, record, timeout
        self._budgets: dict[tuple[str, int], _Budget] = {}
        self._unrecorded = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def time(self, runner: Runner, target: ShadowTarget, request: ShadowRequest) -> None:
        """Time the request's first row as a served call, unless one is in flight or the budget is spent."""
        budget = self._budgets.setdefault((target.model, target.version), _Budget())
        now = perf_counter()
        if not budget.available(now):
            return
        one = ShadowRequest(request.time, request.rows[:1], request.request_ids[:1], request.user_ids[:1],
                            request.bucketed_by[:1])  # fmt: skip
        try:
            # as a served request: due at the runner's own batch wait
            future = runner.submit(one.rows, request_ids=one.request_ids)
        except RunnerClosedError:
            return
        budget.busy = True
        call = _Call(target, one, budget, now)
        self._unrecorded += 1
        self._idle.clear()
        call.timer = asyncio.get_running_loop().call_later(self.timeout, self._expire, call, future)
        future.add_done_callback(partial(self._finished, call))

    async def drain(self) -> None:
        """Wait until every timing call started is recorded."""
        await self._idle.wait()

    def _expire(self, call: _Call, future: asyncio.Future[list[float]]) -> None:
        if not future.done():  # the budget stays busy until the call ends: no second stuck thread
            self._write(call, None, f"timeout after {self.timeout:g}s", self.timeout)

    def _finished(self, call: _Call, future: asyncio.Future[list[float]]) -> None:
        if call.timer is not None:
            call.timer.cancel()
        seconds = model_seconds(future, perf_counter() - call.started)
        call.budget.busy = False
        call.budget.seconds -= seconds  # its own time, as recorded: what it took from the served path
        if call.recorded:
            return
        if future.cancelled():
            return self._write(call, None, "cancelled: the runner was closed", seconds)
        if (error := future.exception()) is not None:
            return self._write(call, None, f"{type(error).__name__}: {error}"[:500], seconds)
        (value,) = future.result()
        if isinstance(value, list):  # a multiclass row of probabilities: a timing record needs only its time
            return self._write(call, None, None, seconds)
        finite = math.isfinite(value)
        self._write(call, value if finite else None, None if finite else f"non-finite prediction ({value})",
                    seconds)  # fmt: skip

    def _write(self, call: _Call, prediction: float | None, error: str | None, seconds: float) -> None:
        call.recorded = True
        model, model_id, version, arm, routing_version = call.target
        request = call.request
        self._record(
            PredictionRecord(
                model_id, request.request_ids[0], request.user_ids[0], request.time, version, arm, TIMING,
                routing_version, request.bucketed_by[0], prediction, seconds * 1000.0, error,
            )
        )  # fmt: skip
        self.metrics.prediction(model, version, arm, TIMING, request.bucketed_by[0], seconds, error is None)
        self._unrecorded -= 1
        if self._unrecorded == 0:
            self._idle.set()
