"""No mixed state (issue 21): with several gateways on one store, no request is served by a version its
routing did not assign, whatever happens mid-rollout (an abort and a re-release, a gateway restarted
during promotion, a gateway that cannot load the challenger); no user is routed to a version some live
gateway has not warmed; the previous champion stays loaded until its standby ends.

The gateways are real `Gateway` objects sharing the test's store and clock, refreshed by hand where a
live one would poll, so each test says exactly which gateway has seen which table.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from pitstop.clock import ManualClock
from pitstop.config import ServingSettings
from pitstop.context import Context
from pitstop.registry import ModelInfo, VersionInfo
from pitstop.rollout.controller import Controller
from pitstop.rollout.phases import Action, Outcome, Phase
from pitstop.rules import Rule
from pitstop.serving import Gateway, Instance
from pitstop.serving.gateway import PredictionResult, RunnerFactory
from pitstop.serving.isolation import MemoryUse
from pitstop.serving.priority import CpuTime
from pitstop.serving.runner import Row, Runner, make_runner
from pitstop.store.tables import predictions
from pitstop.workspace import Workspace
from rollout.conftest import send_traffic
from routing_consistency import assert_served_as_routed
from serving.conftest import async_wait_until

MODEL = "eta"
ROW = {"a": 0.5, "b": -1.0}
USERS = [f"u{i}" for i in range(40)]
SETTINGS = ServingSettings.model_validate(
    {
        "shadow_timeout": "300ms",
        "log_flush_interval": "50ms",
        "batch_max_wait": "1ms",
        "shadow_process": False,
    }
)


class ColdStart:
    """A runner whose first call fails (a cache still filling, say), then answers as the one it wraps."""

    def __init__(self, runner: Runner) -> None:
        self.runner, self.version, self.called = runner, runner.version, False

    def submit(self, rows: list[Row], *, max_wait: float | None = None) -> asyncio.Future[list[float]]:
        if self.called:
            return self.runner.submit(rows, max_wait=max_wait)
        self.called = True
        failed: asyncio.Future[list[float]] = asyncio.get_running_loop().create_future()
        failed.set_exception(TimeoutError("first call: the feature cache is still filling"))
        return failed

    async def predict(self, rows: list[Row]) -> list[float]:
        return await self.submit(rows)

    def backlog_seconds(self) -> float:
        return self.runner.backlog_seconds()

    def cpu_time(self) -> CpuTime | None:
        return self.runner.cpu_time()

    def memory(self) -> MemoryUse | None:
        return self.runner.memory()

    async def close(self) -> None:
        await self.runner.close()


def cold_start(version: int) -> RunnerFactory:
    """Runners as the gateway makes them, whose warm-up of `version` fails."""

    def factory(
        ws: Context, info: ModelInfo, details: VersionInfo, settings: ServingSettings, *, shadow: bool
    ) -> Runner:
        runner = make_runner(ws, info, details, settings, shadow=shadow)
        return ColdStart(runner) if details.version == version else runner

    return factory


def cannot_load(version: int) -> RunnerFactory:
    """Runners as the gateway makes them, except `version`, whose module this host lacks."""

    def factory(
        ws: Context, info: ModelInfo, details: VersionInfo, settings: ServingSettings, *, shadow: bool
    ) -> Runner:
        if details.version == version:
            raise ModuleNotFoundError("No module named 'taxitrainers'")
        return make_runner(ws, info, details, settings, shadow=shadow)

    return factory


def gateway(ws: Workspace, runner_factory: RunnerFactory = make_runner) -> Gateway:
    """A gateway on the test's store and clock that refreshes routing only when told."""
    return Gateway(ws, clock=ws.clock, settings=SETTINGS, poll=False, runner_factory=runner_factory)


def with_gateways(ws: Workspace, factories: list[RunnerFactory], body: Callable[..., Awaitable[Any]]) -> Any:
    """Start one gateway per factory, run `body(*gateways)`, and always stop the ones still running."""

    async def main() -> Any:
        gateways = [gateway(ws, factory) for factory in factories]
        try:
            for one in gateways:
                await one.start()
            return await body(*gateways)
        finally:
            await asyncio.gather(*(one.stop() for one in gateways), return_exceptions=True)

    return asyncio.run(main())


async def refresh(*gateways: Gateway) -> None:
    for one in gateways:
        await one.refresh_routing()


async def serve(*gateways: Gateway) -> list[list[PredictionResult]]:
    """Each gateway answers every user once and writes its records (shadow calls included)."""
    answers = []
    for one in gateways:
        answers.append(await one.predict(MODEL, [Instance(ROW, user_id=user) for user in USERS]))
        await one.drain()
    return answers


def promote_to_share(ws: Workspace, share: float) -> None:
    """Advance the rollout by hand until its routing gives the challenger `share` of the users."""
    while (table := ws.routing(MODEL)) is not None and table.challenger_share < share:
        ws.promote(MODEL, reason="test: next step")


def served_versions(answers: list[PredictionResult]) -> set[tuple[int, int]]:
    """(model version, routing version) of each answer."""
    return {(answer.model_version, answer.routing_version) for answer in answers}


def test_the_check_finds_a_record_its_routing_did_not_assign(rollout_ws: Workspace) -> None:
    rollout_ws.start_rollout(MODEL, 2, skip_gate=True, reason="test")
    promote_to_share(rollout_ws, 0.5)

    async def body(one: Gateway) -> None:
        await serve(one)

    with_gateways(rollout_ws, [make_runner], body)
    assert assert_served_as_routed(rollout_ws, MODEL)["served"] == len(USERS)
    with rollout_ws.writing() as conn:  # one champion user's record now claims the challenger served it
        c = predictions.c
        first = conn.execute(sa.select(sa.func.min(c.id)).where(c.arm == "champion")).scalar_one()
        conn.execute(sa.update(predictions).where(c.id == first).values(version=2, arm="challenger"))
    with pytest.raises(AssertionError, match="1 of 40 predictions not served as routed"):
        assert_served_as_routed(rollout_ws, MODEL)


def test_an_abort_and_a_re_release_mid_rollout_serve_every_request_as_routed(rollout_ws: Workspace) -> None:
    ws = rollout_ws

    async def body(first: Gateway, second: Gateway) -> dict[str, set[tuple[int, int]]]:
        ws.start_rollout(MODEL, 2, skip_gate=True, reason="test")
        await refresh(first, second)
        await serve(first, second)
        promote_to_share(ws, 0.5)  # the A/B test: half the users get v2
        await refresh(first)  # the second still serves the shadow table
        split, shadowing = await serve(first, second)
        ws.abort(MODEL, reason="test: a fixed version is ready")
        await refresh(second)  # the first still serves the split
        _, ended = await serve(first, second)
        ws.start_rollout(MODEL, 3, skip_gate=True, reason="test: the re-release")
        await refresh(first)  # the second still serves the end of the aborted rollout
        await serve(first, second)
        promote_to_share(ws, 0.5)
        await refresh(first, second)
        released, _ = await serve(first, second)
        return {
            "split": served_versions(split),
            "shadowing": served_versions(shadowing),
            "ended": served_versions(ended),
            "released": served_versions(released),
        }

    seen = with_gateways(ws, [make_runner, make_runner], body)
    assert {version for version, _ in seen["split"]} == {1, 2}
    assert {version for version, _ in seen["shadowing"] | seen["ended"]} == {1}
    assert {version for version, _ in seen["released"]} == {1, 3}
    checked = assert_served_as_routed(ws, MODEL)  # a sample of shadow calls is also timed (role timing)
    # 40 served records per gateway and round; 40 shadow ones per gateway serving a shadow table
    assert (checked["served"], checked["shadow"]) == (10 * len(USERS), 4 * len(USERS))


def test_a_gateway_restarted_during_promotion_serves_every_request_as_routed(rollout_ws: Workspace) -> None:
    ws = rollout_ws
    ws.start_rollout(MODEL, 2, skip_gate=True, reason="test")
    promote_to_share(ws, 1.0)  # the last ramp step: v2 serves everyone, v1 shadows

    async def body(first: Gateway, second: Gateway) -> dict[str, Any]:
        await serve(first, second)
        ws.promote(MODEL, reason="test: promote", to_end=True)
        await refresh(first)
        await second.stop()  # restarted before it applied the promotion
        restarted = gateway(ws)
        await restarted.start()
        try:
            answers = await serve(first, restarted)
            return {
                "answers": [served_versions(a) for a in answers],
                "loaded": [one.served()[0].loaded for one in (first, restarted)],
            }
        finally:
            await restarted.stop()

    seen = with_gateways(ws, [make_runner, make_runner], body)
    promoted = ws.routing(MODEL)
    assert promoted is not None and (promoted.champion, promoted.standby) == (2, 1)
    assert seen["answers"] == [{(2, promoted.version)}, {(2, promoted.version)}]
    assert seen["loaded"] == [(1, 2), (1, 2)]  # the old champion on standby, on the restarted one too
    assert ws.rollout_status(MODEL).rollout.state.outcome is Outcome.PROMOTED
    checked = assert_served_as_routed(ws, MODEL)
    assert (checked["served"], checked["shadow"]) == (4 * len(USERS), 2 * len(USERS))  # v1 shadows at 100 %


def test_a_gateway_that_cannot_load_the_challenger_serves_every_request_as_routed(
    rollout_ws: Workspace,
) -> None:
    ws = rollout_ws

    async def body(healthy: Gateway, broken: Gateway) -> dict[str, Any]:
        shadow = ws.start_rollout(MODEL, 2, skip_gate=True, reason="test").state.phase_routing_version
        await refresh(healthy, broken)  # the broken one serves the shadow table without its shadow
        await serve(healthy, broken)
        promote_to_share(ws, 0.5)
        await refresh(healthy, broken)  # the split is not applied where v2 cannot load
        split, kept = await serve(healthy, broken)
        late = gateway(ws, cannot_load(2))  # a gateway started now has no table to keep
        await late.start()
        try:
            (alone,) = await serve(late)
        finally:
            await late.stop()
        return {
            "shadow": shadow,
            "split": served_versions(split),
            "kept": served_versions(kept),
            "alone": served_versions(alone),
            "loaded": broken.served()[0],
        }

    seen = with_gateways(ws, [make_runner, cannot_load(2)], body)
    split = ws.routing(MODEL)
    assert split is not None
    assert seen["split"] == {(1, split.version), (2, split.version)}
    assert seen["kept"] == {(1, seen["shadow"])}  # the shadow table it could apply, champion only
    assert seen["alone"] == {(1, 0)}  # the champion alone: no phase counts it
    assert (seen["loaded"].routing_version, seen["loaded"].loaded) == (seen["shadow"], (1,))
    checked = assert_served_as_routed(ws, MODEL)  # shadow records only where v2 loaded
    assert (checked["served"], checked["shadow"]) == (5 * len(USERS), len(USERS))


def test_no_user_is_routed_to_a_challenger_a_live_gateway_has_not_warmed(rollout_ws: Workspace) -> None:
    ws = rollout_ws
    ws.start_rollout(MODEL, 2, skip_gate=True, reason="test")
    send_traffic(ws, hours=2, requests=600, decide=False)  # enough for the shadow to pass
    controller = Controller(ws)

    async def body(warm: Gateway, cold: Gateway) -> tuple[Any, Any, tuple[int, ...]]:
        for one in (warm, cold):
            await one.heartbeat.beat()
        (waiting,) = await asyncio.to_thread(controller.tick)
        cold.warm_again()  # a live gateway retries at every poll: now the warm-up answers
        await async_wait_until(lambda: cold.served()[0].warmed == (1, 2))
        await cold.heartbeat.beat()
        (moved,) = await asyncio.to_thread(controller.tick)
        return waiting.decision, moved.decision, cold.served()[0].warmed

    waiting, moved, warmed = with_gateways(ws, [make_runner, cold_start(2)], body)
    assert (waiting.action, waiting.rule) == (Action.STAY, Rule.HEALTH_NOT_WARM)
    assert "waiting for 1 of 2 gateways to load and warm challenger v2" in waiting.reason
    assert list(waiting.numbers["gateways_not_warm"].values()) == [[1]]
    assert warmed == (1, 2)
    assert (moved.action, moved.rule) == (Action.ADVANCE, Rule.SHADOW_PASSED), moved.reason
    assert ws.rollout_status(MODEL).rollout.state.phase is Phase.AB_TEST


def test_the_previous_champion_stays_loaded_until_its_standby_ends(rollout_ws: Workspace) -> None:
    ws = rollout_ws
    ws.start_rollout(MODEL, 2, skip_gate=True, reason="test")
    clock = ws.clock
    assert isinstance(clock, ManualClock)
    controller = Controller(ws)

    async def body(one: Gateway) -> list[tuple[str, tuple[int, ...]]]:
        loaded = []
        while (state := ws.rollout_status(MODEL).rollout.state).outcome is None:
            await refresh(one)
            loaded.append((f"{state.phase} {state.step}", one.served()[0].loaded))
            ws.promote(MODEL, reason="test: next")
        await refresh(one)
        loaded.append(("promoted", one.served()[0].loaded))
        clock.advance(timedelta(hours=2, minutes=1))  # SHORT_POLICY's ramp.standby is 2h
        await asyncio.to_thread(controller.tick)  # the leader unloads an expired standby
        await refresh(one)
        loaded.append(("standby over", one.served()[0].loaded))
        return loaded

    loaded = with_gateways(ws, [make_runner], body)
    assert all(versions == (1, 2) for _, versions in loaded[:-1]), loaded
    assert loaded[-1] == ("standby over", (2,))
