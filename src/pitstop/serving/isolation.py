"""A model's calls run in a child process at idle CPU priority: shadow scoring that cannot take the
served path's CPU or interpreter lock (guarantee 1).

On a thread of the gateway, a shadow model's Python work (building a DataFrame, scikit-learn's
input checks) holds the interpreter lock the event loop needs, a millisecond at a time, whatever its
OS priority: served requests arriving meanwhile wait, and the served p99 grew by half (bench/RESULTS.md).
In its own process the shadow shares no lock with the loop, and at the idle scheduling class
(`priority.idle_priority`) the kernel gives it a CPU only when serving leaves one idle: on a machine
with a spare core it runs at full speed there, on a saturated one it falls behind and its calls are
skipped as backlog or starved (counted), never the other way round. Its durations are timed in the
child without its waits for a CPU (`priority.own_seconds`), and its timeouts leave them out
(`cpu_time`, read by the shadow scorer), so both stay fair evidence.

`ModelProcess.call` is blocking, for the runner's worker thread: it sends the rows over a pipe and
waits for the answer (the lock is released while it waits). A model's exception comes back as
itself; a child that dies (killed, out of memory, a crash in native code) fails the call in flight,
and the next call starts a new child. `close()` stops the child, killing it if a call hangs.

Children are forked from a fork server that has pitstop, pandas and scikit-learn imported once, so
a new child costs tens of milliseconds, not the seconds of a fresh interpreter; the model itself is
pickled to the child once per start.
"""

from __future__ import annotations

import multiprocessing
import pickle
import threading
from collections.abc import Callable
from contextlib import suppress
from functools import cache
from multiprocessing.connection import Connection
from typing import Any

from pitstop.serving.batching import Timed
from pitstop.serving.errors import ModelProcessError
from pitstop.serving.priority import CpuTime, ProcessCpu, idle_priority, normal_priority

Row = dict[str, Any]
Call = Callable[[list[Row]], Timed]
_PRELOAD = ["pitstop.serving.inprocess", "sklearn.base"]  # imported once, in the fork server
_STOP_SECONDS = 2.0


@cache
def _context() -> Any:
    """Fork server where the platform has one (Linux, macOS), else spawn."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)
    return context


class ModelProcess:
    """Runs `call(rows)` in a child process at idle priority; `setup()` runs there first."""

    def __init__(self, call: Call, *, setup: Callable[[], object] | None = None, name: str = "model") -> None:
        self._call, self._setup, self.name = call, setup, name
        self._lock = threading.Lock()  # one call at a time over the pipe
        self._process: Any = None
        self._conn: Connection | None = None
        self._cpu: ProcessCpu | None = None
        self._closed = False
        self._start()

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def cpu_time(self) -> CpuTime | None:
        """The child's CPU accounting (None without a child, or off Linux)."""
        cpu = self._cpu
        return None if cpu is None else cpu.read()

    def call(self, rows: list[Row]) -> Timed:
        """The child's answer for `rows` (blocking); raises what the model raised, or ModelProcessError."""
        with self._lock:
            if self._closed:
                raise ModelProcessError(f"{self.name}: the model's process is closed")
            if self._conn is None:
                self._start()
            assert self._conn is not None
            try:
                self._conn.send(rows)
                ok, answer = self._conn.recv()
            except (EOFError, OSError) as error:
                raise ModelProcessError(f"{self.name}: {self._lost()}") from error
        if not ok:
            raise answer
        return Timed(*answer)

    def close(self) -> None:
        """Stop the child: it ends at once when idle, and is killed when a call keeps it busy."""
        self._closed = True
        self._cpu = None
        process, conn = self._process, self._conn
        if process is None:
            return
        if conn is not None:
            with suppress(OSError):
                conn.send(None)  # a stop request; an idle child reads it at once
            conn.close()
        _reap(process)

    def _start(self) -> None:
        parent, child = multiprocessing.Pipe()
        process = _context().Process(
            target=_serve, args=(child, self._call, self._setup), name=f"pitstop-{self.name}", daemon=True
        )
        process.start()
        child.close()
        try:
            ok, answer = parent.recv()  # the child's word that the model is loaded
        except (EOFError, OSError) as error:
            parent.close()
            _reap(process)
            raise ModelProcessError(
                f"{self.name}: the model's process exited while starting (exit code {process.exitcode}); "
                "its error is on stderr. A script that starts a gateway needs `if __name__ == '__main__':`, "
                "as multiprocessing requires, or set serving.shadow_process: false"
            ) from error
        if not ok:
            parent.close()
            _reap(process)
            raise answer
        self._process, self._conn, self._cpu = process, parent, ProcessCpu(process.pid)

    def _lost(self) -> str:
        """Forget a dead (or unreachable) child, saying why; the next call starts a new one."""
        process, conn = self._process, self._conn
        self._process = self._conn = self._cpu = None
        if conn is not None:
            conn.close()
        _reap(process)
        return f"the model's process exited (exit code {process.exitcode}); the next call starts a new one"


def _reap(process: Any) -> None:
    """Wait for a child told to stop (or already gone) to end; kill it if it does not."""
    process.join(_STOP_SECONDS)
    if process.is_alive():
        normal_priority(process.pid)  # else, on a busy machine, the killed child waits to exit
        process.kill()
        process.join(_STOP_SECONDS)


def _serve(conn: Connection, call: Call, setup: Callable[[], object] | None) -> None:
    """The child: lower its priority, set up, then answer calls until told to stop or the parent goes."""
    idle_priority()
    try:
        if setup is not None:
            setup()
    except Exception as error:
        conn.send((False, _portable(error)))
        return
    conn.send((True, None))
    while True:
        try:
            rows = conn.recv()
        except (EOFError, OSError):  # the gateway is gone
            return
        if rows is None:
            return
        try:
            answer: tuple[bool, Any] = (True, tuple(call(rows)))
        except Exception as error:
            answer = (False, _portable(error))
        conn.send(answer)


def _portable(error: Exception) -> Exception:
    """The exception itself when it survives pickling, else one that says what it was."""
    try:
        copy = pickle.loads(pickle.dumps(error))
    except Exception:
        return ModelProcessError(f"{type(error).__name__}: {error}")
    return copy if isinstance(copy, Exception) else ModelProcessError(f"{type(error).__name__}: {error}")
