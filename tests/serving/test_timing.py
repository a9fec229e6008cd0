"""A sample of shadow requests is timed the way served calls are made: in the gateway's process, one
row per call (`serving/timing.py`); the shadow verdict reads those records' latency (role `timing`)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import sqlalchemy as sa

from pitstop.config import ServingSettings
from pitstop.rollout.routes import route
from pitstop.serving import Gateway, Instance
from pitstop.store.tables import predictions
from serving.conftest import MODEL, Served


def serve(
    served: Served, requests: list[list[Instance]], *, concurrent: bool = False, **changes: Any
) -> None:
    """Start a gateway timing every shadow request it may (shadows in a child process unless `changes`
    say otherwise), send `requests` one after the other or all at once, and drain it."""
    settings = ServingSettings.model_validate(
        {"shadow_timing_sample": 1.0, "log_flush_interval": "50ms", "shadow_timeout": "10s", **changes}
    )

    async def main() -> None:
        gateway = Gateway(served.ws, settings=settings, poll=False)
        await gateway.start()
        try:
            if concurrent:
                await asyncio.gather(*(gateway.predict(MODEL, instances) for instances in requests))
            for instances in [] if concurrent else requests:
                await gateway.predict(MODEL, instances)
            await gateway.drain()
        finally:
            await gateway.stop()

    asyncio.run(main())


def records(served: Served, role: str) -> list[Any]:
    with served.ws.reading() as conn:
        return list(conn.execute(sa.select(predictions).where(predictions.c.role == role)).all())


def test_sampled_shadow_requests_are_timed_in_the_gateways_process_one_row_per_call(served: Served) -> None:
    where = served.fake("ProcessModel")
    route(served.ws, MODEL, mode="shadow", challenger=where, reason="test")
    serve(served, [[Instance({"a": 1.0, "b": float(i)}, request_id=f"r{i}") for i in range(3)]])
    shadow, timing = records(served, "shadow"), records(served, "timing")
    assert len(shadow) == 3 and {r.prediction for r in shadow} != {float(os.getpid())}  # in its child
    # the served path: this process, one row per call (a request of three is timed by its first row)
    assert [(r.request_id, r.prediction) for r in timing] == [("r0", float(os.getpid()))]
    assert {(r.version, r.arm, r.error) for r in timing} == {(where, "challenger", None)}


def test_no_shadow_request_is_timed_when_the_sample_is_zero(served: Served) -> None:
    route(served.ws, MODEL, mode="shadow", challenger=2, reason="test")
    serve(served, [[Instance({"a": 1.0, "b": 0.0})]], shadow_timing_sample=0.0)
    assert len(records(served, "shadow")) == 1 and records(served, "timing") == []


def test_one_timing_call_is_in_flight_at_a_time(served: Served) -> None:
    slow = served.fake("SlowModel", delay=1.0)
    route(served.ws, MODEL, mode="shadow", challenger=slow, reason="test")
    requests = [[Instance({"a": 1.0, "b": float(i)})] for i in range(5)]
    serve(served, requests, concurrent=True, shadow_process=False, shadow_concurrency=10)
    assert len(records(served, "shadow")) == 5
    assert len(records(served, "timing")) == 1  # the others arrived while it ran
