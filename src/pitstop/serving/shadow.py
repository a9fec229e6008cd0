"""Shadow scoring that cannot hurt users (guarantee 1).

A shadow call starts only after the served answer is ready, runs on the shadow model's own runner
(its own queue; for an in-process model, a child process at idle CPU priority: `isolation.py`), and
is never awaited by the request: its outcome arrives in a done callback. It is bounded three ways,
each counted: at most `concurrency` calls in flight (more are skipped, as are calls that would wait
in a backlog longer than half the timeout at the model's measured speed), at most `timeout` seconds
each (then abandoned), and any exception or non-finite value is recorded as an error. The records
it produces go to the prediction log with role `shadow`.

The timeout is the challenger's: it counts the call's time less what its model's process spent
waiting for a CPU (`Runner.cpu_time`, `priority.own_seconds_so_far`). A shadow at idle priority on
a busy machine is refused the CPU by design, and a call held up that way says nothing about the
challenger; recorded as its timeout, it would fail a good challenger at the shadow gate (too many
errors) for the gateway's own load. Such a call gets up to `STARVED_LIMIT` timeouts of wall time
to finish; after that it is abandoned and its requests are skipped, counted with reason `starved`
(no record, no breaker count).

Nobody waits for a shadow call, so it gathers company: one call carries every shadow request for
the same model version and routing that arrives within `batch_wait` of the first. Its bookkeeping on
the event loop (a queue entry, a timer, a callback, the metrics) is paid once per call instead of
once per request or per served micro-batch, and its rows reach the model together: bigger batches
cost less CPU per row, and CPU (with the interpreter lock) is what a shadow takes from the served
path. The runner may merge calls further (`batching.py`); the call that fills the last free slot is
due at once there, so waiting never causes a skip. A call that raises is split into its requests and
each is scored on its own, so one bad request cannot fail its neighbours' shadow predictions.

An isolated shadow's process is restarted when its memory exceeds `serving.shadow_memory_limit`
(`isolation.py`); after each call the scorer exports what the runner measured: the process's
resident memory (`pitstop_shadow_rss_bytes`) and its restarts (`pitstop_shadow_restarts_total`).

A shadow that fails every call (raises, hangs, NaN) would still cost CPU per request for nothing.
After `breaker_failures` consecutive failed calls its circuit opens: calls are skipped (counted,
reason `circuit_open`) except one probe every `probe_every` calls; a probe that succeeds closes the
circuit. Counting calls rather than seconds keeps replays deterministic. The failures already
recorded are the evidence that the shadow is broken.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from time import perf_counter
from typing import NamedTuple

from pitstop.serving.batching import model_seconds
from pitstop.serving.errors import RunnerClosedError
from pitstop.serving.metrics import GatewayMetrics
from pitstop.serving.outputs import read_output
from pitstop.serving.priority import CpuTime, own_seconds_so_far
from pitstop.serving.runner import Row, Runner
from pitstop.store.predictions.write import PredictionRecord

log = logging.getLogger(__name__)

STARVED_LIMIT = 3  # timeouts of wall time a call held up by CPU waits may take before it is abandoned


@dataclass(slots=True)
class _Breaker:
    failures: int = 0  # consecutive failed calls
    skips: int = 0  # calls skipped since the last probe
    probing: bool = False


class ShadowTarget(NamedTuple):
    """What a shadow call scores and how its records are labelled."""

    model: str
    model_id: int
    version: int
    arm: str
    routing_version: int


class ShadowRequest(NamedTuple):
    """One served request's rows to score in shadow, with what their records need (one entry per row)."""

    time: float
    rows: list[Row]
    request_ids: list[str]
    user_ids: list[str | None]
    bucketed_by: list[str]


@dataclass(slots=True, eq=False)
class ShadowCall:
    """Shadow requests scored in one `predict` call; once started, when and how it is timed."""

    target: ShadowTarget
    runner: Runner
    requests: list[ShadowRequest] = field(default_factory=list)
    started: float = 0.0  # perf_counter() at submit
    cpu_time: CpuTime | None = None  # the model's process's CPU accounting at submit
    timer: asyncio.TimerHandle | None = None
    starved: bool = False  # abandoned because CPU waits, not the model, made it late

    def rows(self) -> list[Row]:
        return [row for request in self.requests for row in request.rows]

    def request_ids(self) -> list[str]:
        return [rid for request in self.requests for rid in request.request_ids]

    def split(self) -> list[ShadowCall]:
        """One call per request."""
        return [ShadowCall(self.target, self.runner, [request]) for request in self.requests]


class ShadowScorer:
    """Starts bounded shadow calls and records their outcomes; `drain()` waits for those in flight."""

    def __init__(
        self,
        metrics: GatewayMetrics,
        record: Callable[[PredictionRecord], object],
        *,
        timeout: float,
        concurrency: int,
        batch_wait: float = 0.0,
        breaker_failures: int = 20,
        probe_every: int = 100,
    ) -> None:
        self.metrics, self._record = metrics, record
        self.timeout, self.concurrency = timeout, concurrency
        self.batch_wait = batch_wait
        self.breaker_failures, self.probe_every = breaker_failures, probe_every
        self._breakers: dict[tuple[str, int], _Breaker] = {}
        # restarts already counted, per version, with (a weak reference to) the runner they are from
        self._restarts_seen: dict[tuple[str, int], tuple[weakref.ref[Runner], Mapping[str, int]]] = {}
        self._gathering: dict[ShadowTarget, ShadowCall] = {}  # calls starting when their batch_wait ends
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def inflight(self) -> int:
        return self._inflight

    def score(self, runner: Runner, target: ShadowTarget, request: ShadowRequest) -> None:
        """Score one request's rows in shadow, in one call with the others arriving within `batch_wait`."""
        call = self._gathering.get(target)
        if call is None:
            call = self._gathering[target] = ShadowCall(target, runner)
            self._idle.clear()
            asyncio.get_running_loop().call_later(self.batch_wait, self._start_gathered, target)
        call.requests.append(request)

    def _start_gathered(self, target: ShadowTarget) -> None:
        self._start(self._gathering.pop(target))
        self._settle()

    def _skip(self, call: ShadowCall, reason: str) -> None:
        target = call.target
        self.metrics.shadow_skipped.labels(target.model, str(target.version), reason).inc(len(call.requests))

    @property
    def longest_call(self) -> float:
        """The most wall time a call may take before it is abandoned (a starved one's limit)."""
        return self.timeout * STARVED_LIMIT

    def _start(self, call: ShadowCall) -> None:
        """Start one shadow call, or skip it (saturated, backlog, circuit open, runner closed): counted."""
        target = call.target
        if self._inflight >= self.concurrency:
            return self._skip(call, "saturated")
        if call.runner.backlog_seconds() > self.timeout / 2:  # it would time out in the queue: save the work
            return self._skip(call, "backlog")
        if self._circuit_open(target):
            breaker = self._breakers[(target.model, target.version)]
            if breaker.probing or breaker.skips < self.probe_every:
                breaker.skips += 1
                return self._skip(call, "circuit_open")
            breaker.skips, breaker.probing = 0, True  # this call is the probe
        try:
            last_slot = self._inflight + 1 >= self.concurrency
            future = call.runner.submit(
                call.rows(),
                max_wait=0.0 if last_slot else self.batch_wait,
                request_ids=call.request_ids(),
            )
        except RunnerClosedError:
            return self._skip(call, "closed")
        self._inflight += 1
        self._idle.clear()
        self.metrics.shadow_inflight.set(self._inflight)
        call.started, call.cpu_time = perf_counter(), call.runner.cpu_time()
        call.timer = asyncio.get_running_loop().call_later(self.timeout, self._expire, call, future)
        future.add_done_callback(partial(self._finished, call))

    def _expire(self, call: ShadowCall, future: asyncio.Future[list[float]]) -> None:
        """At the timeout: abandon the call, unless waits for a CPU made up part of it; then look again
        when its own time would run out, and give up as `starved` after `STARVED_LIMIT` timeouts."""
        if future.done():
            return
        elapsed = perf_counter() - call.started
        own = own_seconds_so_far(elapsed, call.cpu_time, call.runner.cpu_time())
        if own < self.timeout and elapsed < self.longest_call:
            later = min(self.timeout - own, self.longest_call - elapsed)
            call.timer = asyncio.get_running_loop().call_later(later, self._expire, call, future)
            return
        call.starved = own < self.timeout
        future.cancel()

    async def drain(self) -> None:
        """Wait until no shadow call is in flight (each ends within `longest_call`)."""
        await self._idle.wait()

    def _finished(self, call: ShadowCall, future: asyncio.Future[list[float]]) -> None:
        if call.timer is not None:
            call.timer.cancel()
        self._export_memory(call)
        target, n = call.target, sum(len(request.rows) for request in call.requests)
        seconds = model_seconds(future, perf_counter() - call.started)
        predictions: list[float | None]
        errors: list[str | None]
        if call.starved:
            self._skip(call, "starved")
            breaker = self._breakers.get((target.model, target.version))
            if breaker is not None:
                breaker.probing = False  # a starved probe proved nothing: the next one may go
            return self._done()
        if future.cancelled():
            self.metrics.shadow_timeouts.labels(target.model, str(target.version)).inc()
            predictions, errors = [None] * n, [f"timeout after {self.timeout:g}s"] * n
            probabilities: list[str | None] = [None] * n
        elif (error := future.exception()) is not None:
            if len(call.requests) > 1 and not self._circuit_open(target):
                self._inflight -= 1  # one request may have failed the others: each on its own
                for part in call.split():
                    self._start(part)
                return self._settle()
            self.metrics.shadow_errors.labels(target.model, str(target.version)).inc()
            predictions, errors = [None] * n, [f"{type(error).__name__}: {error}"[:500]] * n
            probabilities = [None] * n
        else:
            outputs = [read_output(v) for v in future.result()]
            predictions = [output.prediction for output in outputs]
            probabilities = [output.logged_probabilities for output in outputs]
            errors = [output.problem for output in outputs]
            if any(errors):
                self.metrics.shadow_errors.labels(target.model, str(target.version)).inc()
        self._count_outcome(target, failed=all(problem is not None for problem in errors))
        model, model_id, version, arm, routing_version = target
        latency_ms, record = seconds * 1000.0, self._record
        row = iter(zip(predictions, errors, probabilities, strict=True))
        for request in call.requests:
            for request_id, user_id, bucketed_by in zip(
                request.request_ids, request.user_ids, request.bucketed_by, strict=True
            ):
                prediction, problem, probability_list = next(row)
                record(
                    PredictionRecord(
                        model_id, request_id, user_id, request.time, version, arm, "shadow",
                        routing_version, bucketed_by, prediction, latency_ms, problem, probability_list,
                    )
                )  # fmt: skip
        failed = sum(problem is not None for problem in errors)
        by_bucket = Counter(by for request in call.requests for by in request.bucketed_by)
        self.metrics.shadow_predictions(model, version, arm, seconds, by_bucket, failed)
        self._done()

    def _export_memory(self, call: ShadowCall) -> None:
        """The shadow process's memory and its new restarts, as the runner measured them."""
        use = call.runner.memory()
        if use is None:
            return
        model, version = call.target.model, call.target.version
        if use.rss_bytes is not None:
            self.metrics.shadow_rss.labels(model, str(version)).set(use.rss_bytes)
        runner, seen = self._restarts_seen.get((model, version), (None, {}))
        if runner is None or runner() is not call.runner:
            seen = {}  # a new runner for this version (the routing changed): it counts from zero
        for reason, count in use.restarts.items():
            if (new := count - seen.get(reason, 0)) > 0:
                self.metrics.shadow_restarts.labels(model, str(version), reason).inc(new)
        self._restarts_seen[(model, version)] = (weakref.ref(call.runner), use.restarts)

    def _done(self) -> None:
        self._inflight -= 1
        self._settle()

    def _settle(self) -> None:
        self.metrics.shadow_inflight.set(self._inflight)
        if self._inflight == 0 and not self._gathering:
            self._idle.set()

    def _circuit_open(self, target: ShadowTarget) -> bool:
        breaker = self._breakers.get((target.model, target.version))
        return breaker is not None and breaker.failures >= self.breaker_failures

    def _count_outcome(self, target: ShadowTarget, *, failed: bool) -> None:
        breaker = self._breakers.setdefault((target.model, target.version), _Breaker())
        breaker.probing = False
        if not failed:
            if breaker.failures >= self.breaker_failures:
                log.info("%s v%s: shadow recovered, circuit closed", target.model, target.version)
            breaker.failures = 0
            return
        breaker.failures += 1
        if breaker.failures == self.breaker_failures:
            log.warning(
                "%s v%s: %d shadow calls failed in a row; scoring only a probe every %d calls",
                target.model,
                target.version,
                breaker.failures,
                self.probe_every,
            )
