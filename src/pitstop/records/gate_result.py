"""The offline gate's result as the registry stores it with a version: verdict, checks, metrics.

`gate.run` makes one; `to_json` is what the store and every JSON output hold, and `from_json` reads any
shape earlier versions stored (a key added later takes the default it had before).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from pitstop.rules import Rule


def _rule(name: str) -> Rule:
    """The rule a stored name means (`Rule(name)` at run time; the type checker reads `Rule`'s
    constructor as a member's definition)."""
    return cast(Rule, Rule._value2member_map_[name])


@dataclass(frozen=True)
class Check:
    name: Rule  # the check's rule: a failed check names the gate's verdict by it
    passed: bool
    observed: Any  # a number or a few words, as the check measured it
    threshold: Any
    detail: str
    skipped: bool = False
    review: bool = False  # failed, but only held for review: a person may accept it (`accept_review`)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "observed": self.observed,
            "threshold": self.threshold,
            "detail": self.detail,
            "review": self.review,
            "skipped": self.skipped,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Check:
        return cls(
            _rule(data["name"]),
            bool(data["passed"]),
            data.get("observed"),
            data.get("threshold"),
            data.get("detail", ""),
            bool(data.get("skipped", False)),
            bool(data.get("review", False)),
        )


@dataclass(frozen=True)
class TestSetRef:
    """The dataset snapshot a gate scored both models on."""

    __test__ = False  # not a pytest test class

    name: str
    version: int
    sha256: str
    rows: int

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "sha256": self.sha256, "rows": self.rows}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TestSetRef:
        return cls(data["name"], data["version"], data["sha256"], data["rows"])


@dataclass(frozen=True)
class Acceptance:
    """A person accepted a version held for review, saying why."""

    actor: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"actor": self.actor, "reason": self.reason}


@dataclass(frozen=True)
class Probes:
    """What the leakage checks measured: simple baselines' errors, one-feature models' errors
    (`leakage.FeatureScore.to_dict()`) and late features (`leakage.LateFeature.to_dict()`)."""

    baseline: dict[str, float] | None = None
    single_feature: list[dict[str, Any]] | None = None
    late_features: list[dict[str, Any]] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "single_feature": self.single_feature,
            "late_features": self.late_features,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Probes:
        return cls(data.get("baseline"), data.get("single_feature"), data.get("late_features"))


@dataclass(frozen=True)
class GateResult:
    model: str
    version: int
    champion_version: int | None
    test_set: TestSetRef
    passed: bool
    checks: list[Check]
    metrics: dict[str, dict[str, float] | None]  # {"challenger": …, "champion": …}; None: not scored
    evaluated_at: datetime
    decided_by: Rule | None = None
    # passed | failed | review (held: only a review hold failed) | accepted (a review accepted by a person)
    verdict: str = "passed"
    accepted: Acceptance | None = None
    probes: Probes | None = None

    def failed_checks(self) -> list[Check]:
        return [check for check in self.checks if not check.passed]

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "champion_version": self.champion_version,
            "test_set": self.test_set.to_json(),
            "passed": self.passed,
            "verdict": self.verdict,
            "decided_by": self.decided_by,
            "accepted": None if self.accepted is None else self.accepted.to_json(),
            "probes": None if self.probes is None else self.probes.to_json(),
            "checks": [check.to_dict() for check in self.checks],
            "metrics": self.metrics,
            "evaluated_at": self.evaluated_at.isoformat(),
        }

    to_dict = to_json  # the name callers of the gate's report have used

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GateResult:
        """A stored result, of any shape pitstop has written (results before review holds have no
        verdict, acceptance or probes)."""
        passed = bool(data["passed"])
        decided, accepted, probes = data.get("decided_by"), data.get("accepted"), data.get("probes")
        return cls(
            model=data["model"],
            version=data["version"],
            champion_version=data.get("champion_version"),
            test_set=TestSetRef.from_json(data["test_set"]),
            passed=passed,
            checks=[Check.from_json(check) for check in data.get("checks") or []],
            metrics=dict(data.get("metrics") or {}),
            evaluated_at=datetime.fromisoformat(data["evaluated_at"]),
            decided_by=None if decided is None else _rule(decided),
            verdict=data.get("verdict") or ("passed" if passed else "failed"),
            accepted=None if accepted is None else Acceptance(accepted["actor"], accepted["reason"]),
            probes=None if probes is None else Probes.from_json(probes),
        )
