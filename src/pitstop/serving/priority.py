"""Work nobody waits for yields the CPU to the event loop: lower OS priorities (Linux), and timing
that does not charge a model for the CPU it was refused.

The prediction log's writer spends most of its time inside SQLite (or psycopg), without the
interpreter lock, and at the event loop's priority it would compete with the loop for the CPU as an
equal: a served request arriving during a write would get a share of a core instead of all of it.
With a higher nice value the kernel runs the event loop first whenever both are ready; the writer
still gets the CPU the loop leaves idle and, under full load, about a quarter of a core against one
busy thread (nice 5), so it is slowed, not starved.

Shadow scoring goes further (`isolation.py`): its own process, at the idle scheduling class, gets a
CPU only when nothing else wants it. Its call durations are evidence (the shadow phase compares the
challenger's latency with the champion's), so every in-process model call is timed by `own_seconds`:
its wall time minus the time its thread spent ready to run but waiting for a CPU. Waits of the
model's own (sleep, I/O, the interpreter lock) still count; the CPU its priority refused it does not.
Timed on the wall clock alone, a deprioritised good challenger looked slow and failed on latency.
The shadow timeout counts the same way (`shadow.py`): a call the busy CPU held up is skipped as
`starved`, not recorded as the challenger's timeout.

Linux schedules threads on their own, so only the calling thread (or process) changes. Elsewhere, or
when the system refuses, nothing changes, and `own_seconds` is the wall time.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from contextlib import suppress
from time import perf_counter
from typing import NamedTuple, TypeVar

MAX_NICENESS = 19
WRITER_NICENESS = 5
_SCHEDSTAT = "/proc/thread-self/schedstat"  # "<ns on a CPU> <ns waiting for one> <time slices>"

T = TypeVar("T")


def lower_thread_priority(by: int) -> None:
    """Raise the calling thread's nice value by `by` (at most to 19)."""
    if not sys.platform.startswith("linux"):
        return
    thread = threading.get_native_id()
    with suppress(OSError):
        current = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(MAX_NICENESS, current + by))


def idle_priority() -> None:
    """Run the calling thread only when a CPU has nothing else to do (SCHED_IDLE); else nice 19."""
    idle = getattr(os, "SCHED_IDLE", None)
    if idle is not None:
        with suppress(OSError):
            os.sched_setscheduler(0, idle, os.sched_param(0))
            return
    lower_thread_priority(MAX_NICENESS)


class ProcFile:
    """A /proc file kept open and re-read with one `pread`: a fresh open costs about ten times as
    much (39 against 4.5 µs on the benchmark machine), and model calls read one twice each. The file
    closes when the object goes."""

    def __init__(self, path: str) -> None:
        try:
            self._fd: int | None = os.open(path, os.O_RDONLY)
        except OSError:
            self._fd = None

    def read(self) -> bytes:
        """The file's content now (empty when it cannot be read)."""
        if self._fd is None:
            return b""
        try:
            return os.pread(self._fd, 4096, 0)
        except OSError:
            return b""

    def __del__(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


_this_thread = threading.local()  # its `schedstat`: the calling thread's ProcFile, opened on first use


def normal_priority(pid: int) -> None:
    """Put process `pid` back in the normal scheduling class (best effort): a process killed at idle
    priority needs a CPU to exit, and on a busy machine it would wait for one indefinitely."""
    with suppress(OSError, AttributeError):
        os.sched_setscheduler(pid, os.SCHED_OTHER, os.sched_param(0))


def cpu_wait_seconds() -> float:
    """How long the calling thread has waited, ready to run, for a CPU (0.0 where Linux does not say)."""
    schedstat = getattr(_this_thread, "schedstat", None)
    if schedstat is None:
        schedstat = _this_thread.schedstat = ProcFile(_SCHEDSTAT)
    try:
        return int(schedstat.read().split()[1]) / 1e9
    except (IndexError, ValueError):
        return 0.0


class CpuTime(NamedTuple):
    """A process's CPU accounting at one moment: seconds on a CPU and seconds waiting for one, so far,
    and whether it is ready to run (running, or waiting for a CPU) rather than sleeping."""

    pid: int
    ran: float
    waited: float
    runnable: bool


class ProcessCpu:
    """Reads the CPU accounting of process `pid` (its main thread) from its kept-open /proc files."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._schedstat = ProcFile(f"/proc/{pid}/schedstat")
        self._stat = ProcFile(f"/proc/{pid}/stat")

    def read(self) -> CpuTime | None:
        """The accounting now, or None where Linux does not say (or the process is gone)."""
        try:
            ran, waited = self._schedstat.read().split()[:2]
            state = self._stat.read().rsplit(b")", 1)[1].split()[0]  # after "pid (command name)"
        except (IndexError, ValueError):
            return None
        return CpuTime(self.pid, int(ran) / 1e9, int(waited) / 1e9, state == b"R")


def own_seconds_so_far(elapsed: float, before: CpuTime | None, now: CpuTime | None) -> float:
    """Of `elapsed` seconds of a call in another process, the seconds that were the call's own.

    That is `elapsed` less the process's waits for a CPU. Linux adds a wait to the count only when it
    ends (the process gets the CPU), so while the process is ready to run, the wait in progress is not
    counted yet: then only its CPU time is known to be its own. Without accounting for both moments
    of the same process (another platform, a restarted child) all of `elapsed` is.

    >>> own_seconds_so_far(1.0, CpuTime(7, 0.1, 0.0, False), CpuTime(7, 0.2, 0.6, False))
    0.4
    >>> own_seconds_so_far(1.0, CpuTime(7, 0.1, 0.0, False), CpuTime(7, 0.2, 0.3, True))
    0.1
    """
    if before is None or now is None or before.pid != now.pid:
        return elapsed
    if now.runnable:
        return round(now.ran - before.ran, 9)
    return round(max(0.0, elapsed - (now.waited - before.waited)), 9)


def own_seconds(call: Callable[[], T]) -> tuple[T, float]:
    """`call()`'s result and its duration without the time its thread waited for a CPU.

    The clock is read outside the two readings of the wait counter: a thread preempted between a
    reading and the clock (the return from the read is a likely moment) then has that wait counted
    as its own, never subtracted from time it did not measure. So a call is never shorter than its
    own sleep.
    """
    started = perf_counter()
    waited = cpu_wait_seconds()
    result = call()
    waited = cpu_wait_seconds() - waited
    return result, max(0.0, perf_counter() - started - waited)
