"""In force only when acknowledged: a look decides nothing that advances while some live gateway
still serves an older routing table of the model (guarantee 13).

Pure: the gateways' acknowledgements arrive in the evidence (`Evidence.gateways`, read from their
heartbeats by the gathering code). A look that finds a live gateway behind turns an advance or a
promotion into a wait saying which gateways it waits for; every ending (a guardrail rollback, a
rejection) and every hold stands, since those favour the champion. No heartbeat at all (a replay, a
controller without gateways) leaves every decision as it is.
"""

from __future__ import annotations

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


def when_acknowledged(rollout: RolloutState, evidence: Evidence, decision: Decision) -> Decision:
    """`decision`, or a wait when it would advance while some live gateway is behind."""
    if decision.action not in ADVANCING:
        return decision
    behind = unacknowledged(rollout, evidence)
    if not behind:
        return decision
    total, version = len(evidence.gateways), rollout.phase_routing_version
    serving = {ack.gateway: ack.routing_version for ack in evidence.gateways}
    return Decision(
        Action.STAY,
        Rule.HEALTH_UNACKNOWLEDGED,
        f"waiting for {len(behind)} of {total} gateway{'s' if total > 1 else ''} to serve routing "
        f"v{version} (otherwise this look would {decision.action.value}: {decision.rule})",
        {
            **decision.numbers,
            "routing_version": version,
            "gateways_live": total,
            "gateways_behind": {gateway: serving[gateway] for gateway in behind},
            "would_action": decision.action.value,
            "would_rule": str(decision.rule),
        },
        memory=decision.memory,
        warnings=decision.warnings,
    )
