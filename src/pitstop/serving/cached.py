"""Answers that cost seconds of store work, built once and shared: the dashboard's JSON and a rollout's
status (`GET /v1/models/{model}/rollout`).

Both aggregate a phase's evidence in the store, seconds on a large window. Built per request, eight
viewers meant eight builds at once, each taking CPU and the interpreter lock from the event loop that
serves predictions: the served p99 grew tenfold (issue 16). `Cached` builds a key's value on a worker
thread, never on the event loop; readers arriving during a build wait for that one (single flight),
and readers within `ttl` seconds of it get its value, as long as the key's `version` (what the caller
knows changes the answer: a routing change, a new event) is the same. A build that raises is not
kept, and each waiting reader tries again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar, cast

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

MAX_KEYS = 256  # keys kept; the least recently built beyond this are forgotten


@dataclass(slots=True)
class _Entry(Generic[V]):
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    value: V | None = None
    version: Hashable = None
    built_at: float | None = None  # time.monotonic() when `value` was built; None: never


class Cached(Generic[K, V]):
    """`build(key)` on a thread at most once per `ttl` seconds per key and version; concurrent readers
    share one build."""

    def __init__(self, build: Callable[[K], V], ttl: float, *, max_keys: int = MAX_KEYS) -> None:
        self.build, self.ttl, self.max_keys = build, ttl, max_keys
        self._entries: dict[K, _Entry[V]] = {}

    async def get(self, key: K, version: Hashable = None) -> V:
        """The value of `key`: the last one built for `version` when younger than `ttl`, else a new one."""
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
            self._forget_old()
        async with entry.lock:
            if not self._fresh(entry, version):
                value = await asyncio.to_thread(self.build, key)
                entry.value, entry.version, entry.built_at = value, version, time.monotonic()
                self._entries[key] = self._entries.pop(key, entry)  # most recently built last
            return cast(V, entry.value)

    def _fresh(self, entry: _Entry[V], version: Hashable) -> bool:
        built = entry.built_at
        return built is not None and entry.version == version and time.monotonic() - built < self.ttl

    def _forget_old(self) -> None:
        for key in list(self._entries)[: max(0, len(self._entries) - self.max_keys)]:
            if not self._entries[key].lock.locked():
                del self._entries[key]
