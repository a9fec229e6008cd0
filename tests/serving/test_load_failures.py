"""A version the routing asks for that cannot be loaded: users get the champion, and the gateway says so
(health, `/metrics`, the store) until it loads."""

from __future__ import annotations

import asyncio
from typing import Any

from pitstop.config import ServingSettings
from pitstop.rollout.routes import route
from pitstop.serving import Gateway, Instance
from pitstop.serving.runner import Runner, make_runner
from pitstop.store.load_failures import LoadFailure, reported
from serving.conftest import MODEL, Served
from serving.test_gateway import ROW, START, run

MISSING = "ModuleNotFoundError: No module named 'taxitrainers'"
GAUGE = 'pitstop_version_load_failed{{model="eta",role="challenger",version="2"}} {}'


def failing_factory(failing: dict[str, bool]) -> Any:
    """Runners as the gateway makes them, except version 2 while `failing["v2"]`."""

    def factory(
        ws: Any, info: Any, version: Any, serving: ServingSettings, *, shadow: bool = False
    ) -> Runner:
        if version.version == 2 and failing["v2"]:
            raise ModuleNotFoundError("No module named 'taxitrainers'")
        return make_runner(ws, info, version, serving, shadow=shadow)

    return factory


def stored_failures(served: Served) -> list[LoadFailure]:
    with served.ws.reading() as conn:
        return reported(conn, served.ws.model(MODEL).id, 2, START)


def test_a_fresh_gateway_whose_challenger_cannot_load_serves_the_champion_alone_and_says_why(
    served: Served,
) -> None:
    route(served.ws, MODEL, mode="split", challenger=2, share=0.5, reason="an A/B test")
    failing = {"v2": True}

    async def body(gateway: Gateway) -> dict[str, Any]:
        answers = await gateway.predict(MODEL, [Instance(ROW, user_id=f"u{i}") for i in range(20)])
        seen: dict[str, Any] = {
            "versions": {a.model_version for a in answers},
            "routing": {a.routing_version for a in answers},
            "ready": gateway.readiness(),
            "health": gateway.health().to_dict()["models"][MODEL],
            "metrics": gateway.metrics.render().decode(),
            "stored": await asyncio.to_thread(stored_failures, served),
        }
        failing["v2"] = False
        seen["changed"] = await gateway.refresh_routing()
        seen["after"] = {
            "metrics": gateway.metrics.render().decode(),
            "stored": await asyncio.to_thread(stored_failures, served),
            "health": gateway.health().to_dict()["models"][MODEL],
        }
        return seen

    seen = run(served, body, runner_factory=failing_factory(failing))
    assert seen["versions"] == {1} and seen["routing"] == {0}  # routing v0: no phase counts it
    assert seen["ready"] == []
    (failure,) = seen["health"]["load_failures"]
    assert (failure["version"], failure["role"], failure["error"]) == (2, "challenger", MISSING)
    assert GAUGE.format("1.0") in seen["metrics"]
    assert [(f.version, f.role, f.error) for f in seen["stored"]] == [(2, "challenger", MISSING)]
    assert seen["changed"] == [MODEL]
    assert GAUGE.format("0.0") in seen["after"]["metrics"]
    assert seen["after"]["stored"] == [] and seen["after"]["health"]["load_failures"] == []


def test_a_gateway_that_stops_withdraws_its_reports(served: Served) -> None:
    route(served.ws, MODEL, mode="split", challenger=2, share=0.5, reason="an A/B test")

    async def body(gateway: Gateway) -> list[LoadFailure]:
        return await asyncio.to_thread(stored_failures, served)

    while_running = run(served, body, runner_factory=failing_factory({"v2": True}))
    assert [f.error for f in while_running] == [MISSING]
    assert stored_failures(served) == []
