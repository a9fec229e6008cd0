"""A ramp step's gate (`ramp.gates`) as a look sees it: what leaving the step needs, and what it has."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pitstop.config import Policy
from pitstop.rollout.evidence import ArmSummary
from pitstop.rollout.state import RolloutState, StepApproval, ramp_shares


@dataclass(frozen=True)
class GateProgress:
    """The current ramp step's gate: its minimum duration, labelled users per arm, and approval."""

    step: int
    share: float
    min_duration: timedelta  # the gate's, else `ramp.dwell`
    min_labelled_users: int
    labelled_users_champion: int
    labelled_users_challenger: int
    approval: bool  # whether leaving the step needs a person's approval
    approved: StepApproval | None

    @classmethod
    def of(
        cls, rollout: RolloutState, policy: Policy, champion: ArmSummary, challenger: ArmSummary
    ) -> GateProgress:
        step = rollout.step or 0
        share = ramp_shares(policy)[step]
        gate = policy.ramp.gate(share)
        return cls(
            step=step,
            share=share,
            min_duration=policy.ramp.dwell if gate.min_duration is None else gate.min_duration,
            min_labelled_users=gate.min_labelled_users,
            labelled_users_champion=int(champion.moments.users),
            labelled_users_challenger=int(challenger.moments.users),
            approval=gate.approval,
            approved=rollout.approval(step),
        )

    @property
    def labelled_users(self) -> int:
        """The fewer labelled users of the two arms: what `min_labelled_users` is held against."""
        return min(self.labelled_users_champion, self.labelled_users_challenger)

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "share": self.share,
            "min_duration_hours": self.min_duration.total_seconds() / 3600,
            "min_labelled_users": self.min_labelled_users,
            "labelled_users": {
                "champion": self.labelled_users_champion,
                "challenger": self.labelled_users_challenger,
            },
            "approval": self.approval,
            "approved_by": None if self.approved is None else self.approved.by,
            "approved_at": None if self.approved is None else self.approved.at.isoformat(),
        }
