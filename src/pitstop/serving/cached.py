"""Answers that cost seconds of store work, built once and shared: the dashboard's JSON and a rollout's
status (`GET /v1/models/{model}/rollout`).

Both aggregate a phase's evidence in the store, seconds on a large window. Built per request, eight
viewers meant eight builds at once, each taking CPU and the interpreter lock from the event loop that
serves predictions: the served p99 grew tenfold (issue 16). `Cached` builds a key's value on a worker
thread, never on the event loop; readers arriving during a build wait for that one (single flight),
and readers within `ttl` seconds of it get its value, as long as the key's `version` (what the caller
knows changes the answer: a routing change, a new event) is the same. A build that raises is not
kept, and each waiting reader tries again.

A build on a thread still shares the interpreter lock with the event loop, which no OS priority
changes: while it runs, served requests wait for the lock (bench/status_calls.py). So a value is also
kept for at least `keep_per_build` times as long as it took to build (9: builds take at most a tenth
of the time), whatever the number of readers; a status costing 2 s on a large window is reused for
18 s unless its version changes.

Builds run on threads of the cache's own at a lower OS priority (`priority.WRITER_NICENESS`, as the
prediction log's writer): with the gateway's CPU busy, the kernel runs the event loop first, and a
build takes what it leaves (a quarter of a core against one busy thread). A status caller waits a
little longer; a served request does not wait for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar, cast

from pitstop.serving.priority import WRITER_NICENESS, lower_thread_priority

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

MAX_KEYS = 256  # keys kept; the least recently built beyond this are forgotten
BUILD_THREADS = 2  # builds of different keys at once
KEEP_PER_BUILD = 9.0  # a value is kept at least this many times its build's duration


@dataclass(slots=True)
class _Entry(Generic[V]):
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    value: V | None = None
    version: Hashable = None
    built_at: float | None = None  # time.monotonic() when `value` was built; None: never
    keep: float = 0.0  # seconds the value is kept (while its version stands)


class Cached(Generic[K, V]):
    """`build(key)` on a thread at most once per `ttl` seconds (or `keep_per_build` times its duration)
    per key and version; concurrent readers share one build."""

    def __init__(
        self,
        build: Callable[[K], V],
        ttl: float,
        *,
        keep_per_build: float = KEEP_PER_BUILD,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self.build, self.ttl, self.keep_per_build, self.max_keys = build, ttl, keep_per_build, max_keys
        self._entries: dict[K, _Entry[V]] = {}
        self._threads = ThreadPoolExecutor(
            BUILD_THREADS,
            thread_name_prefix="pitstop-cached",
            initializer=lower_thread_priority,
            initargs=(WRITER_NICENESS,),
        )

    async def get(self, key: K, version: Hashable = None) -> V:
        """The value of `key`: the last one built for `version` while it is kept, else a new one."""
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
            self._forget_old()
        async with entry.lock:
            if not self._fresh(entry, version):
                started = time.monotonic()
                value = await asyncio.get_running_loop().run_in_executor(self._threads, self.build, key)
                entry.value, entry.version, entry.built_at = value, version, time.monotonic()
                entry.keep = max(self.ttl, (entry.built_at - started) * self.keep_per_build)
                self._entries[key] = self._entries.pop(key, entry)  # most recently built last
            return cast(V, entry.value)

    def _fresh(self, entry: _Entry[V], version: Hashable) -> bool:
        built = entry.built_at
        return built is not None and entry.version == version and time.monotonic() - built < entry.keep

    def _forget_old(self) -> None:
        for key in list(self._entries)[: max(0, len(self._entries) - self.max_keys)]:
            if not self._entries[key].lock.locked():
                del self._entries[key]
