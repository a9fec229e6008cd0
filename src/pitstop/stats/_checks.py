"""Input checks shared by the statistics functions; each failure is a ValueError naming the rule it broke."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from pitstop.stats.arms import ArmEstimate

FloatArray = npt.NDArray[np.float64]


def sample(name: str, values: npt.ArrayLike, *, min_size: int = 1) -> FloatArray:
    """`values` as a one-dimensional float array of finite numbers, at least `min_size` long."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numbers") from None
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size < min_size:
        raise ValueError(f"{name} needs at least {min_size} value(s), got {array.size}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def counts(name: str, values: npt.ArrayLike, *, min_size: int = 1, minimum: int = 0) -> FloatArray:
    """Whole numbers, each at least `minimum` (returned as floats, ready for arithmetic)."""
    array = sample(name, values, min_size=min_size)
    if np.any(array != np.round(array)):
        raise ValueError(f"{name} must be whole numbers")
    if np.any(array < minimum):
        raise ValueError(f"{name} must each be at least {minimum}")
    return array


def same_length(first: str, a: FloatArray, second: str, b: FloatArray) -> None:
    if a.size != b.size:
        raise ValueError(f"{first} and {second} must have the same length, got {a.size} and {b.size}")


def finite(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    return value


def positive(name: str, value: float) -> float:
    value = finite(name, value)
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return value


def non_negative(name: str, value: float) -> float:
    value = finite(name, value)
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value}")
    return value


def open_unit(name: str, value: float) -> float:
    """A probability or share strictly between 0 and 1."""
    value = float(value)
    if not 0 < value < 1:  # also rejects NaN
        raise ValueError(f"{name} must be strictly between 0 and 1, got {value}")
    return value


def alpha_level(alpha: float, *, below: float = 1.0) -> float:
    alpha = open_unit("alpha", alpha)
    if alpha >= below:
        raise ValueError(f"alpha must be below {below}, got {alpha}")
    return alpha


def whole(name: str, value: float, *, minimum: int) -> int:
    number = finite(name, value)
    if number != round(number) or number < minimum:
        raise ValueError(f"{name} must be a whole number of at least {minimum}, got {value}")
    return round(number)


def same_method(champion: ArmEstimate, challenger: ArmEstimate) -> None:
    """Two arms compared must be estimated the same way (per user, or per request)."""
    if champion.method != challenger.method:
        raise ValueError(f"the arms were estimated differently ({champion.method} vs {challenger.method})")


def some_variance(variance: float) -> float:
    """A test needs errors that vary: both arms at zero variance leave nothing to test."""
    if variance == 0:
        raise ValueError("both arms have zero variance: every error is the same, there is nothing to test")
    return variance
