"""What a look decides: the action, the rule that fired, why, and the numbers it saw."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pitstop.rollout.phases import Action
from pitstop.rollout.plan import AbPlan
from pitstop.rollout.state import SequentialMemory
from pitstop.rules import Rule


@dataclass(frozen=True)
class HealthWarning:
    """A health trigger whose action is `warn` fired: recorded once per phase or step, then ignored."""

    rule: Rule
    reason: str
    numbers: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    action: Action
    rule: Rule  # the rule that fired
    reason: str  # one sentence a person can act on
    numbers: dict[str, Any] = field(default_factory=dict)  # what the rule saw
    plan: AbPlan | None = None  # a new A/B plan to store (set when entering the A/B test)
    memory: SequentialMemory | None = None  # running sequential-test state to store (None: keep)
    warnings: tuple[HealthWarning, ...] = ()  # warnings not yet recorded in this phase or step

    @property
    def changes_phase(self) -> bool:
        return self.action not in (Action.STAY, Action.HOLD)
