"""Stage 1: run the user's trainer on a point-in-time-correct slice of a snapshot, and reproduce it later."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from pitstop.datasets import DatasetSnapshot, parse_times
from pitstop.errors import UsageError
from pitstop.registry import ModelInfo, Task
from pitstop.scoring import binary_target, check_estimator

Trainer = Callable[[pd.DataFrame, pd.Series, dict[str, Any]], Any]


def import_trainer(reference: str) -> Trainer:
    """`package.module:function` → the function."""
    module_name, sep, function_name = reference.partition(":")
    if not sep or not module_name or not function_name:
        raise UsageError(f"--trainer {reference!r}: write it as package.module:function")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # the user's module may fail in any way while importing
        raise UsageError(
            f"--trainer {reference!r}: cannot import {module_name} ({type(error).__name__}: {error})"
        ) from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise UsageError(f"--trainer {reference!r}: {module_name} has no function {function_name!r}")
    trainer: Trainer = function
    return trainer


def infer_features(model: ModelInfo, snapshot: DatasetSnapshot, columns: list[str]) -> list[str]:
    """Every column that is not the target, a time column (the model's or the dataset's) or an id column."""
    reserved = {model.target, model.time_column, snapshot.time_column, *model.id_columns}
    return [str(c) for c in columns if c not in reserved]


def time_column_of(model: ModelInfo, snapshot: DatasetSnapshot) -> str | None:
    """The model's time column, else the snapshot's."""
    return model.time_column or snapshot.time_column


def rows_before(frame: pd.DataFrame, time_column: str | None, as_of: pd.Timestamp | None) -> pd.DataFrame:
    """Rows strictly before the as-of cutoff (all rows without one)."""
    if as_of is None:
        return frame
    if time_column is None or time_column not in frame.columns:
        raise UsageError("--as-of needs a time column: give the model or the dataset a --time-column")
    times = parse_times(frame[time_column], time_column, "training data")
    subset = frame[times < as_of]
    if subset.empty:
        raise UsageError(f"--as-of {as_of.isoformat()}: no rows before the cutoff")
    return subset


def training_frame(
    model: ModelInfo, frame: pd.DataFrame, features: list[str], source: str
) -> tuple[pd.DataFrame, pd.Series]:
    """X holds exactly the feature columns (never the target, time or ids); y the target."""
    missing = [c for c in [*features, model.target] if c not in frame.columns]
    if missing:
        raise UsageError(
            f"{source}: missing column(s) {', '.join(missing)} needed by model {model.name!r} "
            f"(features and target {model.target!r})"
        )
    X = frame[features].reset_index(drop=True)
    y = frame[model.target].reset_index(drop=True)
    if model.task is Task.CLASSIFICATION:
        y = binary_target(y, source)
    return X, y


def fit(trainer_ref: str, X: pd.DataFrame, y: pd.Series, params: dict[str, Any], task: Task) -> Any:
    """Call the trainer; any failure of the user's code becomes one clear UsageError."""
    trainer = import_trainer(trainer_ref)
    try:
        estimator = trainer(X.copy(), y.copy(), dict(params))
    except Exception as error:  # the user's trainer may fail in any way
        raise UsageError(f"trainer {trainer_ref} raised {type(error).__name__}: {error}") from None
    check_estimator(estimator, task, f"trainer {trainer_ref} returned an object that")
    return estimator


@dataclass(frozen=True)
class Reproduction:
    """Whether retraining from the recorded lineage gives the registered artifact's predictions."""

    model: str
    version: int
    matches: bool
    max_abs_difference: float
    rows: int
    trainer: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
