"""Shadow scoring that cannot hurt users (guarantee 1).

A shadow call starts only after the served answer is ready, runs on the shadow model's own runner
(its own thread and queue), and is never awaited by the request: its outcome arrives in a done
callback. It is bounded three ways, each counted: at most `concurrency` calls in flight (more are
skipped, as are calls that would wait in a backlog longer than half the timeout at the model's
measured speed), at most `timeout` seconds each (then abandoned), and any exception or non-finite
value is recorded as an error. The records it produces go to the prediction log with role `shadow`.

Nobody waits for a shadow call, so it may wait longer for company (`batch_wait`): bigger batches
cost less CPU per row, and CPU (with the GIL) is what a shadow takes from the served path. The
call that fills the last free slot is due at once, so waiting never causes a skip.

A shadow that fails every call (raises, hangs, NaN) would still cost CPU per request for nothing.
After `breaker_failures` consecutive failed calls its circuit opens: calls are skipped (counted,
reason `circuit_open`) except one probe every `probe_every` calls; a probe that succeeds closes the
circuit. Counting calls rather than seconds keeps replays deterministic. The failures already
recorded are the evidence that the shadow is broken.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from time import perf_counter
from typing import NamedTuple

from pitstop.serving.batching import model_seconds
from pitstop.serving.errors import RunnerClosedError
from pitstop.serving.metrics import GatewayMetrics
from pitstop.serving.predlog import PredictionRecord
from pitstop.serving.runner import Row, Runner

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Breaker:
    failures: int = 0  # consecutive failed calls
    skips: int = 0  # calls skipped since the last probe
    probing: bool = False


class ShadowCall(NamedTuple):
    """What a shadow call needs to write its records: one entry per row."""

    model: str
    model_id: int
    version: int
    arm: str
    routing_version: int
    time: float
    request_ids: list[str]
    user_ids: list[str | None]
    bucketed_by: list[str]


class ShadowScorer:
    """Starts bounded shadow calls and records their outcomes; `drain()` waits for those in flight."""

    def __init__(
        self,
        metrics: GatewayMetrics,
        record: Callable[[PredictionRecord], object],
        *,
        timeout: float,
        concurrency: int,
        batch_wait: float | None = None,
        breaker_failures: int = 20,
        probe_every: int = 100,
    ) -> None:
        self.metrics, self._record = metrics, record
        self.timeout, self.concurrency = timeout, concurrency
        self.batch_wait = batch_wait
        self.breaker_failures, self.probe_every = breaker_failures, probe_every
        self._breakers: dict[tuple[str, int], _Breaker] = {}
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def inflight(self) -> int:
        return self._inflight

    def score(self, runner: Runner, rows: list[Row], call: ShadowCall) -> bool:
        """Start one shadow call; False when skipped (saturated, circuit open, runner closed): counted."""
        if self._inflight >= self.concurrency:
            self.metrics.shadow_skipped.labels(call.model, str(call.version), "saturated").inc()
            return False
        if runner.backlog_seconds() > self.timeout / 2:  # it would time out in the queue: save the work
            self.metrics.shadow_skipped.labels(call.model, str(call.version), "backlog").inc()
            return False
        breaker = self._breakers.get((call.model, call.version))
        if breaker is not None and breaker.failures >= self.breaker_failures:
            if breaker.probing or breaker.skips < self.probe_every:
                breaker.skips += 1
                self.metrics.shadow_skipped.labels(call.model, str(call.version), "circuit_open").inc()
                return False
            breaker.skips, breaker.probing = 0, True  # this call is the probe
        try:
            last_slot = self._inflight + 1 >= self.concurrency
            future = runner.submit(rows, max_wait=0.0 if last_slot else self.batch_wait)
        except RunnerClosedError:
            self.metrics.shadow_skipped.labels(call.model, str(call.version), "closed").inc()
            return False
        self._inflight += 1
        self._idle.clear()
        self.metrics.shadow_inflight.set(self._inflight)
        timer = asyncio.get_running_loop().call_later(self.timeout, future.cancel)
        future.add_done_callback(partial(self._finished, call, timer, perf_counter()))
        return True

    async def drain(self) -> None:
        """Wait until no shadow call is in flight (each ends within the timeout)."""
        await self._idle.wait()

    def _finished(
        self,
        call: ShadowCall,
        timer: asyncio.TimerHandle,
        started: float,
        future: asyncio.Future[list[float]],
    ) -> None:
        timer.cancel()
        seconds = model_seconds(future, perf_counter() - started)
        predictions: list[float | None]
        errors: list[str | None]
        if future.cancelled():
            self.metrics.shadow_timeouts.labels(call.model, str(call.version)).inc()
            predictions = [None] * len(call.request_ids)
            errors = [f"timeout after {self.timeout:g}s"] * len(call.request_ids)
        elif (error := future.exception()) is not None:
            self.metrics.shadow_errors.labels(call.model, str(call.version)).inc()
            predictions = [None] * len(call.request_ids)
            errors = [f"{type(error).__name__}: {error}"[:500]] * len(call.request_ids)
        else:
            values = future.result()
            predictions = [v if math.isfinite(v) else None for v in values]
            errors = [None if math.isfinite(v) else f"non-finite prediction ({v})" for v in values]
            if any(errors):
                self.metrics.shadow_errors.labels(call.model, str(call.version)).inc()
        self._count_outcome(call, failed=all(problem is not None for problem in errors))
        model, version, arm, record = call.model, call.version, call.arm, self._record
        latency_ms = seconds * 1000.0
        for i, request_id in enumerate(call.request_ids):
            bucketed_by, problem = call.bucketed_by[i], errors[i]
            self.metrics.prediction(model, version, arm, "shadow", bucketed_by, seconds, problem is None)
            record(
                PredictionRecord(
                    call.model_id, request_id, call.user_ids[i], call.time, version, arm, "shadow",
                    call.routing_version, bucketed_by, predictions[i], latency_ms, problem,
                )
            )  # fmt: skip
        self._inflight -= 1
        self.metrics.shadow_inflight.set(self._inflight)
        if self._inflight == 0:
            self._idle.set()

    def _count_outcome(self, call: ShadowCall, *, failed: bool) -> None:
        breaker = self._breakers.setdefault((call.model, call.version), _Breaker())
        breaker.probing = False
        if not failed:
            if breaker.failures >= self.breaker_failures:
                log.info("%s v%s: shadow recovered, circuit closed", call.model, call.version)
            breaker.failures = 0
            return
        breaker.failures += 1
        if breaker.failures == self.breaker_failures:
            log.warning(
                "%s v%s: %d shadow calls failed in a row; scoring only a probe every %d calls",
                call.model,
                call.version,
                breaker.failures,
                self.probe_every,
            )
