"""The batched replay decides as the gateway's replay does on the same traffic: the same transitions at
the same times, for the same rules, on the same numbers (latency aside: both measure real calls)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from helpers import ScaledModel, make_traffic
from misbehaving_models import Picky
from pitstop.clock import ManualClock
from pitstop.replay import SimulationResult, simulate
from pitstop.replay.batched import BatchedReplay
from pitstop.replay.run import _start_replay_rollout, _throwaway_workspace
from pitstop.replay.traffic import prepare_traffic
from pitstop.workspace import Workspace
from rollout.conftest import SHORT_POLICY, fit_base, register_model

SAMPLED = SHORT_POLICY + "serving: {shadow_sample: 0.6, shadow_timing_sample: 0.3}\n"
# every rule whose evidence only some policies read (`rollout.reads`): each pair's difference (Wilcoxon),
# the users' accumulation (per_user's plan), each user's mean (Mann-Whitney), the label coverage
WILCOXON_PER_USER = SHORT_POLICY.replace(
    "max_p99_ratio: 10}", "max_p99_ratio: 10, test: wilcoxon}", 1
).replace("tau: 0.1,", "tau: 0.1, method: per_user,")
MANN_WHITNEY = SHORT_POLICY.replace("tau: 0.1,", "tau: 0.1, method: mann_whitney, stopping: fixed,")
COVERAGE = SHORT_POLICY + "health: {min_label_coverage: 0.95}\n"
LATENCY = ("latency", "p99", "p50", "calls")  # measured from real calls: not the same twice


def _traffic(*, anonymous_every: int = 0) -> pd.DataFrame:
    frame = make_traffic("2026-03-01T00:00:00+00:00", 12, 3000)
    if anonymous_every:
        frame.loc[frame.index % anonymous_every == 0, "user_id"] = None  # routed by their request id
    return frame


def replay_both_ways(
    ws: Workspace, tmp_path: Path, challenger: int, frame: pd.DataFrame, model: str = "eta"
) -> list[SimulationResult]:
    """`frame` replayed batched, then through the gateway, each in a store of its own."""
    return [
        simulate(
            ws,
            model,
            champion=1,
            challenger=challenger,
            traffic=frame,
            interval=timedelta(minutes=10),
            workdir=tmp_path / f"replay-{through_gateway}",
            through_gateway=through_gateway,
        )
        for through_gateway in (False, True)
    ]


def _same_numbers(batched: Any, gateway: Any, where: str = "") -> None:
    """Equal, floats to the last few bits (sums in another order), latency left out."""
    if isinstance(batched, dict):
        assert set(batched) == set(gateway), where
        for key in batched:
            if not any(word in key for word in LATENCY):
                _same_numbers(batched[key], gateway[key], f"{where}.{key}")
    elif isinstance(batched, list):
        assert len(batched) == len(gateway), where
        for k, (a, b) in enumerate(zip(batched, gateway, strict=True)):
            _same_numbers(a, b, f"{where}[{k}]")
    elif isinstance(batched, float) and isinstance(gateway, float):
        assert batched == pytest.approx(gateway, rel=1e-9, abs=1e-12, nan_ok=True), where
    else:
        assert batched == gateway, where


def assert_replays_agree(batched: SimulationResult, gateway: SimulationResult) -> None:
    """The batched and the gateway replay of the same traffic decided alike, on the same numbers."""
    assert (batched.outcome, batched.stage, batched.rule) == (gateway.outcome, gateway.stage, gateway.rule)
    assert (batched.requests, batched.failed_requests, batched.labels, batched.served) == (
        gateway.requests,
        gateway.failed_requests,
        gateway.labels,
        gateway.served,
    )
    moves = [(e["time"], e["from"], e["to"], e["rule"]) for e in batched.timeline]
    assert moves == [(e["time"], e["from"], e["to"], e["rule"]) for e in gateway.timeline]
    for ours, theirs in zip(batched.timeline, gateway.timeline, strict=True):
        _same_numbers(ours["numbers"], theirs["numbers"], ours["to"])
        assert ours["reason"] == theirs["reason"] or any(word in ours["reason"] for word in LATENCY)


@pytest.mark.parametrize(("challenger", "outcome"), [(2, "promoted"), (3, "rejected")])
def test_the_batched_replay_decides_as_the_gateway(
    rollout_ws: Workspace, tmp_path: Path, challenger: int, outcome: str
) -> None:
    batched, gateway = replay_both_ways(rollout_ws, tmp_path, challenger, _traffic())
    assert batched.outcome == outcome
    assert_replays_agree(batched, gateway)


@pytest.mark.parametrize("policy_yaml", [WILCOXON_PER_USER, MANN_WHITNEY, COVERAGE], ids=lambda p: "")
def test_the_evidence_only_some_policies_read_is_the_same(rollout_ws: Workspace, tmp_path: Path) -> None:
    """A challenger whose errors never tie with the champion's: ranks (Wilcoxon, Mann-Whitney) of
    near-ties would follow the last bits of each prediction, which depend on the micro-batch a row
    was scored in (a BLAS product over 1 row or over 100), not on the replay."""
    scaled = register_model(rollout_ws, ScaledModel(fit_base(tmp_path), 0.97), tmp_path / "scaled.joblib")
    batched, gateway = replay_both_ways(rollout_ws, tmp_path, scaled, _traffic(anonymous_every=5))
    assert batched.outcome != "undecided"
    assert_replays_agree(batched, gateway)


@pytest.mark.parametrize("policy_yaml", [SAMPLED])
def test_sampled_shadows_anonymous_users_and_failing_rows_replay_alike(
    rollout_ws: Workspace, tmp_path: Path
) -> None:
    """A shadow on a sample of requests, requests without a user_id, and a challenger that raises on
    some rows and answers NaN on others: both replays fail, skip and pair the same requests."""
    model = Picky(fit_base(tmp_path))
    picky = register_model(rollout_ws, model, tmp_path / "picky.joblib", skip_check="fails on some rows")
    batched, gateway = replay_both_ways(rollout_ws, tmp_path, picky, _traffic(anonymous_every=7))
    assert batched.timeline[-1]["numbers"]  # a decision with its numbers was reached
    assert_replays_agree(batched, gateway)


def _batched(rollout_ws: Workspace, tmp_path: Path, timed_calls: int, requests: int = 3000) -> BatchedReplay:
    """v2 against v1 on 12 hours of `requests`, batched, timing `timed_calls` calls per interval, role
    and arm."""
    frame = prepare_traffic(make_traffic("2026-03-01T00:00:00+00:00", 12, requests), ["a", "b"])
    clock = ManualClock(frame["time"].iloc[0].to_pydatetime() - timedelta(seconds=1))
    ws = _throwaway_workspace(rollout_ws, rollout_ws.config.policy, tmp_path / f"replay-{timed_calls}", clock)
    pace = timedelta(minutes=10), timedelta(seconds=1)
    try:
        _start_replay_rollout(rollout_ws, ws, rollout_ws.model("eta"), (1, 2), seed=0)
        replay = BatchedReplay(ws, "eta", frame, clock, *pace, None, timed_calls=timed_calls)
        replay.run()
    finally:
        ws.close()
    return replay


def test_the_batched_replay_times_real_calls_for_latency(rollout_ws: Workspace, tmp_path: Path) -> None:
    replay = _batched(rollout_ws, tmp_path, 8)
    history = replay.ledger.champion_history.summary()
    assert history.latency_call_count == replay.champion_calls_timed > 0
    assert history.latency_p50 is not None and history.latency_p99 is not None
    assert 0 < history.latency_p50 <= history.latency_p99 < 10_000
    assert replay.latency_rules_from is None  # 8 calls per 10 minutes bound no p99 by the promotion


def test_with_enough_timed_calls_the_latency_rules_come_into_force(
    rollout_ws: Workspace, tmp_path: Path
) -> None:
    """A p99 bound needs about 550 champion calls: at 2,000 requests an hour, with every concurrency
    window timed, they come within the first hour."""
    replay = _batched(rollout_ws, tmp_path, 400, requests=24_000)
    assert replay.latency_rules_from is not None
    assert replay.latency_rules_from <= replay.first_time + timedelta(hours=1)


def test_a_nullable_integer_feature_replays_alike_and_only_its_missing_values_fail(
    rollout_ws: Workspace, tmp_path: Path
) -> None:
    """A Parquet integer column with gaps reads as pandas' nullable Int64: its values reach the
    gateway as numbers (numpy's scalars were refused, every request failing), its gaps as refusals."""
    frame = _traffic()
    frame["a"] = frame["a"].mul(3).round().astype("Int64")
    frame.loc[frame.index % 50 == 0, "a"] = pd.NA
    batched, gateway = replay_both_ways(rollout_ws, tmp_path, 2, frame)
    missing = int(frame["a"].isna()[frame["time"] < pd.Timestamp(batched.timeline[-1]["time"])].sum())
    assert 0 < gateway.failed_requests <= missing + 1
    assert_replays_agree(batched, gateway)
