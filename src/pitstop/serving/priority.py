"""The prediction log's writer yields the CPU to the event loop: a lower OS priority (Linux).

The writer spends most of its time inside SQLite (or psycopg), without the interpreter lock, and at
the event loop's priority it competes with the loop for the CPU as an equal: a served request
arriving during a write gets a share of a core instead of all of it. With a higher nice value the
kernel runs the event loop first whenever both are ready; the writer still gets the CPU the loop
leaves idle and, under full load, about a quarter of a core against one busy thread (nice 5), so it is
slowed, not starved.

Shadow scoring stays at the loop's priority on purpose: its call durations are evidence (the shadow
phase compares the challenger's latency with the champion's), and a deprioritised thread would
measure its waits for the CPU as the model's slowness. Tried, it failed good challengers on latency.

Linux schedules threads on their own, so the calling thread alone changes. Elsewhere, or when the
system refuses, nothing changes.
"""

from __future__ import annotations

import os
import sys
import threading
from contextlib import suppress

MAX_NICENESS = 19
WRITER_NICENESS = 5


def lower_thread_priority(by: int) -> None:
    """Raise the calling thread's nice value by `by` (at most to 19)."""
    if not sys.platform.startswith("linux"):
        return
    thread = threading.get_native_id()
    with suppress(OSError):
        current = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(MAX_NICENESS, current + by))
