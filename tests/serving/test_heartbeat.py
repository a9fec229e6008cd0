"""Gateway heartbeats on either store (issue 21): recorded by every live gateway, never by a replay,
and a store that refuses them only counts an error. On SQLite a gateway only polls: no listener."""

from __future__ import annotations

import asyncio
from pathlib import Path

import sqlalchemy as sa

from pitstop.serving import Gateway, Instance
from pitstop.store.gateways import Heartbeat
from serving.conftest import MODEL, ROW, Served, async_wait_until
from serving.test_gateway import run, settings


def test_a_live_gateway_records_what_it_serves_and_listens_only_on_postgresql(
    served: Served, tmp_path: Path
) -> None:
    async def main() -> tuple[list[Heartbeat], bool, str]:
        gateway = Gateway(served.ws, settings=settings(heartbeat_interval="100ms"), cache_dir=tmp_path)
        await gateway.start()
        try:
            found: list[Heartbeat] = []

            def recorded() -> bool:
                found[:] = served.ws.gateways()
                return len(found) == 1

            await async_wait_until(recorded)
            return found, gateway._listener is not None, gateway.identity
        finally:
            await gateway.stop()

    found, listening, identity = asyncio.run(main())
    (heartbeat,) = found
    assert heartbeat.gateway == identity
    routing = served.ws.routing(MODEL)
    assert routing is not None
    assert heartbeat.serves(MODEL) is not None
    assert (heartbeat.serves(MODEL).routing_version, heartbeat.serves(MODEL).loaded) == (
        routing.version,
        (1,),
    )  # type: ignore[union-attr]
    assert listening == (served.ws.engine.url.get_backend_name() == "postgresql")
    assert served.ws.gateways() == []


def test_a_replay_gateway_records_no_heartbeat(served: Served) -> None:
    async def body(gateway: Gateway) -> list[Heartbeat]:
        return await asyncio.to_thread(served.ws.gateways)

    assert run(served, body) == []  # `run` starts it with poll=False, as `pitstop simulate` does


def test_a_heartbeat_the_store_refuses_is_counted_and_serving_goes_on(served: Served) -> None:
    async def body(gateway: Gateway) -> tuple[bool, int, str]:
        with served.ws.writing() as conn:
            conn.execute(sa.text("DROP TABLE gateway_heartbeats"))
        written = await gateway.heartbeat.beat()
        (answer,) = await gateway.predict(MODEL, [Instance(ROW, user_id="u1")])
        return written, answer.model_version, gateway.metrics.render().decode()

    written, version, metrics = run(served, body)
    assert not written and version == 1
    assert "pitstop_heartbeat_errors_total 1.0" in metrics
