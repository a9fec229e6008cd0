"""A rollout as the decision function sees it: plain values, no store."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pitstop.config import Policy
from pitstop.rollout.phases import Outcome, Phase


@dataclass(frozen=True)
class RolloutState:
    id: int
    model: str
    champion_version: int
    challenger_version: int
    phase: Phase
    step: int | None  # index into `ramp_shares(policy)` while in the ramp
    phase_started_at: datetime
    started_at: datetime
    phase_routing_version: int  # evidence of this phase/step is what was routed from this version on
    salt: str
    plan: dict[str, Any] | None = None  # the A/B plan, computed and stored when the A/B test starts
    memory: dict[str, Any] = field(default_factory=dict)  # running sequential-test state between looks
    outcome: Outcome | None = None
    stage: str | None = None
    reason: str | None = None
    ended_at: datetime | None = None
    revision: int = 0


def ramp_shares(policy: Policy) -> list[float]:
    """The ramp's challenger shares (0-1): the policy's steps above the A/B share (those at or below it
    are already passed by the A/B test itself).

    >>> ramp_shares(Policy())
    [0.25, 0.5, 1.0]
    """
    return [step / 100 for step in policy.ramp.steps if step / 100 > policy.ab_test.share + 1e-12]


def challenger_share(state: RolloutState, policy: Policy) -> float:
    """The share of users the challenger serves in this phase/step."""
    if state.phase is Phase.AB_TEST:
        return policy.ab_test.share
    if state.phase is Phase.RAMP and state.step is not None:
        return ramp_shares(policy)[state.step]
    return 0.0
