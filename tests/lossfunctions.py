"""User loss functions (`--loss lossfunctions:NAME`) for the tests."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def absolute(
    predictions: npt.NDArray[np.float64], labels: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """The absolute error again, so a test can compare it with the built-in one."""
    return np.abs(predictions - labels)


def wrong_probability(
    predictions: npt.NDArray[np.float64], labels: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """1 - the probability given to the true class (multiclass: columns are classes, labels indices)."""
    return 1.0 - predictions[np.arange(len(labels)), labels.astype(int)]


def one_number(predictions: npt.NDArray[np.float64], labels: npt.NDArray[np.float64]) -> float:
    """Wrong: one number for every request."""
    return float(np.mean(np.abs(predictions - labels)))


def raises(predictions: npt.NDArray[np.float64], labels: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    raise ZeroDivisionError("the loss divided by zero")
