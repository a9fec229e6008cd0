"""Running a model object on a table: the one place that knows how each task's output is read."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from pitstop.errors import UsageError
from pitstop.registry import Task


def predict_frame(task: Task, estimator: Any, features: pd.DataFrame) -> npt.NDArray[np.float64]:
    """Regression: `predict`. Classification: the positive-class probability, `predict_proba[:, 1]`."""
    if task is Task.CLASSIFICATION:
        output = np.asarray(estimator.predict_proba(features), dtype=float)
        if output.ndim != 2 or output.shape[1] != 2:
            raise UsageError(f"predict_proba returned shape {output.shape}; a binary classifier gives (n, 2)")
        return np.asarray(output[:, 1], dtype=float)
    return np.asarray(estimator.predict(features), dtype=float).reshape(-1)


def binary_target(values: pd.Series, source: str) -> pd.Series:
    """A two-class target as 0/1, the larger value being the positive class (as `classes_[1]`)."""
    classes = sorted(values.dropna().unique().tolist())
    if values.isna().any():
        raise UsageError(f"{source}: the target has missing values")
    if len(classes) != 2:
        shown = ", ".join(map(str, classes[:5])) + ("…" if len(classes) > 5 else "")
        raise UsageError(
            f"{source}: classification needs a binary target, found {len(classes)} classes ({shown})"
        )
    return pd.Series(values == classes[1], dtype=int, name=values.name)


def check_estimator(estimator: Any, task: Task, source: str) -> None:
    """A model must predict; a classifier must also give probabilities."""
    if not callable(getattr(estimator, "predict", None)):
        raise UsageError(f"{source}: the object ({type(estimator).__name__}) has no predict method")
    if task is Task.CLASSIFICATION and not callable(getattr(estimator, "predict_proba", None)):
        raise UsageError(
            f"{source}: a classification model needs predict_proba ({type(estimator).__name__} has none)"
        )
