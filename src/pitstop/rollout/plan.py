"""The A/B plan as a rollout keeps it: typed values between the store and the edges.

`planning.py` makes the plan from the shadow's evidence; this module is the record, and its JSON is
the stored shape. Plans stored by earlier versions lack the keys added since; they read with None
there and are written back with the keys they had, so no stored rollout needs a migration.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from pitstop.config import ABStopping
from pitstop.stats.population import UserCurve


@dataclass(frozen=True)
class Supply:
    """The units (users, or requests for a request-level method) the A/B test can expect to analyse.

    From the shadow window: `seen` distinct units in `window_hours`, of which `labelled_share` had a
    label; the curve extrapolates the distinct units to any duration. A unit counts in the A/B test once
    its label has matured, so `labelled_by(hours)` is labelled_share x D(hours - maturation).
    """

    unit: str  # "users" or "requests"
    seen: int
    window_hours: float
    labelled_share: float
    maturation_hours: float
    curve: UserCurve
    how: str  # how the count was made, in words

    def labelled_by(self, hours: float) -> float:
        return self.labelled_share * self.curve.users_by(hours - self.maturation_hours)

    def hours_to(self, labelled: float) -> float | None:
        """Hours until `labelled` units have matured labels (None: the population has fewer)."""
        if self.labelled_share <= 0:
            return None
        hours = self.curve.hours_to(labelled / self.labelled_share)
        return None if hours is None else hours + self.maturation_hours

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, stored: Mapping[str, Any]) -> Supply:
        curve = stored["curve"]
        return cls(
            unit=stored["unit"],
            seen=stored["seen"],
            window_hours=stored["window_hours"],
            labelled_share=stored["labelled_share"],
            maturation_hours=stored["maturation_hours"],
            curve=UserCurve(
                rate_per_hour=curve["rate_per_hour"],
                population=curve["population"],
                theta_hours=curve["theta_hours"],
                seen=curve["seen"],
                window_hours=curve["window_hours"],
            ),
            how=stored["how"],
        )


# Keys the first plans did not write, left out while unset so that such a plan is written back as it
# was stored. Every plan made now has them, except `needed_total` without a sample size.
_LATER_KEYS = frozenset(
    {"stopping", "tau", "supply", "available_by_max_duration", "max_duration_hours", "needed_total"}
)


@dataclass(frozen=True, kw_only=True)
class AbPlan:
    """What the A/B test was planned with when the shadow passed (fields in the stored key order).

    The sample size fields are None when the shadow data had no spread to size the test with.
    """

    shadow_effect: float  # challenger/champion error - 1 on the shadow's labelled pairs
    planned_effect: float  # the improvement the test is sized to detect
    baseline_mean: float  # the champion's mean error in shadow
    baseline_std: float  # the spread of one unit's error
    win_plausible: bool  # the shadow effect beats the margin
    stopping: ABStopping | None = None  # None: a plan made before the sequential rule was planned for
    units_per_hour: float
    tau: float | None = None  # the mSPRT's mixture scale (None: the test picks it, as plans before it)
    supply: Supply | None = None
    available_by_max_duration: float | None = None  # labelled units expected by ab_test.max_duration
    max_duration_hours: float | None = None
    n_champion: int | None = None
    n_challenger: int | None = None
    needed_total: int | None = None
    expected_hours: float | None = None
    reachable: bool | None = None  # the plan is reached within max_duration (None: unknown)
    summary: str

    def to_json(self) -> dict[str, Any]:
        """The stored shape: the keys this plan's version wrote, in the order it wrote them."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and f.name in _LATER_KEYS:
                continue
            out[f.name] = value.to_json() if isinstance(value, Supply) else value
        if self.stopping is None:  # `reachable` came with `stopping`, written even when unknown
            del out["reachable"]
        else:
            out["stopping"] = self.stopping.value
        return out

    @classmethod
    def from_json(cls, stored: Mapping[str, Any]) -> AbPlan:
        """A plan as any version stored it; the keys a version did not write read as None."""
        stopping, supply = stored.get("stopping"), stored.get("supply")
        return cls(
            shadow_effect=stored["shadow_effect"],
            planned_effect=stored["planned_effect"],
            baseline_mean=stored["baseline_mean"],
            baseline_std=stored["baseline_std"],
            win_plausible=stored["win_plausible"],
            stopping=None if stopping is None else ABStopping(stopping),
            units_per_hour=stored["units_per_hour"],
            tau=stored.get("tau"),
            supply=None if supply is None else Supply.from_json(supply),
            available_by_max_duration=stored.get("available_by_max_duration"),
            max_duration_hours=stored.get("max_duration_hours"),
            n_champion=stored.get("n_champion"),
            n_challenger=stored.get("n_challenger"),
            needed_total=stored.get("needed_total"),
            expected_hours=stored.get("expected_hours"),
            reachable=stored.get("reachable"),
            summary=stored["summary"],
        )

    @property
    def required(self) -> dict[str, int] | None:
        """Units per arm the test needs (None: the plan has no sample size)."""
        if self.n_champion is None or self.n_challenger is None:
            return None
        return {"champion": self.n_champion, "challenger": self.n_challenger}
