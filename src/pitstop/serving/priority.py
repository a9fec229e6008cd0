"""Background threads yield the CPU to the event loop: lower OS scheduling priority (Linux).

The prediction log's writer (inside SQLite) and shadow scoring (inside NumPy or Cython code) spend
much of their time without the interpreter lock, and then compete with the event loop for the CPU
as equals: a served request arriving meanwhile gets a share of a core instead of all of it. With a
higher nice value the kernel runs the event loop first whenever both are ready, and the background
thread still gets the CPU the loop leaves idle (and, under full load, a guaranteed share: at nice 5
about a quarter against one busy thread, at nice 10 about a tenth), so it is slowed, not starved.

Linux schedules threads on their own, so the calling thread alone changes. Elsewhere, or when the
system refuses, nothing changes.
"""

from __future__ import annotations

import os
import sys
import threading

MAX_NICENESS = 19
WRITER_NICENESS = 5  # the prediction log must keep up: records are only dropped when its queue is full
SHADOW_NICENESS = 10  # a shadow that falls behind is skipped (counted), never waited for


def lower_thread_priority(by: int) -> bool:
    """Raise the calling thread's nice value by `by` (at most to 19); True when it changed."""
    if not sys.platform.startswith("linux"):
        return False
    thread = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(MAX_NICENESS, current + by))
    except OSError:
        return False
    return True
