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

A child's memory is bounded by `memory_limit` (`serving.shadow_memory_limit`): its resident set
(RSS, from its kept-open `/proc/PID/statm`, one `pread`) is read after a call when the last reading
is a second old, and every second while a call is in flight. Over the limit, the child is killed at
once (freeing its memory) and the next call starts a new one: counted in `restarts` (reason
`memory`; a child that died on its own counts as `exited`) and logged once with the numbers. A call
in flight when its child is killed fails, as with any dead child. A leak of 40 MB a second goes at
most one second past the limit. The limit is not an OS cap: `RLIMIT_AS` bounds address space, not
memory, and numpy, OpenBLAS and glibc reserve gigabytes of it they never touch, so a cap low enough
to matter breaks good models (`RLIMIT_RSS` is ignored by Linux, and a cgroup needs a delegation a
gateway seldom has). A model that allocates gigabytes within one second is beyond it.

Children are forked from a fork server that has pitstop, pandas and scikit-learn imported once, so
a new child costs tens of milliseconds, not the seconds of a fresh interpreter; the model itself is
pickled to the child once per start.

A child imports what the gateway imports: the fork server keeps the import path and working folder
it started with, so each child takes the gateway's own (`ImportContext`, with the working folder on
the path as the gateway has it while it loads a model: `user_code.current_folder_importable`) before
it unpickles the model. A model whose class lives in `taxitrainers.py` beside the user then loads in
the shadow's process as it loads for `gate`; and one whose module is missing fails there with its
own error (`ModuleNotFoundError: No module named 'taxitrainers'`), sent back to the gateway, not a
traceback on stderr and a bare exit code.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import suppress
from functools import cache
from multiprocessing.connection import Connection
from typing import Any, NamedTuple

from pitstop.serving.batching import Timed
from pitstop.serving.errors import ModelProcessError
from pitstop.serving.priority import CpuTime, ProcessCpu, ProcFile, idle_priority, normal_priority
from pitstop.user_code import current_folder_importable

log = logging.getLogger(__name__)

Row = dict[str, Any]
Call = Callable[[list[Row]], Timed]
# Imported once, in the fork server, so no child pays for them: every child loads a model file, and
# `model_files` brings skops, whose trusted-type tables import every scikit-learn estimator (~0.7 s;
# the door check's child took that on each registration once serving stopped importing it already).
_PRELOAD = ["pitstop.serving.inprocess", "pitstop.model_files", "sklearn.base"]
_STOP_SECONDS = 2.0
MEMORY_EVERY = 1.0  # seconds between two readings of a child's resident memory
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@cache
def _context() -> Any:
    """Fork server where the platform has one (Linux, macOS), else spawn."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)
    return context


class MemoryUse(NamedTuple):
    """A model process's memory: resident bytes at the last reading (None: not known), its limit, and
    how often a new child replaced it, by reason (`memory`: over the limit; `exited`: it died)."""

    rss_bytes: int | None
    limit_bytes: int | None
    restarts: Mapping[str, int]


class ImportContext(NamedTuple):
    """Where a model process finds modules: the gateway's import path and working folder."""

    path: list[str]
    folder: str | None

    @classmethod
    def here(cls) -> ImportContext:
        """This process's, with the working folder importable as it is while a model loads here."""
        with current_folder_importable():
            path = list(sys.path)
        try:
            folder: str | None = os.getcwd()
        except OSError:  # the working folder was deleted
            folder = None
        return cls(path, folder)

    def enter(self) -> None:
        """Make this (child) process import as the gateway does."""
        sys.path[:] = self.path
        if self.folder is not None:
            with suppress(OSError):
                os.chdir(self.folder)


class ProcessMemory:
    """Reads the resident memory of process `pid` from its kept-open `/proc/PID/statm`."""

    def __init__(self, pid: int) -> None:
        self._statm = ProcFile(f"/proc/{pid}/statm")

    def rss_bytes(self) -> int | None:
        """Resident bytes now, or None where Linux does not say (or the process is gone)."""
        try:
            return int(self._statm.read().split()[1]) * _PAGE_BYTES  # "size resident shared ..." in pages
        except (IndexError, ValueError):
            return None


class ModelProcess:
    """Runs `call(rows)` in a child process at idle priority; `setup()` runs there first; a child
    whose resident memory exceeds `memory_limit` bytes is replaced."""

    def __init__(
        self,
        call: Call,
        *,
        setup: Callable[[], object] | None = None,
        name: str = "model",
        memory_limit: int | None = None,
    ) -> None:
        self._call, self._setup, self.name = call, setup, name
        self.memory_limit = memory_limit
        self._lock = threading.Lock()  # one call at a time over the pipe
        self._process: Any = None
        self._conn: Connection | None = None
        self._cpu: ProcessCpu | None = None
        self._memory: ProcessMemory | None = None
        self._rss: int | None = None
        self._measured = 0.0  # time.monotonic() of the last reading
        self._restarts: Counter[str] = Counter()
        self._closed = False
        self._start()

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def cpu_time(self) -> CpuTime | None:
        """The child's CPU accounting (None without a child, or off Linux)."""
        cpu = self._cpu
        return None if cpu is None else cpu.read()

    def memory(self) -> MemoryUse:
        """The child's resident memory at the last reading (at most `MEMORY_EVERY` old while it is
        called), its limit, and its restarts so far."""
        return MemoryUse(self._rss, self.memory_limit, dict(self._restarts))

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
                while not self._conn.poll(MEMORY_EVERY):  # a long call: watch its memory meanwhile
                    if self._over_limit():
                        raise ModelProcessError(f"{self.name}: {self._restart()}")
                ok, answer = self._conn.recv()
            except (EOFError, OSError) as error:
                raise ModelProcessError(f"{self.name}: {self._lost()}") from error
            if time.monotonic() - self._measured >= MEMORY_EVERY and self._over_limit():
                self._restart()
        if not ok:
            raise answer
        return Timed(*answer)

    def close(self) -> None:
        """Stop the child: it ends at once when idle, and is killed when a call keeps it busy."""
        self._closed = True
        self._cpu = self._memory = None
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
        # The model travels pickled, to be unpickled once the child imports as the gateway does.
        model = pickle.dumps((self._call, self._setup))
        process = _context().Process(
            target=_serve, args=(child, model, ImportContext.here()), name=f"pitstop-{self.name}", daemon=True
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
        self._memory = ProcessMemory(process.pid)
        if self._over_limit():  # a first reading: the metric shows the loaded model's size
            log.warning(
                "%s: the model's process uses %.0f MiB once loaded, already over its limit of %.0f MiB "
                "(serving.shadow_memory_limit): it will be restarted every second it scores; raise the limit",
                self.name,
                (self._rss or 0) / 2**20,
                (self.memory_limit or 0) / 2**20,
            )

    def _over_limit(self) -> bool:
        """Read the child's resident memory; whether it exceeds the limit."""
        self._measured = time.monotonic()
        self._rss = None if self._memory is None else self._memory.rss_bytes()
        return self.memory_limit is not None and self._rss is not None and self._rss > self.memory_limit

    def _restart(self) -> str:
        """Kill a child over its memory limit (the next call starts a new one), saying so once."""
        process, conn, rss = self._process, self._conn, self._rss or 0
        self._forget()
        if conn is not None:
            conn.close()
        normal_priority(process.pid)  # else, on a busy machine, the killed child waits to exit
        process.kill()
        process.join(_STOP_SECONDS)
        self._restarts["memory"] += 1
        why = (
            f"the model's process used {rss / 2**20:.0f} MiB, over its limit of "
            f"{(self.memory_limit or 0) / 2**20:.0f} MiB (serving.shadow_memory_limit): killed, and the "
            f"next call starts a new one (restart {self._restarts['memory']})"
        )
        log.warning("%s: %s", self.name, why)
        return why

    def _forget(self) -> None:
        self._process = self._conn = self._cpu = self._memory = None
        self._rss = None

    def _lost(self) -> str:
        """Forget a dead (or unreachable) child, saying why; the next call starts a new one."""
        process, conn = self._process, self._conn
        self._forget()
        if conn is not None:
            conn.close()
        _reap(process)
        self._restarts["exited"] += 1
        return f"the model's process exited (exit code {process.exitcode}); the next call starts a new one"


def _reap(process: Any) -> None:
    """Wait for a child told to stop (or already gone) to end; kill it if it does not."""
    process.join(_STOP_SECONDS)
    if process.is_alive():
        normal_priority(process.pid)  # else, on a busy machine, the killed child waits to exit
        process.kill()
        process.join(_STOP_SECONDS)


def _serve(conn: Connection, model: bytes, context: ImportContext) -> None:
    """The child: lower its priority, import as the gateway does, load the model and set up, then answer
    calls until told to stop or the parent goes."""
    idle_priority()
    try:
        context.enter()
        call, setup = pickle.loads(model)
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
