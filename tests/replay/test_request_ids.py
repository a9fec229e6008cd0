"""Replays that share one store keep their requests apart: labels are stored one per (model, request
id), so the ids a replay gives its requests must not repeat those of an earlier replay."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from helpers import make_traffic
from pitstop.clock import ManualClock
from pitstop.replay import Replay, prepare_traffic
from pitstop.report.data import report_data
from pitstop.store.tables import labels, predictions
from pitstop.workspace import Workspace
from report.conftest import fresh_store
from report.rollouts import rollout_workspace
from rollout.conftest import SHORT_POLICY


def replay(ws: Workspace, hours: float, requests: int, seed: int) -> Replay:
    """`hours` of traffic without request ids from the clock's now, the controller looking every 10 min."""
    start = ws.clock.now() + timedelta(seconds=1)
    frame = prepare_traffic(make_traffic(start.isoformat(), hours, requests, seed=seed), ["a", "b"])
    assert isinstance(ws.clock, ManualClock)
    run = Replay(ws, "eta", frame, ["a", "b"], ws.clock, timedelta(minutes=10), timedelta(seconds=1), None)
    asyncio.run(run.run())
    return run


def two_rollouts(ws: Workspace) -> list[tuple[int, Replay]]:
    """Rollout of v3 (rejected in shadow), then of v2, each on its own replayed traffic, one store."""
    runs = []
    for version, hours, requests, seed in ((3, 3, 700, 1), (2, 5, 1800, 2)):
        rollout = ws.start_rollout("eta", version, skip_gate=True, reason="replay").state.id
        runs.append((rollout, replay(ws, hours, requests, seed)))
    return runs


@dataclass
class TwoRollouts:
    ws: Workspace
    runs: list[tuple[int, Replay]]


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def two_rollouts_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    yield from fresh_store(request, tmp_path_factory, "two-rollouts-store", prefix="ids")


@pytest.fixture(scope="module")
def replayed(two_rollouts_store: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoRollouts]:
    """`two_rollouts` on `rollout_ws`'s workspace, replayed once per store (~2,500 requests) and only
    read by the tests below (they must not change it)."""
    scratch = tmp_path_factory.mktemp("two-rollouts")
    ws = rollout_workspace(scratch / "ws", scratch, two_rollouts_store, policy=SHORT_POLICY)
    yield TwoRollouts(ws, two_rollouts(ws))
    ws.close()


def test_two_replays_in_one_store_keep_every_label(replayed: TwoRollouts) -> None:
    with replayed.ws.reading() as conn:
        stored = conn.execute(select(func.count()).select_from(labels)).scalar_one()
    assert all(run.delivered > 0 for _, run in replayed.runs)
    assert stored == sum(run.delivered for _, run in replayed.runs)


def test_each_rollout_keeps_the_labelled_pairs_its_shadow_verdict_counted(replayed: TwoRollouts) -> None:
    for rollout, _ in replayed.runs:
        verdict = next(
            e
            for e in replayed.ws.events("eta")
            if e.kind == "rollout_transition" and e.rollout_id == rollout and e.from_state == "shadow"
        )
        shadow = report_data(replayed.ws, "eta", rollout).shadow
        assert shadow is not None and verdict.data["labelled_pairs"] > 0
        # Regenerated afterwards, the report sees exactly the pairs the controller decided on.
        assert shadow.n == verdict.data["labelled_pairs"], rollout


def test_a_second_replay_without_ids_in_one_rollout_continues_the_numbering(rollout_ws: Workspace) -> None:
    rollout_ws.start_rollout("eta", 2, skip_gate=True, reason="replay")
    first = replay(rollout_ws, 0.2, 20, seed=1)
    second = replay(rollout_ws, 0.4, 30, seed=2)
    with rollout_ws.reading() as conn:
        stored = conn.execute(select(func.count()).select_from(labels)).scalar_one()
        ids = set(
            conn.execute(select(predictions.c.request_id).where(predictions.c.role == "served")).scalars()
        )
    assert stored == first.delivered + second.delivered == 50
    assert ids == {f"r1-{i}" for i in range(50)}


def test_traffic_replayed_after_a_rollout_ended_keeps_ids_of_its_own(rollout_ws: Workspace) -> None:
    rollout_ws.start_rollout("eta", 2, skip_gate=True, reason="replay")
    during = replay(rollout_ws, 0.5, 100, seed=1)
    rollout_ws.abort("eta", reason="back to the champion")
    after = replay(rollout_ws, 0.5, 100, seed=2)
    with rollout_ws.reading() as conn:
        stored = conn.execute(select(func.count()).select_from(labels)).scalar_one()
    assert stored == during.delivered + after.delivered == 200
