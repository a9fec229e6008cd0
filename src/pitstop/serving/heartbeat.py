"""The gateway's heartbeat: what it serves, written to the store every `serving.heartbeat_interval`
and right after every routing switch (`store.gateways`).

Writes run on a worker thread, never on a request's path; a failing store only counts
`pitstop_heartbeat_errors` and is tried again at the next beat. After each write the heartbeat reads
every gateway's row back to export `pitstop_gateways_live`, so each gateway's `/metrics` shows the
whole fleet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from pitstop.clock import Clock
from pitstop.context import Context
from pitstop.serving.metrics import GatewayMetrics
from pitstop.store import gateways
from pitstop.store.gateways import Heartbeat, ServedModel

log = logging.getLogger(__name__)


class HeartbeatWriter:
    """Beats for gateway `identity` while started; `beat_now()` asks for a beat at once."""

    def __init__(
        self,
        ws: Context,
        identity: str,
        serving: Callable[[], tuple[ServedModel, ...]],
        metrics: GatewayMetrics,
        *,
        clock: Clock,
        interval: timedelta,
        timeout: timedelta,
    ) -> None:
        self.ws, self.identity, self._serving, self.metrics = ws, identity, serving, metrics
        self.clock, self.interval, self.timeout = clock, interval, timeout
        self.started_at: datetime = clock.now()
        self._due = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._problem: str | None = None  # the last failure, logged once

    def start(self) -> None:
        self.started_at = self.clock.now()
        self._stopping = False
        self._task = asyncio.get_running_loop().create_task(self._run(), name="pitstop-heartbeat")

    def beat_now(self) -> None:
        self._due.set()

    async def stop(self) -> None:
        """Stop beating and remove this gateway's row, so it leaves the live set at once."""
        if self._task is None:
            return
        # Not cancelled: a write already on its thread would land after the removal below.
        self._stopping = True
        self._due.set()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None
        try:
            await asyncio.to_thread(self._remove)
        except Exception as error:  # it goes stale after `gateway_timeout` instead
            log.warning("heartbeat not removed: %s: %s", type(error).__name__, error)

    async def beat(self) -> bool:
        """Write one heartbeat and read the fleet's back; False (counted) when the store failed."""
        heartbeat = Heartbeat(self.identity, self.started_at, self.clock.now(), self._serving())
        try:
            fleet = await asyncio.to_thread(self._write, heartbeat)
        except Exception as error:
            self.metrics.heartbeat_errors.inc()
            problem = f"{type(error).__name__}: {error}"
            if problem != self._problem:
                log.warning("heartbeat not written: %s", problem)
            self._problem = problem
            return False
        self._problem = None
        self._export(fleet, heartbeat.last_seen)
        return True

    async def _run(self) -> None:
        while not self._stopping:
            await self.beat()
            with contextlib.suppress(TimeoutError):  # not wait_for: it can lose a cancellation (3.11)
                async with asyncio.timeout(self.interval.total_seconds()):
                    await self._due.wait()
            self._due.clear()

    def _write(self, heartbeat: Heartbeat) -> list[Heartbeat]:
        with self.ws.writing() as conn:
            gateways.beat(conn, heartbeat)
        with self.ws.reading() as conn:
            return gateways.heartbeats(conn)

    def _remove(self) -> None:
        with self.ws.writing() as conn:
            gateways.remove(conn, self.identity)

    def _export(self, fleet: list[Heartbeat], now: datetime) -> None:
        counts: dict[tuple[str, int], int] = {}
        for heartbeat in fleet:
            if heartbeat.is_live(now, self.timeout):
                for served in heartbeat.serving:
                    key = (served.model, served.routing_version)
                    counts[key] = counts.get(key, 0) + 1
        gauge = self.metrics.gateways_live
        gauge.clear()
        for (model, version), n in sorted(counts.items()):
            gauge.labels(model, str(version)).set(n)
