"""`retrain`: train → offline gate → rollout start, the one call a scheduler (cron, Airflow) makes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from pitstop import registry
from pitstop.errors import ConflictError, UsageError
from pitstop.policies import PolicyChoice, choose
from pitstop.records.gate_result import GateResult
from pitstop.registry import VersionInfo

if TYPE_CHECKING:
    from pitstop.workspace import Workspace


@dataclass(frozen=True)
class ActiveRollout:
    """The rollout that kept a retrain from starting one: one rollout per model at a time."""

    id: int
    phase: str
    challenger_version: int

    def describe(self, model: str) -> str:
        return (
            f"rollout {self.id} of {model!r} is active ({self.phase}, challenger "
            f"v{self.challenger_version}); wait for it to end or `pitstop rollout abort {model} --reason …`"
        )


@dataclass(frozen=True)
class RetrainResult:
    """How far the new version got.

    `stage` is where it stopped: `train` (training failed: `train_error` says why, nothing registered),
    `gate` (failed it, or passed with no champion to roll out against) or `rollout` (started; or, with
    `active_rollout`, refused because another rollout of the model is running: before training when
    that one was already active, after the gate when it began meanwhile).
    """

    model: str
    version: VersionInfo | None
    gate: GateResult | None
    rollout_id: int | None
    active_rollout: ActiveRollout | None = None
    train_error: str | None = None
    train_failure: UsageError | None = field(default=None, compare=False, repr=False)  # for an edge to word
    policy_source: str | None = None  # where the started rollout's policy came from

    @property
    def stage(self) -> str:
        if self.train_error is not None:
            return "train"
        return "rollout" if self.rollout_id is not None or self.active_rollout is not None else "gate"

    @property
    def started(self) -> bool:
        return self.rollout_id is not None

    @property
    def reason(self) -> str:
        if self.train_error is not None:
            return f"training failed: {self.train_error}"
        if self.active_rollout is not None:
            return self.active_rollout.describe(self.model)
        if self.started:
            return "offline gate passed: rollout started in shadow"
        assert self.gate is not None
        if self.gate.passed:
            return "offline gate passed, but there is no champion to roll out against"
        return f"offline gate failed ({self.gate.decided_by})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version.version if self.version else None,
            "stage": self.stage,
            "started": self.started,
            "passed_gate": self.gate.passed if self.gate else None,
            "decided_by": self.gate.decided_by if self.gate else None,
            "rollout_id": self.rollout_id,
            "active_rollout_id": self.active_rollout.id if self.active_rollout else None,
            "reason": self.reason,
            "policy_source": self.policy_source,
            "train_error": self.train_error,
            "gate": self.gate.to_dict() if self.gate else None,
        }


def active_rollout(ws: Workspace, model: str) -> ActiveRollout | None:
    """The model's running rollout, if any."""
    from pitstop.rollout.records import active_rollout as stored_active  # rollouts build on Workspace

    with ws.reading() as conn:
        stored = stored_active(conn, registry.get_model(conn, model).id)
    if stored is None:
        return None
    return ActiveRollout(stored.state.id, stored.state.phase.value, stored.state.challenger_version)


def retrain(
    ws: Workspace,
    model: str,
    *,
    trainer: str,
    data: str,
    test_set: str,
    as_of: pd.Timestamp | None = None,
    params: dict[str, Any] | None = None,
    actor: str | None = None,
    policy: PolicyChoice = None,
) -> RetrainResult:
    """Train a challenger, gate it against the champion, and start its rollout when the gate passes.

    A rollout of the model already running stops it before training: nothing is trained or
    registered. So does a training that fails (bad data, a trainer that will not import or raises):
    stage `train`, with the error. Without a champion there is nothing to roll out against: the first
    version passes the gate and the result says so (stage `gate`); make it champion with `set-champion`.
    An unknown test set, or a `policy` that is not a valid file or a named policy, is refused before
    training, so a typo trains nothing; its `gate` section judges the gate, and the rollout starts with
    it (`Workspace.start_rollout`).
    """
    running = active_rollout(ws, model)
    if running is not None:
        return RetrainResult(model, None, None, None, running)
    ws.dataset(test_set)
    chosen = None if policy is None else choose(ws, policy)
    try:
        version = ws.train(model, trainer=trainer, data=data, as_of=as_of, params=params, actor=actor)
    except UsageError as error:
        return RetrainResult(model, None, None, None, train_error=str(error), train_failure=error)
    gate_policy = None if chosen is None else chosen.policy.gate  # the policy given decides the gate too
    report = ws.gate(model, version.version, test_set=test_set, actor=actor, policy=gate_policy)
    if not report.passed or report.champion_version is None:
        return RetrainResult(model, version, report, None)
    try:
        stored = ws.start_rollout(
            model,
            version.version,
            actor=actor,
            reason=f"retrain: gate passed on {test_set}",
            policy=chosen,
        )
    except ConflictError:
        running = active_rollout(ws, model)  # one began while this version trained
        if running is None:
            raise
        return RetrainResult(model, version, report, None, running)
    return RetrainResult(model, version, report, stored.state.id, policy_source=stored.policy_source)
