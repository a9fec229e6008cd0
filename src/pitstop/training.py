"""Stage 1: run the user's trainer on a point-in-time-correct slice of a snapshot, and reproduce it later."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from pitstop import model_files
from pitstop.datasets import DatasetSnapshot, parse_times
from pitstop.errors import USER_CODE_FAILURES, UsageError, describe, mention
from pitstop.registry import ModelInfo, Task
from pitstop.scoring import binary_target, check_target_complete, class_values
from pitstop.user_code import current_folder_importable, import_function

Trainer = Callable[[pd.DataFrame, pd.Series, dict[str, Any]], Any]


def import_trainer(reference: str, role: str | None = None) -> Trainer:
    """`package.module:function` → the trainer. `role` names where the reference came from in errors
    (default: the `trainer` parameter)."""
    trainer: Trainer = import_function(reference, "trainer", role)
    return trainer


def reserved_columns(model: ModelInfo, snapshot: DatasetSnapshot) -> dict[str, str]:
    """The columns that never go into X, each with what it is: the target, a time column (the model's or
    the dataset's) and the id columns."""
    reserved = {column: "an id column" for column in model.id_columns}
    if snapshot.time_column is not None:
        reserved[snapshot.time_column] = f"the time column of dataset {snapshot.ref}"
    if model.time_column is not None:
        reserved[model.time_column] = f"the time column of model {model.name!r}"
    reserved[model.target] = "the target"
    return reserved


def features_for(model: ModelInfo, snapshot: DatasetSnapshot, columns: Iterable[object]) -> list[str]:
    """The model's declared features, else (created with `--features all`, at its first version)
    every column that is not reserved.

    `models create` refuses a declared feature that is the model's own target, time or id column, but
    the dataset's time column is only known here: a model without a time column of its own that
    declares `time` as a feature, trained on data whose time column is `time`, would learn from it.
    """
    columns = list(columns)
    missing_ids = [c for c in model.id_columns if c not in columns]
    if missing_ids:  # a misspelt id column would otherwise let the real one in as a feature
        raise UsageError(
            f"dataset {snapshot.ref} has no column {missing_ids[0]!r}, an id column of model "
            f"{model.name!r}; register a dataset that has it, or create the model with the right "
            f"{mention('id_columns')}"
        )
    reserved = reserved_columns(model, snapshot)
    if model.features is None:
        return [str(c) for c in columns if c not in reserved]
    leaking = [c for c in model.features if c in reserved]
    if leaking:
        raise UsageError(
            f"model {model.name!r} declares feature {leaking[0]!r}, which is {reserved[leaking[0]]}: "
            f"it must not be a feature; create a model whose {mention('features')} leave it out"
        )
    return model.features


def time_column_of(model: ModelInfo, snapshot: DatasetSnapshot, columns: Iterable[object]) -> str | None:
    """The model's time column, else the snapshot's. A model's time column the data lacks is an error:
    without it neither the training window nor the gate's time checks can be known."""
    if model.time_column is not None and model.time_column not in columns:
        have = ", ".join(map(str, columns))
        raise UsageError(
            f"dataset {snapshot.ref} has no column {model.time_column!r}, the time column of model "
            f"{model.name!r} (its columns: {have}); register a dataset that has it"
        )
    return model.time_column or snapshot.time_column


def rows_before(
    frame: pd.DataFrame, time_column: str | None, as_of: pd.Timestamp | None, source: str
) -> pd.DataFrame:
    """Rows strictly before the as-of cutoff (all rows without one); `source` names the data in errors."""
    if as_of is None:
        return frame
    if time_column is None:
        raise UsageError(
            f"needs a time column, and {source} has none",
            field="as_of",
            hint="register the data with `pitstop dataset add NAME FILE --time-column COL`",
        )
    times = parse_times(frame[time_column], time_column, source)
    subset = frame[times < as_of]
    if subset.empty:
        raise UsageError(f"no rows of {source} before the cutoff", field="as_of", given=as_of.isoformat())
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
    check_target_complete(frame[model.target], source)
    X = frame[features].reset_index(drop=True)
    y = frame[model.target].reset_index(drop=True)
    if model.task is Task.CLASSIFICATION:
        y = binary_target(y, source)
    elif model.task is Task.MULTICLASS:
        class_values(y, source)  # complete, at least two classes; the trainer sees the values themselves
    return X, y


def fit(
    trainer_ref: str,
    X: pd.DataFrame,
    y: pd.Series,
    params: dict[str, Any],
    task: Task,
    role: str | None = None,
) -> Any:
    """Call the trainer; any failure of the user's code becomes one clear UsageError.

    What the trainer (or its module, on import) prints goes to stderr: stdout carries `--json`."""
    with contextlib.redirect_stdout(sys.stderr):
        trainer = import_trainer(trainer_ref, role)
        try:
            estimator = trainer(X.copy(), y.copy(), dict(params))
        except USER_CODE_FAILURES as error:  # the user's trainer may fail in any way
            raise UsageError(f"trainer {trainer_ref} raised {describe(error)}") from None
    check_trained(estimator, task, trainer_ref)
    return estimator


def returned(estimator: Any) -> str:
    """What a trainer handed back, for a sentence: `None`, `an int`, `a LinearRegression`."""
    if estimator is None:
        return "None"
    kind = type(estimator).__name__
    return f"{'an' if kind[:1].lower() in 'aeiou' else 'a'} {kind}"


def check_trained(estimator: Any, task: Task, trainer_ref: str) -> None:
    """A trained model must predict; a classifier must also give probabilities."""
    what = f"trainer {trainer_ref} returned {returned(estimator)}"
    if not callable(getattr(estimator, "predict", None)):
        raise UsageError(f"{what}, which has no predict method; a trainer returns the fitted model")
    if task is not Task.REGRESSION and not callable(getattr(estimator, "predict_proba", None)):
        wanted = (
            "the positive-class probability" if task is Task.CLASSIFICATION else "its class probabilities"
        )
        raise UsageError(
            f"{what}, which has no predict_proba method; a classification model needs one to give {wanted}"
        )


def save(estimator: Any, folder: Path, source: str, *, allow_pickle: bool) -> model_files.SavedModel:
    """Write the model into `folder` with skops (a pickle only when `allow_pickle` and skops cannot
    store it); an object neither can store is the error of `source` (`trainer m:f`, a file's path)."""
    verb = "returned" if source.startswith("trainer ") else "holds"
    with current_folder_importable():  # skops reads the file back, importing the classes' modules
        return model_files.save(
            estimator, folder, allow_pickle=allow_pickle, what=f"{source} {verb} {returned(estimator)}"
        )


# Retraining on the same data may differ in the last bits (summation order, threads): equal within these.
REPRODUCE_RTOL = 1e-9
REPRODUCE_ATOL = 1e-9


@dataclass(frozen=True)
class Reproduction:
    """Whether retraining from the recorded lineage gives the registered artifact's predictions."""

    model: str
    version: int
    matches: bool
    max_abs_difference: float  # over the rows where both predictions are finite numbers
    differing_rows: int
    rows: int
    trainer: str

    @classmethod
    def compare(
        cls,
        model: str,
        version: int,
        trainer: str,
        original: npt.NDArray[np.float64],
        again: npt.NDArray[np.float64],
    ) -> Reproduction:
        """Row by row, equal within the tolerances; NaN in both at the same row counts as equal.

        Both arrays hold one prediction per training row (`scoring.checked_predictions`): never
        broadcast one over the other."""
        close = np.isclose(original, again, rtol=REPRODUCE_RTOL, atol=REPRODUCE_ATOL, equal_nan=True)
        finite = np.isfinite(original) & np.isfinite(again)
        largest = float(np.max(np.abs(original[finite] - again[finite]), initial=0.0))
        rows = close.reshape(len(original), -1).all(axis=1)  # a multiclass row: every class's probability
        return cls(model, version, bool(rows.all()), largest, int((~rows).sum()), len(original), trainer)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
