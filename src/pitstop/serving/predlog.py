"""The prediction log: a record per served and per shadow prediction, written in batches off the request path.

Requests append to a bounded in-memory queue and never wait for the store. A background writer takes
up to `batch_size` records whenever that many are queued or `flush_interval` has passed, and writes
them in one transaction on a thread of its own, at a lower OS priority than the event loop
(`priority.py`). A write that fails because of the store (down, unreachable, locked) is counted and
retried with backoff; the records stay queued (or spooled, below) meanwhile. A write the store
refuses for its data is split in halves until the refused records are found (`write_isolating`):
the others are written, the refused ones set aside as dead letters (`deadletter.py`, counted), so no
record can block the ones behind it. Only a full queue (or a full spool) drops records, and each
drop is counted.

With a spool (`spool.py`, `serving.spool`), a write that fails because of the store moves the
records queued then to local disk at once; while the store stays down, each later pass (after the
backoff) tries the store, and during the backoff what is queued goes to the spool every
`flush_interval`, so records wait in memory for about that long. Each pass of the writer first
drains the spool (oldest first), then writes the full batches queued when it began (under traffic
faster than the writes, a pass that waited for the queue to empty would never drain the spool
again). Before it writes a spooled batch, the gateway announces its backlog in the store
(`store.spool_backlog`; the first store access of a pass, the probe that finds the store back) so
that the controller judges no window still missing records; the announcement is withdrawn once the
spool is empty. Beyond the spool's bound the newest records are dropped (counted as `spool_full`).
Without a spool, the records wait in the queue.
On PostgreSQL the writer also keeps the log's days created ahead (`store.predictions.partitions`),
after its first pass that finds the store up and every `DAYS_CHECK_INTERVAL` after, so records go to
their day's partition even where no controller runs; a failure there is only logged (the DEFAULT
partition takes the records, and the next check moves them to their day).
`flush()` writes everything queued and spooled (replay calls it between steps); shutdown spools what it
could not write.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from datetime import UTC, datetime
from functools import partial
from itertools import islice
from pathlib import Path
from typing import NamedTuple, TypeVar

from sqlalchemy import Engine

from pitstop.errors import StoreUnavailableError
from pitstop.serving.deadletter import DeadLetter, DeadLetterFile
from pitstop.serving.metrics import GatewayMetrics
from pitstop.serving.priority import WRITER_NICENESS, lower_thread_priority
from pitstop.serving.refusal import refused_data
from pitstop.serving.spool import PredictionSpool, SpoolSize
from pitstop.store import spool_backlog
from pitstop.store.engine import write_transaction
from pitstop.store.predictions.partitions import keep_days_ahead
from pitstop.store.predictions.write import PredictionRecord, insert_new_predictions, insert_predictions

log = logging.getLogger(__name__)

MAX_BACKOFF = 5.0
DAYS_CHECK_INTERVAL = 3600.0  # seconds between checks that the log's days ahead exist
DAYS_RETRY = 60.0  # seconds before a failed check is tried again
T = TypeVar("T")


def write_records(engine: Engine, records: list[PredictionRecord]) -> None:
    """Insert records in one transaction (`store.predictions.write`: COPY or multi-row INSERTs)."""
    with write_transaction(engine) as conn:
        insert_predictions(conn, records)


def write_new_records(engine: Engine, records: list[PredictionRecord]) -> None:
    """Insert, in one transaction, the records the store does not hold yet (spooled ones)."""
    with write_transaction(engine) as conn:
        insert_new_predictions(conn, records)


class WriteOutcome(NamedTuple):
    """What became of a batch: its first `settled` records are done, written or `refused` (set aside).

    `outage` is the store's own failure that stopped the write: the records from `settled` on were
    not written and stay queued.
    """

    settled: int
    refused: list[tuple[int, BaseException]]  # (index in the batch, the store's refusal)
    outage: BaseException | None

    @property
    def written(self) -> int:
        return self.settled - len(self.refused)


def write_isolating(write: Callable[[list[T]], None], records: Sequence[T]) -> WriteOutcome:
    """Write `records` with `write`, in one call when the store takes them all.

    When the store refuses the data (`refusal.refused_data`), the batch is split in halves, each
    written alone, down to single records: the refused ones are set aside, every other record is
    written, in order. At most 2n - 1 writes for n records, a few dozen for one bad record in a
    thousand. The store's own failure stops the work: what is written stays written, the rest waits.
    """
    refused: list[tuple[int, BaseException]] = []
    pending = [(0, len(records))]  # ranges still to write; the leftmost on top, so order is kept
    while pending:
        start, end = pending.pop()
        try:
            write(list(records[start:end]))
        except Exception as error:
            if not refused_data(error):
                return WriteOutcome(start, refused, error)
            if end - start == 1:
                refused.append((start, error))
                continue
            middle = (start + end) // 2
            pending += [(middle, end), (start, middle)]
    return WriteOutcome(len(records), refused, None)


class PredictionLog:
    """A bounded queue of prediction records and the background task that writes them.

    Records the store refuses for their data go to `dead_letters` (a `DeadLetterFile`; without one
    they are only counted and logged), and are counted in `dead_lettered` and in `/metrics`. Records
    the store cannot take while it is down go to `spool` (without one, they wait in the queue).
    """

    def __init__(
        self,
        engine: Engine,
        metrics: GatewayMetrics,
        *,
        queue_size: int,
        batch_size: int,
        flush_interval: float,
        dead_letters: DeadLetterFile | None = None,
        spool: PredictionSpool | None = None,
        identity: str = "",
    ) -> None:
        self.engine, self.metrics, self.dead_letters, self.spool = engine, metrics, dead_letters, spool
        self.identity = identity  # the gateway's, in the store's backlog announcements
        self._backlog_name = uuid.uuid4().hex  # announced while this log drains a spool
        self._announced = False
        self.queue_size, self.batch_size, self.flush_interval = queue_size, batch_size, flush_interval
        self._queue: deque[PredictionRecord] = deque()
        self._executor = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix="pitstop-predlog",
            initializer=lower_thread_priority,
            initargs=(WRITER_NICENESS,),
        )
        self._lock = asyncio.Lock()
        self._batch_ready: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._failures = 0
        self.last_error: str | None = None
        self.dead_lettered = 0
        self.last_dead_letter: str | None = None
        self.spooled = 0  # records this process moved to the spool
        self.spool_dropped = 0  # records the full spool could not take
        self.spool_size = SpoolSize(0, 0)  # at the writer's last pass, over every process's files
        self._unreadable_counted = 0
        self._days_due = 0.0  # time.monotonic() of the next check of the log's days ahead

    @property
    def depth(self) -> int:
        return len(self._queue)

    @property
    def healthy(self) -> bool:
        """False while writes fail because of the store (a refused record is set aside, not retried)."""
        return self.last_error is None

    def append(self, record: PredictionRecord) -> bool:
        """Queue one record without blocking; False (and counted) when the queue is full."""
        if len(self._queue) >= self.queue_size:
            self.metrics.log_dropped.labels("queue_full").inc()
            return False
        self._queue.append(record)
        if len(self._queue) >= self.batch_size and self._batch_ready is not None:
            self._batch_ready.set()
        return True

    def start(self) -> None:
        if self._task is None:
            self._batch_ready = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="pitstop-predlog")

    async def flush(self) -> None:
        """Write every spooled and queued record; raises StoreUnavailableError when a write fails
        (the records are spooled, or kept queued without a spool)."""
        if not await self._write_pending(until_empty=True):
            raise StoreUnavailableError(f"prediction log: {self.last_error}")

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop the writer after trying, for up to `timeout` seconds, to write what is queued; what
        is still queued then goes to the spool (dropped and counted without one)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        deadline = asyncio.get_running_loop().time() + timeout
        while self._queue and asyncio.get_running_loop().time() < deadline:
            if not await self._write_one_batch():
                await self._spool_queue()
                await asyncio.sleep(min(0.2, max(0.0, deadline - asyncio.get_running_loop().time())))
        before = len(self._queue) + 1
        while 0 < len(self._queue) < before:  # what came while it was spooled goes too
            before = len(self._queue)
            await self._spool_queue()
        if self._queue:
            log.error("prediction log: %d records could not be written before exit", len(self._queue))
            self.metrics.log_dropped.labels("shutdown").inc(len(self._queue))
            self._queue.clear()
        self.metrics.log_queue.set(0)
        self._executor.shutdown(wait=True)

    async def _run(self) -> None:
        assert self._batch_ready is not None
        while True:
            if len(self._queue) < self.batch_size:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for returns when the event
                # is set in the turn the task is cancelled, and the cancellation is lost (stop hangs)
                with suppress(TimeoutError):
                    async with asyncio.timeout(self.flush_interval):
                        await self._batch_ready.wait()
            self._batch_ready.clear()
            self.metrics.log_queue.set(len(self._queue))
            try:
                written = await self._write_pending(until_empty=False)
            except Exception:  # a fault of ours: the writer must outlive it, or the log stops
                log.exception("prediction log writer failed; retrying")
                self._failures += 1
                written = False
            if not written:
                await self._back_off(min(MAX_BACKOFF, self.flush_interval * 2 ** min(self._failures, 10)))

    async def _back_off(self, seconds: float) -> None:
        """Wait `seconds` before trying the store again. With a spool, what is queued meanwhile goes
        to disk every `flush_interval` instead of waiting in memory for the store's next probe: a
        gateway killed during an outage then loses at most that interval's records."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(left, self.flush_interval))
            if self.spool is not None and self._queue and not await self._spool_queue():
                await asyncio.sleep(max(deadline - time.monotonic(), 0.0))  # the spool fails too
                return

    async def _write_pending(self, *, until_empty: bool) -> bool:
        """One pass: drain the spool, then write the queue (the full batches queued when the pass
        began, or one partial batch; or all of it).

        False when the store failed; with a spool, every record still queued then goes to it. A pass
        writes no more than was queued when it began: while requests come faster than batches are
        written the queue never empties, and a pass that ran until it did would never again drain the
        spool (other gateways' files too), renew the days ahead, or measure the spool.
        """
        try:
            if not await self._drain_spool():
                await self._spool_queue()
                return False
            batches = max(1, len(self._queue) // self.batch_size)
            while self._queue and (until_empty or batches > 0):
                if not await self._write_one_batch():
                    await self._spool_queue()
                    return False
                batches -= 1
            await self._keep_days_ahead()
            return True
        finally:
            await self._measure_spool()

    async def _keep_days_ahead(self) -> None:
        if time.monotonic() < self._days_due or self.engine.dialect.name != "postgresql":
            return
        call = partial(keep_days_ahead, self.engine, datetime.now(UTC).timestamp())
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, call)
        except Exception as error:  # the store is down, or a reader held the log's lock too long
            log.warning("prediction log: days ahead not created (%s: %s)", type(error).__name__, error)
            self._days_due = time.monotonic() + DAYS_RETRY
            return
        self._days_due = time.monotonic() + DAYS_CHECK_INTERVAL

    async def _drain_spool(self) -> bool:
        """Write the spooled batches, oldest first; False when the store failed (the rest stay).

        Between files a full batch of the queue is written too, so a long drain does not fill it.
        """
        if self.spool is None:
            return True
        loop = asyncio.get_running_loop()
        paths = await loop.run_in_executor(self._executor, self.spool.pending)
        if paths and not await self._store_call(self._announce):
            return False
        for path in paths:
            async with self._lock:
                result = await loop.run_in_executor(self._executor, self._drain_file, path)
            if result is not None and not self._account(*result):
                return False
            if len(self._queue) >= self.batch_size and not await self._write_one_batch():
                return False
        if self._announced and not await loop.run_in_executor(self._executor, self.spool.pending):
            await self._store_call(self._withdraw)
        return True

    async def _store_call(self, call: Callable[[], None]) -> bool:
        """Run `call` on the writer's thread; False (counted as the store's failure) when it raises."""
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, call)
        except Exception as error:
            return self._account(WriteOutcome(0, [], error), [], None)
        return True

    def _announce(self) -> None:
        """Tell the controller, before any spooled record is written, that some are still to come
        (`store.spool_backlog`); renewed at every pass while the spool holds files."""
        with write_transaction(self.engine) as conn:
            spool_backlog.announce(conn, self._backlog_name, self.identity, datetime.now(UTC))
        self._announced = True

    def _withdraw(self) -> None:
        with write_transaction(self.engine) as conn:
            spool_backlog.withdraw(conn, self._backlog_name)
        self._announced = False

    def _drain_file(self, path: Path) -> tuple[WriteOutcome, list[DeadLetter], Exception | None] | None:
        """On the writer's thread: write one spooled batch and delete it once committed; None when
        another process drains it."""
        assert self.spool is not None
        with self.spool.claim(path) as records:
            if records is None:
                return None
            result = self._write_batch(records, write_new_records)
            if result[0].outage is None:
                self.spool.done(path)
            return result

    async def _spool_queue(self) -> bool:
        """Move the records queued now to the spool, a batch per file; nothing without a spool, or when
        the spool cannot be written (the records then wait in the queue, and False says so).

        Records queued meanwhile wait for the writer's next pass: moving them too would keep the writer
        spooling, never trying the store again, for as long as requests come faster than a file is
        saved (found under steady traffic: the store came back and nothing was written for a minute).
        """
        loop = asyncio.get_running_loop()
        left = len(self._queue)
        while self.spool is not None and left > 0 and self._queue:
            async with self._lock:
                batch = list(islice(self._queue, min(self.batch_size, left)))
                left -= len(batch)
                save = loop.run_in_executor(self._executor, self.spool.save, batch)
                try:
                    kept = await asyncio.shield(save)
                except asyncio.CancelledError:  # the file may be written: settle as a write does
                    await asyncio.wait([save])
                    if not save.cancelled() and save.exception() is None:
                        self._spooled(batch, save.result())
                    raise
                except Exception as error:  # a full disk or a read-only folder: keep them in memory
                    log.error("prediction log: spool not written (%s: %s)", type(error).__name__, error)
                    return False
                self._spooled(batch, kept)
        return True

    def _spooled(self, batch: list[PredictionRecord], kept: bool) -> None:
        """The batch (the queue's head) leaves the queue: kept in the spool, or dropped (it was full)."""
        for _ in batch:
            self._queue.popleft()
        if kept:
            self.spooled += len(batch)
            self.metrics.log_spooled.inc(len(batch))
        else:
            self._spool_full(len(batch))
        self.metrics.log_queue.set(len(self._queue))

    def _spool_full(self, records: int) -> None:
        before = self.spool_dropped
        self.spool_dropped += records
        self.metrics.log_dropped.labels("spool_full").inc(records)
        if before == 0 or before // 10_000 != self.spool_dropped // 10_000:
            assert self.spool is not None
            log.error(
                "prediction log: spool full (%d bytes in %s), %d records dropped so far",
                self.spool.max_bytes,
                self.spool.folder,
                self.spool_dropped,
            )

    async def _measure_spool(self) -> None:
        if self.spool is not None:
            size = await asyncio.get_running_loop().run_in_executor(self._executor, self.spool.size)
            self.spool_size = size
            unread = self.spool.unreadable - self._unreadable_counted
            if unread:  # lines of files set aside as unreadable: lost to the store, so counted
                self._unreadable_counted += unread
                self.metrics.log_dropped.labels("spool_unreadable").inc(unread)
            self.metrics.log_spool_bytes.set(size.bytes)
            self.metrics.log_spool_files.set(size.files)

    async def _write_one_batch(self) -> bool:
        """Write the oldest batch; True unless the store failed. Records leave the queue only once
        written or set aside."""
        async with self._lock:
            batch = list(islice(self._queue, self.batch_size))
            if not batch:
                return True
            write = asyncio.get_running_loop().run_in_executor(
                self._executor, self._write_batch, batch, write_records
            )
            try:
                result = await asyncio.shield(write)
            except asyncio.CancelledError:
                # The thread goes on and may commit; unless its outcome is settled here, the records
                # would stay queued and the next flush would store them a second time.
                await asyncio.wait([write])
                if not write.cancelled() and write.exception() is None:
                    self._settle(*write.result())
                raise
            except Exception as error:  # a fault of the writer itself: keep the records, retry
                result = WriteOutcome(0, [], error), [], None
            return self._settle(*result)

    def _write_batch(
        self, batch: list[PredictionRecord], write: Callable[[Engine, list[PredictionRecord]], None]
    ) -> tuple[WriteOutcome, list[DeadLetter], Exception | None]:
        """On the writer's thread: write, isolate what the store refuses, save it as dead letters.

        Returns the outcome, the dead letters, and why they could not be saved (None when they were).
        """
        outcome = write_isolating(partial(write, self.engine), batch)
        letters = [DeadLetter.of(batch[i]._asdict(), error) for i, error in outcome.refused]
        unsaved: Exception | None = None
        if letters and self.dead_letters is not None:
            try:
                self.dead_letters.save(letters)
            except Exception as error:  # a full disk or a read-only folder must not stop the log
                unsaved = error
        return outcome, letters, unsaved

    def _settle(self, outcome: WriteOutcome, letters: list[DeadLetter], unsaved: Exception | None) -> bool:
        """The batch's settled records (the queue's head) leave the queue and are counted."""
        for _ in range(outcome.settled):
            self._queue.popleft()
        self.metrics.log_queue.set(len(self._queue))
        return self._account(outcome, letters, unsaved)

    def _account(self, outcome: WriteOutcome, letters: list[DeadLetter], unsaved: Exception | None) -> bool:
        """Count a write's outcome; True unless the store failed."""
        self.metrics.log_written.inc(outcome.written)
        if letters:
            self._set_aside(letters, unsaved)
        if outcome.outage is None:
            self._failures = 0
            self.last_error = None
            return True
        self._failures += 1
        self.last_error = f"{type(outcome.outage).__name__}: {outcome.outage}"
        self.metrics.log_retries.inc()
        self.metrics.store_up.set(0)
        if self._failures == 1 or self._failures % 100 == 0:
            log.warning("prediction log write failed (%d in a row): %s", self._failures, self.last_error)
        return False

    def _set_aside(self, letters: list[DeadLetter], unsaved: Exception | None) -> None:
        """Count the dead letters; log the first and every hundredth (a client may send many)."""
        before = self.dead_lettered
        self.dead_lettered += len(letters)
        for letter in letters:
            self.metrics.log_dead_letters.labels(letter.reason).inc()
        last = letters[-1]
        self.last_dead_letter = (
            f"{last.reason}: {last.error} (request_id {ascii(last.fields.get('request_id'))[:80]})"
        )
        where = "not saved" if self.dead_letters is None else str(self.dead_letters.path)
        if unsaved is not None:
            self.metrics.log_dead_letters_unsaved.inc(len(letters))
            where = f"not saved: {type(unsaved).__name__}: {unsaved}"
        if before == 0 or before // 100 != self.dead_lettered // 100:
            log.warning(
                "prediction log: %d records refused by the store so far, set aside (%s); last: %s",
                self.dead_lettered,
                where,
                self.last_dead_letter,
            )
