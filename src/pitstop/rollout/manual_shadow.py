"""A shadow set by hand (`pitstop route --mode shadow`), compared live with the tests and words of a
rollout's shadow phase: the same evidence, the same comparison, and what that phase would decide.

Nothing is decided or written: a hand-made shadow has no rollout to advance. The verdict says what a
rollout's shadow phase, under the chosen policy (`pitstop.yaml`'s by default), would do with this
evidence now, so a person can
judge a shadow they set up themselves by the rules a rollout would apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pitstop import registry
from pitstop.config import Policy
from pitstop.errors import ConflictError, NotFoundError
from pitstop.jsonable import json_safe
from pitstop.losses import Scoring
from pitstop.policies import ChosenPolicy, choose
from pitstop.rollout.comparison import live_comparison, sample_progress
from pitstop.rollout.decide import Decision, decide_shadow
from pitstop.rollout.evidence import Evidence
from pitstop.rollout.gather import Window, gather_evidence
from pitstop.rollout.phases import Phase
from pitstop.rollout.reads import phase_reads
from pitstop.rollout.records import active_rollout
from pitstop.rollout.state import RolloutState
from pitstop.routing.store import routing_history
from pitstop.routing.table import RoutingTable

if TYPE_CHECKING:
    from pitstop.context import Context


@dataclass(frozen=True)
class ShadowComparison:
    """A hand-made shadow's live evidence since it began, and what a rollout's shadow phase would do."""

    model: str
    champion_version: int
    shadow_version: int
    since: datetime  # when the routing that started this shadow was written
    since_routing_version: int
    now: datetime
    evidence: Evidence
    comparison: dict[str, Any]  # `comparison.live_comparison`, as `rollout status` shows it
    progress: dict[str, Any]  # `comparison.sample_progress`
    verdict: Decision  # what a rollout's shadow phase would decide now
    policy: Policy  # the policy whose shadow rules judge it
    policy_source: str  # where it came from (`policies.ChosenPolicy.source`)

    @property
    def elapsed_hours(self) -> float:
        return (self.now - self.since).total_seconds() / 3600

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = json_safe(
            {
                "model": self.model,
                "champion_version": self.champion_version,
                "shadow_version": self.shadow_version,
                "since": self.since.isoformat(),
                "since_routing_version": self.since_routing_version,
                "policy_source": self.policy_source,
                "elapsed_hours": self.elapsed_hours,
                "evidence": self.evidence.to_dict(),
                "comparison": self.comparison,
                "progress": self.progress,
                "verdict": {
                    "action": self.verdict.action.value,
                    "rule": self.verdict.rule,
                    "reason": self.verdict.reason,
                    "numbers": self.verdict.numbers,
                },
            }
        )
        return out


def shadow_start(history: list[RoutingTable]) -> RoutingTable | None:
    """The oldest table of the unbroken run of tables, ending with the current one, in which the same
    champion is shadowed by the same version by hand (no rollout); None when the current table has no
    hand-made shadow. A change of share or reason elsewhere in the table does not restart it."""
    if not history or history[-1].shadow is None or history[-1].rollout_id is not None:
        return None
    current = history[-1]
    start = current
    for table in reversed(history):
        if (table.champion, table.shadow, table.rollout_id) != (current.champion, current.shadow, None):
            break
        start = table
    return start


def compare(ctx: Context, model: str, chosen: ChosenPolicy | None = None) -> ShadowComparison:
    """The live comparison of the model's hand-made shadow with its champion, judged by the chosen
    policy's shadow rules (the workspace's `pitstop.yaml` by default)."""
    chosen = chosen or choose(ctx, None)
    policy = chosen.policy
    now = ctx.clock.now()
    with ctx.reading() as conn:
        info = registry.get_model(conn, model)
        running = active_rollout(conn, info.id)
        if running is not None:
            raise ConflictError(
                f"rollout {running.state.id} of {model!r} is active: its shadow is compared by "
                f"`pitstop rollout status {model}`"
            )
        start = shadow_start(routing_history(conn, info.id))
        if start is None or start.shadow is None:
            raise NotFoundError(
                f"model {model!r} has no shadow set by hand; set one with "
                f"`pitstop route {model} --mode shadow --challenger VERSION --reason …`"
            )
        window = Window(
            model_id=info.id,
            task=info.task,
            since_routing_version=start.version,
            started_at=start.created_at,
            now=now,
            loss=Scoring.of(info).loss,
            classes=len(info.classes or []),
            rollout_started_at=start.created_at,
        )
        evidence = gather_evidence(conn, window, phase_reads(Phase.SHADOW, policy))
    state = RolloutState(
        id=0,  # no rollout: nothing is stored under this id
        model=model,
        champion_version=start.champion,
        challenger_version=start.shadow,
        phase=Phase.SHADOW,
        step=None,
        phase_started_at=start.created_at,
        started_at=start.created_at,
        phase_routing_version=start.version,
        salt=start.salt,
    )
    return ShadowComparison(
        model=model,
        champion_version=start.champion,
        shadow_version=start.shadow,
        since=start.created_at,
        since_routing_version=start.version,
        now=now,
        evidence=evidence,
        comparison=live_comparison(state, policy, evidence),
        progress=sample_progress(state, policy, evidence),
        verdict=decide_shadow(state, policy, evidence, now),
        policy=policy,
        policy_source=chosen.source,
    )
