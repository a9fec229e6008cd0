"""The A/B plan and the sequential memory as the store keeps them: every shape an earlier version wrote
reads, and is written back with the keys it had, so stored rollouts need no migration."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import update

from pitstop.config import ABStopping
from pitstop.rollout.controller import Controller
from pitstop.rollout.plan import AbPlan
from pitstop.rollout.state import SequentialMemory
from pitstop.store.tables import rollouts
from pitstop.workspace import Workspace
from rollout.conftest import send_traffic

# The plan the first rollouts stored (no `tau`, no supply curve, no reachability).
FIRST_PLAN: dict[str, Any] = {
    "shadow_effect": -0.04,
    "planned_effect": 0.04,
    "baseline_mean": 1.0,
    "baseline_std": 0.5,
    "win_plausible": True,
    "units_per_hour": 120.0,
    "n_champion": 40,
    "n_challenger": 40,
    "expected_hours": 0.7,
    "summary": "A/B plan: 40 challenger and 40 champion units (about 0.7h at the current traffic)",
}
# ...and the one after the mSPRT's scale was fixed at planning (`tau`), still without a sample size.
TAU_PLAN: dict[str, Any] = {
    "shadow_effect": 0.0,
    "planned_effect": 0.02,
    "baseline_mean": 1.0,
    "baseline_std": 0.0,
    "win_plausible": False,
    "units_per_hour": 120.0,
    "tau": 0.1,
    "n_champion": None,
    "n_challenger": None,
    "expected_hours": None,
    "summary": "A/B sample size unknown (no spread in the shadow data)",
}
# A memory from when the ramp remembered the champion's p99 latency.
LATENCY_MEMORY: dict[str, Any] = {
    "champion_p99_ms": 12.5,
    "champion_latency_samples": 300,
    "p_value": 0.25,
    "ci": [-0.4, 0.2],
}


def test_the_first_stored_plan_reads_with_none_for_the_keys_added_since() -> None:
    plan = AbPlan.from_json(FIRST_PLAN)
    assert (plan.tau, plan.stopping, plan.supply, plan.reachable, plan.needed_total) == (None,) * 5
    assert plan.required == {"champion": 40, "challenger": 40}


def test_older_plans_are_written_back_as_they_were_stored() -> None:
    for stored in (FIRST_PLAN, TAU_PLAN):
        assert json.dumps(AbPlan.from_json(stored).to_json()) == json.dumps(stored)


def test_a_plan_without_a_sample_size_requires_nothing() -> None:
    assert AbPlan.from_json(TAU_PLAN).required is None


def test_a_plan_made_now_keeps_its_keys_and_their_order(rollout_ws: Workspace) -> None:
    rollout_ws.start_rollout("eta", 2, skip_gate=True, reason="test")
    send_traffic(rollout_ws, 0.5, 200, decide=False)
    plan = rollout_ws.promote("eta", reason="plan from the pairs").state.plan
    assert plan is not None and plan.stopping is ABStopping.SEQUENTIAL and plan.supply is not None
    stored = plan.to_json()
    assert list(stored) == [
        "shadow_effect",
        "planned_effect",
        "baseline_mean",
        "baseline_std",
        "win_plausible",
        "stopping",
        "units_per_hour",
        "tau",
        "supply",
        "available_by_max_duration",
        "max_duration_hours",
        "n_champion",
        "n_challenger",
        "needed_total",
        "expected_hours",
        "reachable",
        "summary",
    ]
    assert stored["stopping"] == "sequential" and stored["supply"]["curve"]["seen"] == plan.supply.curve.seen
    assert AbPlan.from_json(json.loads(json.dumps(stored))) == plan


def test_an_empty_memory_is_stored_as_an_empty_object() -> None:
    assert SequentialMemory.from_json({}) == SequentialMemory() and SequentialMemory().to_json() == {}
    assert SequentialMemory.from_json(None) == SequentialMemory()


def test_a_memory_keeps_what_the_sequential_test_reads_and_drops_the_retired_latency() -> None:
    memory = SequentialMemory.from_json(LATENCY_MEMORY)
    assert memory == SequentialMemory(p_value=0.25, ci=(-0.4, 0.2))
    assert memory.to_json() == {"p_value": 0.25, "ci": [-0.4, 0.2]}


def test_a_rollout_stored_with_the_first_plan_and_an_old_memory_reads_and_decides(
    cli, rollout_ws: Workspace
) -> None:  # type: ignore[no-untyped-def]
    rollout_ws.start_rollout("eta", 2, skip_gate=True, reason="test")
    send_traffic(rollout_ws, 0.5, 200, decide=False)
    rollout_ws.promote("eta", reason="to the A/B test")
    with rollout_ws.writing() as conn:
        conn.execute(update(rollouts).values(plan=FIRST_PLAN, memory=LATENCY_MEMORY))
    state = rollout_ws.rollout_status("eta").rollout.state
    assert state.plan == AbPlan.from_json(FIRST_PLAN) and state.memory.p_value == 0.25
    result = cli("rollout", "status", "eta", "--json", "-w", rollout_ws.path)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["plan"] == FIRST_PLAN
    send_traffic(rollout_ws, 0.5, 200, decide=False)
    (step,) = Controller(rollout_ws).tick()
    assert step.applied, step
    with rollout_ws.reading() as conn:
        row = conn.execute(rollouts.select()).one()
    assert row.plan == FIRST_PLAN  # the A/B test's look rewrote neither the plan nor its keys
    assert set(row.memory) == {"p_value", "ci"}  # the retired latency keys are gone
