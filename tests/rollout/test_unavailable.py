"""A challenger that gateways report they cannot load ends its rollout after `shadow.unavailable_after`,
instead of waiting days for labels that cannot come (the pure decision, with hand-made evidence)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pitstop.config import Policy
from pitstop.rollout.decide import decide
from pitstop.rollout.evidence import Evidence
from pitstop.rollout.phases import Action, Phase
from pitstop.rollout.state import RolloutState, SequentialMemory
from pitstop.store.load_failures import LoadFailure

START = datetime(2026, 1, 1, tzinfo=UTC)
POLICY = Policy()  # unavailable_after: 10 minutes
MISSING = "ModuleNotFoundError: No module named 'taxitrainers'"


def rollout(phase: Phase, step: int | None = None) -> RolloutState:
    return RolloutState(
        id=1,
        model="eta",
        champion_version=1,
        challenger_version=7,
        phase=phase,
        step=step,
        phase_started_at=START,
        started_at=START,
        phase_routing_version=1,
        salt="s",
        plan=None,
        memory=SequentialMemory(),
    )


def failing(since: datetime, until: datetime, *gateways: str) -> Evidence:
    """Evidence with no calls, and version 7 failing to load on `gateways` from `since` to `until`."""
    failures = tuple(
        LoadFailure(1, 7, "shadow", MISSING, since, until, 3, gateway) for gateway in gateways or ("g1",)
    )
    return Evidence(now=until, load_failures=failures)


def test_a_shadow_that_cannot_load_waits_for_the_grace_saying_why() -> None:
    now = START + timedelta(minutes=4)
    decision = decide(rollout(Phase.SHADOW), POLICY, failing(START, now), now)
    assert (decision.action, decision.rule) == (Action.STAY, "shadow.unavailable")
    assert decision.reason.startswith(f"challenger v7 cannot be loaded: {MISSING} (on 1 gateway, for 4m)")
    assert "rejected in 6m unless it loads" in decision.reason


def test_a_shadow_that_cannot_load_for_the_grace_is_rejected() -> None:
    now = START + timedelta(minutes=10)
    decision = decide(rollout(Phase.SHADOW), POLICY, failing(START, now, "g1", "g2"), now)
    assert (decision.action, decision.rule) == (Action.REJECT, "shadow.unavailable")
    assert decision.reason.startswith(f"challenger v7 cannot be loaded: {MISSING} (on 2 gateways")
    assert decision.numbers["gateways"] == 2 and decision.numbers["attempts"] == 6


@pytest.mark.parametrize(("phase", "step"), [(Phase.AB_TEST, None), (Phase.RAMP, 0)])
def test_a_served_challenger_that_cannot_load_for_the_grace_is_rolled_back(
    phase: Phase, step: int | None
) -> None:
    now = START + timedelta(minutes=11)
    decision = decide(rollout(phase, step), POLICY, failing(START, now), now)
    assert (decision.action, decision.rule) == (Action.ROLLBACK, "guardrail.unavailable")


def test_within_the_grace_an_ab_test_decides_as_usual() -> None:
    now = START + timedelta(minutes=5)
    decision = decide(rollout(Phase.AB_TEST), POLICY, failing(START, now), now)
    assert decision.rule != "guardrail.unavailable"


def test_the_grace_counts_from_the_phase_start_and_ignores_failures_reported_before_it() -> None:
    earlier = START - timedelta(hours=1)
    now = START + timedelta(minutes=5)
    still = decide(rollout(Phase.SHADOW), POLICY, failing(earlier, now), now)
    gone = decide(rollout(Phase.SHADOW), POLICY, failing(earlier, START - timedelta(minutes=1)), now)
    assert (still.action, still.rule) == (Action.STAY, "shadow.unavailable")  # 5 of 10 minutes
    assert gone.rule != "shadow.unavailable"


def test_the_grace_is_a_validated_policy_key() -> None:
    assert Policy.model_validate(
        {"shadow": {"unavailable_after": "2m"}}
    ).shadow.unavailable_after == timedelta(minutes=2)
    with pytest.raises(ValueError, match="unavailable_after"):
        Policy.model_validate({"shadow": {"unavailable_after": "0s"}})
