"""A rollout as the decision function sees it: plain values, no store."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pitstop.config import Policy
from pitstop.rollout.phases import Outcome, Phase
from pitstop.rollout.plan import AbPlan


@dataclass(frozen=True)
class SequentialMemory:
    """What the A/B test's always-valid test carries from one look to the next: its running p-value
    and confidence interval on the error difference (None before the first look that counts)."""

    p_value: float | None = None
    ci: tuple[float, float] | None = None

    def to_json(self) -> dict[str, Any]:
        """The stored shape: `{}` before the first look, then `p_value` and `ci` as a list."""
        out: dict[str, Any] = {}
        if self.p_value is not None:
            out["p_value"] = self.p_value
        if self.ci is not None:
            out["ci"] = list(self.ci)
        return out

    @classmethod
    def from_json(cls, stored: Mapping[str, Any] | None) -> SequentialMemory:
        """A memory as any version stored it. Rollouts from before the latency baseline was taken from
        every champion call also remembered the champion's p99 (`champion_p99_ms` and its counts):
        nothing reads those now, so they are dropped."""
        stored = stored or {}
        ci = stored.get("ci")
        return cls(p_value=stored.get("p_value"), ci=(float(ci[0]), float(ci[1])) if ci else None)


@dataclass(frozen=True)
class StepApproval:
    """A person's approval to leave ramp step `step` (an index into `ramp_shares`)."""

    step: int
    share: float
    by: str
    at: datetime
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "share": self.share,
            "by": self.by,
            "at": self.at.isoformat(),
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, stored: Mapping[str, Any]) -> StepApproval:
        return cls(
            int(stored["step"]),
            float(stored["share"]),
            str(stored["by"]),
            datetime.fromisoformat(stored["at"]),
            str(stored["reason"]),
        )


@dataclass(frozen=True)
class Hold:
    """Why and since when a rollout is held (a health trigger whose action is `hold`)."""

    since: datetime
    rule: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"since": self.since.isoformat(), "rule": self.rule, "reason": self.reason}


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
    plan: AbPlan | None = None  # the A/B plan, computed and stored when the A/B test starts
    memory: SequentialMemory = field(default_factory=SequentialMemory)
    outcome: Outcome | None = None
    stage: str | None = None
    reason: str | None = None
    ended_at: datetime | None = None
    revision: int = 0
    hold: Hold | None = None  # set while held: no step or promotion until a person resumes
    warned: frozenset[str] = frozenset()  # rules already warned about in this phase or step
    approvals: tuple[StepApproval, ...] = ()  # ramp steps a person approved leaving

    def approval(self, step: int | None) -> StepApproval | None:
        """The approval to leave ramp step `step`, if a person gave it."""
        return next((a for a in self.approvals if a.step == step), None)


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
