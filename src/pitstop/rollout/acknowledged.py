"""What the gateways report decides when a look may move users (guarantee 13): a look advances or
promotes only what every live gateway already serves and has ready.

Pure: the gateways' reports arrive in the evidence (`Evidence.gateways`, read from their heartbeats by
the gathering code). Two waits, checked in this order, turn an advance or a promotion into a stay that
names the gateways it waits for:

- in force only when acknowledged (`health.unacknowledged`): some live gateway still serves an older
  routing table of the model, so the step now judged is not yet in force everywhere;
- no mixed state (`health.not_warm`): the next table routes users to the challenger (shadow to A/B
  test, every ramp step, the promotion), but some live gateway has not loaded and warmed it. This is
  the rule KServe ModelMesh applies to its virtual models. During the shadow every gateway loads the
  challenger and warms it as the shadow, so a healthy fleet waits for nothing; a gateway whose warm-up
  failed tries it again at every refresh.

Every ending (a guardrail rollback, a rejection) and every hold stands, since those favour the
champion. No heartbeat at all (a replay, a controller without gateways) leaves every decision as it is.
"""

from __future__ import annotations

from typing import Any

from pitstop.rollout.decision import Decision
from pitstop.rollout.evidence import Evidence
from pitstop.rollout.phases import Action
from pitstop.rollout.state import RolloutState
from pitstop.rules import Rule

ADVANCING = (Action.ADVANCE, Action.PROMOTE)


def unacknowledged(rollout: RolloutState, evidence: Evidence) -> list[str]:
    """The live gateways that serve the model under a routing version older than the phase's."""
    current = rollout.phase_routing_version
    return sorted(ack.gateway for ack in evidence.gateways if ack.routing_version < current)


def not_warm(rollout: RolloutState, evidence: Evidence) -> list[str]:
    """The live gateways serving the model that have not warmed its challenger."""
    version = rollout.challenger_version
    return sorted(ack.gateway for ack in evidence.gateways if version not in ack.warmed)


def when_gateways_ready(rollout: RolloutState, evidence: Evidence, decision: Decision) -> Decision:
    """`decision`, or a wait when it would move users while some live gateway is behind or has not
    warmed the challenger."""
    if decision.action not in ADVANCING:
        return decision
    total = len(evidence.gateways)
    gateways = f"{total} gateway{'s' if total > 1 else ''}"
    behind = unacknowledged(rollout, evidence)
    if behind:
        version = rollout.phase_routing_version
        serving = {ack.gateway: ack.routing_version for ack in evidence.gateways}
        return _wait(
            decision,
            Rule.HEALTH_UNACKNOWLEDGED,
            f"waiting for {len(behind)} of {gateways} to serve routing v{version}",
            {
                "routing_version": version,
                "gateways_live": total,
                "gateways_behind": {gateway: serving[gateway] for gateway in behind},
            },
        )
    cold = not_warm(rollout, evidence)
    if cold:
        version = rollout.challenger_version
        warmed = {ack.gateway: list(ack.warmed) for ack in evidence.gateways}
        return _wait(
            decision,
            Rule.HEALTH_NOT_WARM,
            f"waiting for {len(cold)} of {gateways} to load and warm challenger v{version} before "
            f"users are routed to it",
            {
                "challenger_version": version,
                "gateways_live": total,
                "gateways_not_warm": {gateway: warmed[gateway] for gateway in cold},
            },
        )
    return decision


def _wait(decision: Decision, rule: Rule, waiting: str, numbers: dict[str, Any]) -> Decision:
    """A stay by `rule` that says what `decision` it holds back, keeping its numbers and memory."""
    return Decision(
        Action.STAY,
        rule,
        f"{waiting} (otherwise this look would {decision.action.value}: {decision.rule})",
        {
            **decision.numbers,
            **numbers,
            "would_action": decision.action.value,
            "would_rule": str(decision.rule),
        },
        memory=decision.memory,
        warnings=decision.warnings,
    )
