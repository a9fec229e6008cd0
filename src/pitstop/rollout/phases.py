"""Named states of a rollout, each documented, and what a decision can do."""

from __future__ import annotations

from enum import StrEnum


class Phase(StrEnum):
    """Where an active rollout is."""

    GATE = "gate"  # the offline gate: passed before a rollout starts (or skipped with a recorded reason)
    SHADOW = "shadow"  # the challenger scores live requests off the request path; users get the champion
    AB_TEST = "ab_test"  # a sticky share of users is served by the challenger; the win is tested
    RAMP = "ramp"  # the challenger's share grows step by step; guardrails may roll back at any look
    DONE = "done"  # ended: see the outcome


class Outcome(StrEnum):
    """How a rollout ended."""

    PROMOTED = "promoted"  # the challenger is champion; the old champion is `previous`, on standby
    REJECTED = "rejected"  # a gate said no (or was inconclusive): the champion keeps serving
    ROLLED_BACK = "rolled_back"  # harm seen while users were served by the challenger: all traffic back
    ABORTED = "aborted"  # stopped by a person; the champion keeps serving


class Action(StrEnum):
    """What a decision does."""

    STAY = "stay"  # keep going in the same phase/step (no routing change)
    ADVANCE = "advance"  # next phase or ramp step
    PROMOTE = "promote"  # the challenger becomes champion
    REJECT = "reject"  # end: rejected, champion stays
    ROLLBACK = "rollback"  # end: rolled back, champion serves everyone at once
    ABORT = "abort"  # end: aborted by a person
    HOLD = "hold"  # freeze the share until a person resumes or rolls back (a health trigger's action)


ENDING = {
    Action.PROMOTE: Outcome.PROMOTED,
    Action.REJECT: Outcome.REJECTED,
    Action.ROLLBACK: Outcome.ROLLED_BACK,
    Action.ABORT: Outcome.ABORTED,
}
