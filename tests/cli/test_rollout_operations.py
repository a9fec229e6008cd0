"""`pitstop rollout resume|approve` and what `rollout status` says of holds and step gates."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from pitstop.rollout.controller import Controller
from pitstop.workspace import Workspace
from rollout.test_hold import GATED_POLICY, clock, served, to_ramp


def hold(ws: Workspace) -> None:
    """Hold the rollout at its first ramp step: a user served by both arms."""
    routing = to_ramp(ws)
    served(ws, routing, [("a", "champion"), ("a", "challenger")])
    clock(ws).advance(timedelta(minutes=5))
    Controller(ws).tick()
    assert ws.rollouts("eta")[-1].state.hold is not None


def test_status_shows_a_hold_and_resume_clears_it(rollout_ws: Workspace, cli) -> None:  # type: ignore[no-untyped-def]
    ws = ["-w", str(rollout_ws.path)]
    hold(rollout_ws)
    shown = cli("rollout", "status", "eta", *ws)
    assert shown.exit_code == 0 and "held since 2026-03-01T00:05:00Z by health.both_arms" in shown.stdout
    data = json.loads(cli("rollout", "status", "eta", "--json", *ws).stdout)
    assert data["held"]["rule"] == "health.both_arms"
    assert "ramp (held)" in cli("rollout", "list", "eta", *ws).stdout
    assert cli("rollout", "resume", "eta", *ws).exit_code == 2  # --reason is required
    said = cli("rollout", "resume", "eta", "--reason", "client fixed", "--by", "ana", *ws)
    assert (said.exit_code, said.stdout.strip()) == (0, "rollout 1 of eta: now ramp 75%")
    again = cli("rollout", "resume", "eta", "--reason", "again", *ws)
    assert again.exit_code == 2 and "not held" in again.stderr and len(again.stderr.strip().splitlines()) == 1
    history = json.loads(cli("rollout", "history", "eta", "--json", *ws).stdout)
    kinds = [(e["kind"], e["actor"], e["to_state"]) for e in history if e["kind"].startswith("rollout_")]
    assert kinds[-2:] == [
        ("rollout_held", "controller", "ramp 75% held"),
        ("rollout_resumed", "ana", "ramp 75%"),
    ]


def test_resume_json_is_the_rollout(rollout_ws: Workspace, cli) -> None:  # type: ignore[no-untyped-def]
    hold(rollout_ws)
    out = cli("rollout", "resume", "eta", "--reason", "fixed", "--json", "-w", str(rollout_ws.path))
    data = json.loads(out.stdout)
    assert (out.exit_code, data["held"], data["phase"], data["step"]) == (0, None, "ramp", 0)


@pytest.mark.parametrize("policy_yaml", [GATED_POLICY], ids=["approval-at-75"])
def test_approve_is_recorded_and_status_shows_the_gate(rollout_ws: Workspace, cli) -> None:  # type: ignore[no-untyped-def]
    ws = ["-w", str(rollout_ws.path)]
    rollout_ws.start_rollout("eta", 2, skip_gate=True, reason="test")
    early = cli("rollout", "approve", "eta", "--reason", "too soon", *ws)
    assert early.exit_code == 2 and "only a ramp step is approved" in early.stderr
    for why in ("to the A/B test", "to the ramp"):
        rollout_ws.promote("eta", reason=why)
    assert "approval pending" in cli("rollout", "status", "eta", *ws).stdout
    said = cli("rollout", "approve", "eta", "--reason", "dashboards fine", "--by", "ana", *ws)
    assert said.exit_code == 0 and said.stdout.startswith("rollout 1 of eta: leaving 75% approved by ana at ")
    status = json.loads(cli("rollout", "status", "eta", "--json", *ws).stdout)
    assert status["gate"]["approved_by"] == "ana" and status["approvals"][0]["reason"] == "dashboards fine"
    words = " ".join(cli("rollout", "status", "eta", *ws).stdout.replace("│", " ").split())
    assert "step gate: 30m at least; approved by ana at 2026-" in words
    twice = cli("rollout", "approve", "eta", "--reason", "again", "--json", *ws)
    assert twice.exit_code == 2 and "was approved by ana" in twice.stderr
