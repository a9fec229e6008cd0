"""Pushed routing and gateway heartbeats on PostgreSQL (issue 21): a routing change reaches every
gateway through LISTEN/NOTIFY, not the poll; a broken listen connection is reconnected; each gateway
records what it serves. The gateways poll every 30 s here, so only a push can move them in time."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from psycopg.conninfo import conninfo_to_dict

from helpers import fresh_postgres_schema
from pitstop.rollout.routes import route
from pitstop.serving import Gateway
from pitstop.serving.routing_push import conninfo
from pitstop.store.engine import postgres_timeouts
from pitstop.store.gateways import Heartbeat
from serving.conftest import MODEL, Served, async_wait_until
from serving.test_gateway import settings

pytestmark = pytest.mark.postgres

REACH = 10.0  # seconds: a bound on the wait, far above what a push takes, well below the 30 s poll


@pytest.fixture
def database_url(postgres_url: str) -> Iterator[str]:
    """PostgreSQL only: push is what these tests are about (SQLite gateways only poll)."""
    yield from fresh_postgres_schema(postgres_url)


def gateway(served: Served, folder: Path, **changes: Any) -> Gateway:
    chosen = {"poll_interval": "30s", "heartbeat_interval": "200ms", **changes}
    return Gateway(served.ws, settings=settings(**chosen), cache_dir=folder)


def listening(*gateways: Gateway) -> bool:
    return all(g._listener is not None and g._listener.backend_pid is not None for g in gateways)


async def two_gateways(served: Served, tmp_path: Path, body: Any, **changes: Any) -> Any:
    first, second = gateway(served, tmp_path / "a", **changes), gateway(served, tmp_path / "b", **changes)
    await first.start()
    await second.start()
    try:
        return await body(first, second)
    finally:
        await first.stop()
        await second.stop()


async def routed(served: Served, **how: Any) -> int:
    table = await asyncio.to_thread(route, served.ws, MODEL, reason="push test", **how)
    return table.version


def test_the_listen_connection_gets_the_stores_options_as_the_server_reads_them() -> None:
    """`pitstop serve` adds `-c statement_timeout=…` to libpq's `options`: a value with spaces, which
    a URI must percent-encode (a `+` stays a `+` there, and the server refused `+statement_timeout`)."""
    stored = sa.make_url("postgresql+psycopg://u:p@db:5433/x?options=-csearch_path%3Ds")
    url = postgres_timeouts(stored, 5, 30)
    assert conninfo_to_dict(conninfo(url)) == {
        "host": "db",
        "port": "5433",
        "user": "u",
        "password": "p",
        "dbname": "x",
        "connect_timeout": "5",
        "options": "-csearch_path=s -c statement_timeout=30000",
    }


def test_a_routing_change_reaches_every_gateway_by_push(served: Served, tmp_path: Path) -> None:
    async def body(first: Gateway, second: Gateway) -> None:
        await async_wait_until(lambda: listening(first, second), REACH)
        version = await routed(served, mode="split", challenger=2, share=0.5)
        await async_wait_until(
            lambda: first.routing(MODEL).version == version == second.routing(MODEL).version, REACH
        )
        back = await routed(served, mode="off")
        await async_wait_until(
            lambda: first.routing(MODEL).version == back == second.routing(MODEL).version, REACH
        )
        assert first.routing(MODEL).challenger is None

    asyncio.run(two_gateways(served, tmp_path, body))


def test_without_push_a_gateway_waits_for_its_poll(served: Served, tmp_path: Path) -> None:
    async def body(first: Gateway, second: Gateway) -> tuple[int, int]:
        before = first.routing(MODEL).version
        await routed(served, mode="split", challenger=2, share=0.5)
        await asyncio.sleep(0.5)  # far longer than a push takes; the 30 s poll has not come
        return before, first.routing(MODEL).version

    before, after = asyncio.run(two_gateways(served, tmp_path, body, push=False))
    assert after == before


def test_a_killed_listen_connection_is_reconnected_and_pushes_again(served: Served, tmp_path: Path) -> None:
    engine = sa.create_engine(served.ws.database_url)

    def terminate(pid: int) -> None:
        with engine.begin() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

    async def body(first: Gateway, second: Gateway) -> None:
        await async_wait_until(lambda: listening(first, second), REACH)
        assert first._listener is not None
        killed = first._listener.backend_pid
        assert killed is not None
        await asyncio.to_thread(terminate, killed)
        listener = first._listener

        def reconnected() -> bool:
            up = "pitstop_routing_push_up 1.0" in first.metrics.render().decode()
            return up and listener.backend_pid not in (None, killed)

        await async_wait_until(reconnected, REACH)
        version = await routed(served, mode="shadow", challenger=2)
        await async_wait_until(
            lambda: first.routing(MODEL).version == version == second.routing(MODEL).version, REACH
        )

    try:
        asyncio.run(two_gateways(served, tmp_path, body))
    finally:
        engine.dispose()


def test_each_gateway_records_what_it_serves_and_leaves_when_stopped(
    served: Served, tmp_path: Path, cli: Any
) -> None:
    def beats() -> list[Heartbeat]:
        return served.ws.gateways()

    async def body(first: Gateway, second: Gateway) -> dict[str, Any]:
        version = await routed(served, mode="shadow", challenger=2)
        await async_wait_until(
            lambda: first.routing(MODEL).version == version == second.routing(MODEL).version, REACH
        )
        found: list[Heartbeat] = []

        async def acknowledged() -> bool:
            found[:] = await asyncio.to_thread(beats)
            return len(found) == 2 and all(h.serves(MODEL).routing_version == version for h in found)  # type: ignore[union-attr]

        deadline = asyncio.get_running_loop().time() + REACH
        while not await acknowledged():
            assert asyncio.get_running_loop().time() < deadline, found
            await asyncio.sleep(0.05)
        await first.heartbeat.beat()  # reads every gateway's row back for /metrics
        shown = await asyncio.to_thread(cli, "gateways", "--json", "-w", str(served.ws.path))
        return {
            "version": version,
            "beats": list(found),
            "ids": {first.identity, second.identity},
            "metrics": first.metrics.render().decode(),
            "cli": shown,
        }

    seen = asyncio.run(two_gateways(served, tmp_path, body))
    assert {h.gateway for h in seen["beats"]} == seen["ids"]
    for heartbeat in seen["beats"]:
        served_model = heartbeat.serves(MODEL)
        assert served_model is not None
        assert served_model.loaded == (1, 2) and served_model.warmed == (1, 2)  # champion and shadow
    assert (
        f'pitstop_gateways_live{{model="{MODEL}",routing_version="{seen["version"]}"}} 2.0' in seen["metrics"]
    )
    assert seen["cli"].exit_code == 0, seen["cli"].stderr
    listed = json.loads(seen["cli"].stdout)
    assert {g["gateway"] for g in listed} == seen["ids"] and all(g["live"] for g in listed)
    assert served.ws.gateways() == []  # each stopped gateway removed its row
