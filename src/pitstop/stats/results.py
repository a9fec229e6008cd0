"""The small, frozen result objects every statistics function returns; each has `to_dict()` for JSON."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Literal

from pitstop.jsonable import json_safe

Outcome = Literal["win", "loss", "inconclusive"]


class _AsDict:
    def to_dict(self) -> dict[str, Any]:
        instance: Any = self  # every subclass is a dataclass
        return {f.name: json_safe(getattr(self, f.name)) for f in fields(instance)}


@dataclass(frozen=True)
class TestResult(_AsDict):
    """A test of challenger against champion.

    `estimate` is on the scale the method names (a difference of mean errors, a relative effect, a
    probability); negative differences and effects mean the challenger has the lower error.
    `ci_low`/`ci_high` is the two-sided `1 - alpha` confidence interval of the estimate, `n` the number of
    independent units behind it (users, requests or request pairs), `df` the degrees of freedom of the
    reference t distribution (infinity for a normal one), `details` the method's other numbers.

    >>> TestResult("welch", -2.0, 0.05, -0.1, -0.2, 0.0, 40, 0.05).to_dict()["ci_high"]
    0.0
    """

    __test__: ClassVar[bool] = False  # not a pytest test class, despite the name

    method: str
    statistic: float
    p_value: float
    estimate: float
    ci_low: float
    ci_high: float
    n: int
    alpha: float
    df: float = math.inf
    details: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class SampleSize(_AsDict):
    """Required units per arm for a planned test (`n_total` = both arms; paired: request pairs)."""

    method: str
    n_champion: int
    n_challenger: int
    n_total: int
    alpha: float
    power: float
    mde: float
    share: float
    effect_size: float


@dataclass(frozen=True)
class SRMResult(_AsDict):
    """Chi-square goodness of fit of the units per arm against the shares they were assigned."""

    method: str
    statistic: float
    p_value: float
    df: int
    n: int
    observed: tuple[int, ...]
    expected_shares: tuple[float, ...]
    observed_shares: tuple[float, ...]
    threshold: float
    mismatch: bool


@dataclass(frozen=True)
class Verdict(_AsDict):
    """The A/B decision: `win`, `loss` or `inconclusive`, with the numbers it rests on.

    `ci_low`/`ci_high` is Fieller's two-sided `confidence` (= 1 - 2 alpha) interval of the relative
    effect, so each of its ends is a one-sided 1 - alpha bound (infinite, `null` in `to_dict()`, when the
    champion's mean is not significantly above zero); `p_value` is the one-sided p-value of the null
    hypothesis "the challenger is not better by more than the margin".
    """

    outcome: Outcome
    reason: str
    relative_effect: float
    ci_low: float
    ci_high: float
    confidence: float
    margin: float
    alpha: float
    statistic: float
    p_value: float
    df: float
    method: str
    n_champion: int
    n_challenger: int
