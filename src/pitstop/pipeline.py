"""`retrain`: train → offline gate → rollout start, the one call a scheduler (cron, Airflow) makes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from pitstop.gating import GateReport
from pitstop.registry import VersionInfo

if TYPE_CHECKING:
    from pitstop.workspace import Workspace


@dataclass(frozen=True)
class RetrainResult:
    """How far the new version got: `gate` (stopped there) or `rollout` (started, in shadow)."""

    model: str
    version: VersionInfo
    gate: GateReport
    rollout_id: int | None

    @property
    def stage(self) -> str:
        return "rollout" if self.rollout_id is not None else "gate"

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version.version,
            "stage": self.stage,
            "passed_gate": self.gate.passed,
            "decided_by": self.gate.decided_by,
            "rollout_id": self.rollout_id,
            "gate": self.gate.to_dict(),
        }


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
) -> RetrainResult:
    """Train a challenger, gate it against the champion, and start its rollout when the gate passes.

    Without a champion there is nothing to roll out against: the first version passes the gate and the
    result says so (stage `gate`); make it champion with `set-champion`.
    """
    version = ws.train(model, trainer=trainer, data=data, as_of=as_of, params=params, actor=actor)
    report = ws.gate(model, version.version, test_set=test_set, actor=actor)
    if not report.passed or report.champion_version is None:
        return RetrainResult(model, version, report, None)
    stored = ws.start_rollout(
        model, version.version, actor=actor, reason=f"retrain: gate passed on {test_set}"
    )
    return RetrainResult(model, version, report, stored.state.id)
