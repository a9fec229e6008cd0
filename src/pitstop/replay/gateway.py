"""Replay through the real gateway: each request one call, as a client sends it, its prediction
logged and its evidence read back by the controller's SQL (the path the demo and the equivalence test
of the batched replay take; `batched.py` is the fast one).

Requests are sent in their time order; the ones within `concurrency_window` of each other are in flight
together (so micro-batching and latency behave as they would under that load). Labels are delivered when
the clock reaches their `label_time`. The controller looks every `interval` of simulated time. Model
latency is measured from every real call.
"""

from __future__ import annotations

import asyncio
import heapq
from datetime import datetime, timedelta

import pandas as pd

from pitstop import registry
from pitstop.clock import ManualClock
from pitstop.errors import PitstopError
from pitstop.replay.traffic import Progress, check_pace, replay_request_ids
from pitstop.rollout.controller import Controller
from pitstop.rollout.records import active_rollout
from pitstop.serving.gateway import Gateway, Instance
from pitstop.serving.labels import Label
from pitstop.workspace import Workspace


class Replay:
    """Drives recorded traffic through a gateway (and, when given, a controller) on a manual clock."""

    def __init__(
        self,
        ws: Workspace,
        model: str,
        frame: pd.DataFrame,
        features: list[str],
        clock: ManualClock,
        interval: timedelta,
        window: timedelta,
        progress: Progress | None,
    ) -> None:
        check_pace(interval, window)
        self.ws, self.model, self.clock, self.interval, self.window = ws, model, clock, interval, window
        self.progress = progress
        self.times = [t.to_pydatetime() for t in frame["time"]]
        ids = (
            list(frame["request_id"]) if "request_id" in frame else replay_request_ids(ws, model, len(frame))
        )
        # Python scalars, as a client's JSON carries them (`itertuples` gives numpy ones for a nullable
        # integer column, which the gateway's feature check refuses)
        rows = zip(*(frame[name].tolist() for name in features), strict=True)
        self.instances = [
            Instance(features=dict(zip(features, values, strict=True)), user_id=user, request_id=rid)
            for values, user, rid in zip(rows, frame["user_id"], ids, strict=True)
        ]
        self.labels: list[tuple[datetime, int, Label]] = [
            (
                t.to_pydatetime(),
                i,
                Label(rid, value if isinstance(value, str) else float(value), t.to_pydatetime()),
            )
            for i, (t, rid, value) in enumerate(zip(frame["label_time"], ids, frame["label"], strict=True))
        ]
        heapq.heapify(self.labels)
        self.failed = 0
        self.sent = 0  # requests replayed (the replay stops once the rollout has ended)
        self.delivered = 0
        self.ended = False

    async def run(self, *, decide: bool = True) -> None:
        """Send every request and label in time order; with `decide`, a controller looks every interval."""
        # Requests of one window are submitted together, so batches form without waiting on the wall clock.
        # Shadows on a thread: a replay has no users to protect, and at idle priority beside a replay that
        # keeps a CPU busy a shadow could wait past its timeout, making the outcome depend on the machine.
        settings = self.ws.config.serving.model_copy(
            update={"batch_max_wait": timedelta(0), "shadow_process": False}
        )
        gateway = Gateway(self.ws, clock=self.clock, poll=False, settings=settings, shadow_batch_wait=0.0)
        controller = Controller(self.ws, clock=self.clock, interval=self.interval) if decide else None
        await gateway.start()
        try:
            next_tick = self.times[0] + self.interval
            i, total = 0, len(self.times)
            while i < total and not self.ended:
                group_end = min(self.times[i] + self.window, next_tick)
                j = i
                while j < total and self.times[j] < group_end:
                    j += 1
                await self._deliver_labels(gateway, self.times[i])
                await self._send(gateway, i, max(j, i + 1))
                i = max(j, i + 1)
                if self.progress:
                    self.progress(i, total)
                upcoming = self.times[i] if i < total else None
                while not self.ended and (upcoming is None or upcoming >= next_tick):
                    await self._tick(gateway, controller, next_tick)
                    next_tick += self.interval
                    if upcoming is None and not self.labels:
                        break
            if not self.ended:
                await self._tick(gateway, controller, max(next_tick, self.clock.now()))
        finally:
            if controller is not None:
                controller.release()
            await gateway.stop()

    async def _send(self, gateway: Gateway, first: int, last: int) -> None:
        async def one(k: int) -> None:
            self.clock.set(max(self.times[k], self.clock.now()))
            try:
                await gateway.predict(self.model, [self.instances[k]])
            except PitstopError:
                self.failed += 1

        await asyncio.gather(*(one(k) for k in range(first, last)))
        self.sent += last - first
        await gateway.shadow.drain()  # the window's shadow work ends before the next window begins

    async def _deliver_labels(self, gateway: Gateway, until: datetime) -> None:
        """Labels whose time has come, received at `until` (the clock moves there first)."""
        self.clock.set(max(until, self.clock.now()))
        due = []
        while self.labels and self.labels[0][0] <= until:
            due.append(heapq.heappop(self.labels)[2])
        for start in range(0, len(due), 5000):
            await gateway.add_labels(self.model, due[start : start + 5000])
        self.delivered += len(due)

    async def _tick(self, gateway: Gateway, controller: Controller | None, at: datetime) -> None:
        self.clock.set(max(at, self.clock.now()))
        await self._deliver_labels(gateway, self.clock.now())
        await gateway.drain()
        if controller is None:
            return
        results = await asyncio.to_thread(controller.tick)
        if any(r.applied and r.decision.changes_phase for r in results):
            await gateway.refresh_routing()
            with self.ws.reading() as conn:
                self.ended = active_rollout(conn, registry.get_model(conn, self.model).id) is None
