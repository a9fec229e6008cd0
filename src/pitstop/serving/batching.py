"""Micro-batching: concurrent requests for one model become one `predict` call.

Requests are queued; a batch starts when it holds `max_size` rows, when no more requests are on
their way, or when a queued request has waited its longest wait (`max_wait`, or a longer one given
at submit, as shadow calls do), whichever comes first. While a batch runs, the next one fills, so
under load the batch size grows by itself and each request pays the fixed cost of `predict` (input
checks, frame building) once per batch, while a lone request hardly waits at all. Requests that are
due go first; results are split back to their requests in order.

Patient work (submitted with a longer wait than `max_wait`: shadow calls) may fill batches of up to
`patient_max_size` rows when no one waits on the batch. Nobody waits for it, and the fixed cost of a
`predict` call (most of scikit-learn's cost at tens of rows) is then paid once per hundreds of rows;
a shadow that falls behind catches up in bigger, cheaper batches instead of growing its backlog.

A failing batch is retried one request at a time, so one bad request cannot fail its neighbours;
a model that fails every request is not retried until it succeeds again (a broken shadow must not
cost the served path a predict call per request).

Each request may bring its rows' request ids; the run function gets the batch's ids beside its rows
(None for a row submitted without one, as warm-up calls are), so a remote model is called with the
ids of the requests it serves.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from pitstop.serving.errors import RunnerClosedError

Row = dict[str, Any]


class Timed(NamedTuple):
    """A batch's predictions with the model call's own duration, measured where the call ran."""

    values: list[float]
    seconds: float


RowIds = list[str | None]  # the request id of each row of a batch; None where none was given
RunBatch = Callable[[list[Row], RowIds], Awaitable["list[float] | Timed"]]
_TURNS = 3  # event-loop turns a request needs from its bytes arriving to reaching the queue


class TimedFuture(asyncio.Future[list[float]]):
    """A request's future that also says how long the model call that computed it took.

    `call_seconds` is the duration of the `predict` call of the batch (or the single retry) that
    produced the result: the model's own latency, without time spent queued or waiting for company
    (as the run function timed it when it returns `Timed`, else as the batcher saw it).
    It is what the prediction log records, so a patient shadow batch and a served batch compare fairly.
    """

    call_seconds: float | None = None


@dataclass(slots=True, eq=False)
class _Item:
    rows: list[Row]
    ids: RowIds
    future: TimedFuture
    due: float  # loop time by which it should be running
    patient: bool  # submitted with a longer wait than the batcher's: nobody waits for it


class MicroBatcher:
    """Queues row lists and runs them through `run` in bounded batches, `concurrency` at a time."""

    def __init__(
        self,
        run: RunBatch,
        *,
        max_size: int,
        max_wait: float,
        patient_max_size: int | None = None,
        concurrency: int = 1,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        if max_size < 1:
            raise ValueError(f"max_size must be >= 1, got {max_size}")
        if patient_max_size is not None and patient_max_size < max_size:
            raise ValueError(f"patient_max_size must be >= max_size ({max_size}), got {patient_max_size}")
        if max_wait < 0:
            raise ValueError(f"max_wait must be >= 0, got {max_wait}")
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self.max_size, self.max_wait, self.concurrency = max_size, max_wait, concurrency
        self.patient_max_size = max_size if patient_max_size is None else patient_max_size
        self._run = run
        self.on_batch = on_batch  # called with the row count of every batch (metrics)
        self._pending: deque[_Item] = deque()
        self._pending_rows = 0
        self._urgent = 0  # queued items someone waits for
        self._running: list[_Item] = []
        self._inflight: set[asyncio.Task[None]] = set()
        self._waiter: asyncio.Future[None] | None = None
        self._waiting_until = math.inf  # when the sleeping loop will look again
        self._next_due = math.inf
        self._loop_task: asyncio.Task[None] | None = None
        self._closed = False
        self._submitted = 0
        self._recent: tuple[float, float] | None = None  # moving averages of (seconds, rows) per batch
        self._failing = False  # every request of the last failed batch failed on its own too

    @property
    def queued_rows(self) -> int:
        return self._pending_rows

    def backlog_seconds(self) -> float:
        """How long the queued rows will take at the recently measured speed (0 before any batch).

        The speed is recent seconds over recent rows (each a moving average per batch), not an average
        of per-row times: a model whose calls cost the same whatever their size (a remote service, a
        fixed wait) would otherwise be judged by its one-row warm-up call, at its slowest per row, and
        its first shadow calls skipped for a backlog it does not have.
        """
        if self._recent is None:
            return 0.0
        seconds, rows = self._recent
        return self._pending_rows * seconds / rows / self.concurrency

    def submit(
        self,
        rows: list[Row],
        *,
        max_wait: float | None = None,
        request_ids: Sequence[str] | None = None,
    ) -> asyncio.Future[list[float]]:
        """Queue `rows`; the future resolves to their predictions, in order. Never blocks.

        `max_wait` overrides the batcher's for this request: work nobody waits for (shadow scoring)
        may wait longer, for bigger and so cheaper batches, without delaying anyone else.
        `request_ids` (one per row) reach the run function with the rows.
        """
        if request_ids is not None and len(request_ids) != len(rows):
            raise ValueError(f"{len(request_ids)} request_ids for {len(rows)} rows")
        if self._closed:
            raise RunnerClosedError("this model runner is closed")
        loop = asyncio.get_running_loop()
        future = TimedFuture(loop=loop)
        patient = max_wait is not None and max_wait > self.max_wait
        due = loop.time() + (max_wait if max_wait is not None else self.max_wait)
        ids: RowIds = [None] * len(rows) if request_ids is None else list(request_ids)
        self._pending.append(_Item(rows, ids, future, due, patient))
        self._pending_rows += len(rows)
        self._urgent += not patient
        self._submitted += 1
        self._next_due = min(self._next_due, due)
        if self._loop_task is None:
            self._loop_task = loop.create_task(self._serve(), name="pitstop-batcher")
        if due < self._waiting_until or self._pending_rows >= self._batch_limit():
            self._wake()
        return future

    async def close(self, timeout: float = 5.0) -> None:
        """Finish what is queued (up to `timeout` seconds), then stop; later submits raise."""
        self._closed = True
        self._wake()
        if self._loop_task is not None:
            done: set[asyncio.Task[None]] = set()
            if self._live():  # else the only work left is abandoned (timed-out shadow calls)
                done, _ = await asyncio.wait({self._loop_task}, timeout=timeout)
            if not done:
                self._loop_task.cancel()
                await asyncio.gather(self._loop_task, return_exceptions=True)
        for item in self._pending:
            if not item.future.done():
                item.future.set_exception(RunnerClosedError("this model runner was closed"))
        self._pending.clear()
        self._pending_rows = self._urgent = 0

    def _live(self) -> bool:
        """Whether any queued or running request still awaits its result."""
        return any(not item.future.done() for item in (*self._pending, *self._running))

    def _batch_limit(self) -> int:
        """The most rows the next batch may hold: `max_size` while anyone waits on a queued item."""
        return self.max_size if self._urgent else self.patient_max_size

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._pending:
                if self._closed:
                    await asyncio.gather(*self._inflight, return_exceptions=True)
                    return
                await self._sleep(None)
            await self._gather_company(loop)
            while len(self._inflight) >= self.concurrency:
                await asyncio.wait(self._inflight, return_when=asyncio.FIRST_COMPLETED)
            batch = self._take(loop.time())
            if not batch:
                continue
            if self.concurrency == 1:
                await self._execute(batch)
                continue
            task = loop.create_task(self._execute(batch))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def _gather_company(self, loop: asyncio.AbstractEventLoop) -> None:
        """Let the batch fill before it runs, never past the first queued request's due time.

        Requests already on their way (read from the network, being parsed) reach the queue within
        a few event-loop turns, so the batcher keeps yielding while each turn brings more, and stops
        at the first quiet one: no company is waited for that is not coming, and a lone request
        pays microseconds, not `max_wait`. Only patient work (shadow calls, due later than
        `max_wait`) sleeps on a timer, to fill bigger batches.
        """
        while not self._closed and self._pending_rows < self._batch_limit():
            remaining = self._next_due - loop.time()
            if remaining <= 0:
                return
            if remaining > self.max_wait:
                await self._sleep(remaining - self.max_wait)  # patient work only; woken by urgent work
                continue
            before = self._submitted
            for _ in range(_TURNS):
                await asyncio.sleep(0)
            if self._submitted == before:
                return

    async def _sleep(self, seconds: float | None) -> None:
        """Wait until woken (a new item is due sooner, the batch is full, closing) or `seconds` pass."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiter = waiter
        self._waiting_until = math.inf if seconds is None else loop.time() + seconds
        handle = None if seconds is None else loop.call_later(seconds, _resolve, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            self._waiting_until = -math.inf  # awake: submits need not wake it
            if handle is not None:
                handle.cancel()

    def _take(self, now: float) -> list[_Item]:
        """Up to `_batch_limit()` rows' worth of requests, those due first, skipping abandoned ones."""
        batch: list[_Item] = []
        kept: list[_Item] = []
        rows, limit = 0, self._batch_limit()
        soon = now + self.max_wait  # due within one ordinary wait counts as due (timers fire early)
        due = [item for item in self._pending if item.due <= soon]
        later = [item for item in self._pending if item.due > soon]
        for item in (*due, *later):
            if item.future.done():  # cancelled by its caller (a shadow timeout): nothing to compute
                continue
            if batch and rows + len(item.rows) > limit:
                kept.append(item)
                continue
            batch.append(item)
            rows += len(item.rows)
        kept.sort(key=lambda item: item.due)
        self._pending = deque(kept)
        self._pending_rows = sum(len(item.rows) for item in kept)
        self._urgent = sum(not item.patient for item in kept)
        self._next_due = kept[0].due if kept else math.inf
        return batch

    async def _execute(self, batch: list[_Item]) -> None:
        self._running.extend(batch)
        started = time.perf_counter()
        try:
            await self._execute_batch(batch)
        finally:
            for item in batch:
                self._running.remove(item)
            seconds, rows = time.perf_counter() - started, max(1, sum(len(item.rows) for item in batch))
            previous = self._recent
            self._recent = (
                (seconds, rows)
                if previous is None
                else (0.8 * previous[0] + 0.2 * seconds, 0.8 * previous[1] + 0.2 * rows)
            )

    async def _execute_batch(self, batch: list[_Item]) -> None:
        rows = [row for item in batch for row in item.rows]
        ids = [rid for item in batch for rid in item.ids]
        if self.on_batch is not None:
            self.on_batch(len(rows))
        started = time.perf_counter()
        try:
            results, seconds = _timed(await self._run(rows, ids), started)
            if len(results) != len(rows):
                raise ValueError(f"model returned {len(results)} predictions for {len(rows)} rows")
        except asyncio.CancelledError:
            for item in batch:
                _fail(item, RunnerClosedError("this model runner was closed"))
            raise
        except Exception as error:
            if len(batch) == 1 or self._failing:
                for item in batch:
                    _fail(item, error)
                return
            await self._execute_one_by_one(batch)
            return
        self._failing = False
        offset = 0
        for item in batch:
            end = offset + len(item.rows)
            if not item.future.done():
                item.future.call_seconds = seconds
                item.future.set_result(results[offset:end])
            offset = end

    async def _execute_one_by_one(self, batch: list[_Item]) -> None:
        """Isolate the bad requests of a failed batch. If every one fails, the model is failing for
        everyone: later failed batches fail as a whole, without retries, until a batch succeeds."""
        succeeded = False
        for item in batch:
            if item.future.done():
                continue
            started = time.perf_counter()
            try:
                results, seconds = _timed(await self._run(item.rows, item.ids), started)
                if len(results) != len(item.rows):
                    raise ValueError(f"model returned {len(results)} predictions for {len(item.rows)} rows")
            except Exception as error:
                _fail(item, error)
            else:
                succeeded = True
                if not item.future.done():
                    item.future.call_seconds = seconds
                    item.future.set_result(results)
        self._failing = not succeeded


class BatchedRunner:
    """The `Runner` methods of a runner whose work goes through its `MicroBatcher` (`self.batcher`)."""

    batcher: MicroBatcher

    def submit(
        self,
        rows: list[Row],
        *,
        max_wait: float | None = None,
        request_ids: Sequence[str] | None = None,
    ) -> asyncio.Future[list[float]]:
        return self.batcher.submit(rows, max_wait=max_wait, request_ids=request_ids)

    async def predict(self, rows: list[Row]) -> list[float]:
        return await self.submit(rows)

    def backlog_seconds(self) -> float:
        return self.batcher.backlog_seconds()


def model_seconds(future: asyncio.Future[Any], waited: float) -> float:
    """The model call's own duration when the batcher measured it; else the time waited (a failure,
    a timeout, or a runner that does not batch)."""
    seconds = getattr(future, "call_seconds", None)
    return waited if seconds is None else float(seconds)


def _timed(result: list[float] | Timed, started: float) -> tuple[list[float], float]:
    """A run function's predictions and duration: its own timing when it gives one, else the wall time."""
    if isinstance(result, Timed):
        return result.values, result.seconds
    return result, time.perf_counter() - started


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _fail(item: _Item, error: Exception) -> None:
    if not item.future.done():
        item.future.set_exception(error)
