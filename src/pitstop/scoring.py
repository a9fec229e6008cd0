"""Running a model object on a table: the one place that knows how each task's output is read."""

from __future__ import annotations

import contextlib
import sys
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from pitstop.errors import USER_CODE_FAILURES, UsageError, describe
from pitstop.losses import as_jsonable
from pitstop.model_input import InputSignature
from pitstop.registry import Task


def predict_frame(task: Task, estimator: Any, features: pd.DataFrame) -> npt.NDArray[np.float64]:
    """Regression: `predict`. Classification: the positive-class probability, `predict_proba[:, 1]`.
    Multiclass: `predict_proba`, one column per class (n, k)."""
    if task is Task.MULTICLASS:
        output = np.asarray(estimator.predict_proba(features), dtype=float)
        if output.ndim != 2 or output.shape[1] < 2:
            raise UsageError(f"predict_proba returned shape {output.shape}; a multiclass model gives (n, k)")
        return output
    if task is Task.CLASSIFICATION:
        output = np.asarray(estimator.predict_proba(features), dtype=float)
        if output.ndim != 2 or output.shape[1] != 2:
            raise UsageError(f"predict_proba returned shape {output.shape}; a binary classifier gives (n, 2)")
        return np.asarray(output[:, 1], dtype=float)
    return np.asarray(estimator.predict(features), dtype=float).reshape(-1)


def missing_values(frame: pd.DataFrame, columns: list[str]) -> dict[str, int]:
    """How many values are missing (NaN, None, empty) in each of `columns` that has any.

    >>> missing_values(pd.DataFrame({"a": [1.0, None, None], "b": [1, 2, 3]}), ["a", "b"])
    {'a': 2}
    """
    counts = frame[columns].isna().sum()
    return {str(column): int(count) for column, count in counts.items() if count}


def describe_missing(counts: dict[str, int]) -> str:
    """`a (2 missing), b (1 missing)`."""
    return ", ".join(f"{column} ({count} missing)" for column, count in counts.items())


def check_target_complete(values: pd.Series, source: str) -> None:
    """A row without its target can be neither learned from nor scored: always an input error."""
    missing = int(values.isna().sum())
    if missing:
        raise UsageError(
            f"{source}: target column {values.name!r} has {missing} missing value(s) in {len(values)} rows; "
            "drop or fill those rows and register the data again"
        )


def binary_target(values: pd.Series, source: str) -> pd.Series:
    """A two-class target as 0/1, the larger value being the positive class (as `classes_[1]`)."""
    check_target_complete(values, source)
    classes = sorted(values.unique().tolist())
    if len(classes) != 2:
        shown = ", ".join(map(str, classes[:5])) + ("…" if len(classes) > 5 else "")
        raise UsageError(
            f"{source}: classification needs a binary target, found {len(classes)} classes ({shown})"
        )
    return pd.Series(values == classes[1], dtype=int, name=values.name)


def class_values(values: pd.Series, source: str) -> list[Any]:
    """A multiclass target's classes, in the order `predict_proba` gives them (sorted, as scikit-learn's
    `classes_`), as JSON values."""
    check_target_complete(values, source)
    classes = [as_jsonable(value) for value in np.unique(values.to_numpy())]
    if len(classes) < 2:
        raise UsageError(f"{source}: a multiclass target needs at least two classes, found {classes}")
    return classes


def class_key(value: Any) -> str:
    """How a class is matched: `2`, `2.0` and `"2"` are the same class."""
    return str(as_jsonable(value))


def class_indices(values: pd.Series, classes: list[Any], source: str) -> pd.Series:
    """A multiclass target as each row's class index in `classes`; a class the model lacks is an error."""
    check_target_complete(values, source)
    index = {class_key(value): i for i, value in enumerate(classes)}
    keys = values.map(class_key)
    unknown = sorted(set(keys) - index.keys())
    if unknown:
        raise UsageError(
            f"{source}: target {values.name!r} holds class(es) {', '.join(unknown[:5])} the model was not "
            f"trained on (its classes: {', '.join(map(str, classes))})"
        )
    return pd.Series(keys.map(index).astype(int).to_numpy(), name=values.name)


def check_classes(estimator: Any, classes: list[Any], source: str) -> None:
    """A multiclass model's `classes_`, when it has them, must be the model's classes in the same order:
    its probability columns are read in that order."""
    found = getattr(estimator, "classes_", None)
    if found is None:
        return
    if [class_key(c) for c in found] != [class_key(c) for c in classes]:
        shown = ", ".join(class_key(c) for c in found)
        raise UsageError(
            f"{source}: its classes ({shown}) differ from the model's ({', '.join(map(str, classes))}), "
            "which are fixed by its first version; train on data with every class"
        )


def check_estimator(estimator: Any, task: Task, source: str) -> None:
    """A model must predict; a classifier must also give probabilities."""
    if not callable(getattr(estimator, "predict", None)):
        raise UsageError(f"{source}: the object ({type(estimator).__name__}) has no predict method")
    if task is not Task.REGRESSION and not callable(getattr(estimator, "predict_proba", None)):
        raise UsageError(
            f"{source}: a classification model needs predict_proba ({type(estimator).__name__} has none)"
        )


def checked_predictions(
    task: Task,
    estimator: Any,
    X: pd.DataFrame,
    who: str,
    on: str,
    signature: InputSignature,
    classes: list[Any] | None = None,
) -> npt.NDArray[np.float64]:
    """`who`'s predictions for the rows of X (`on` names them), its input built by its `signature`
    (as served calls build it), one number per row (a row of probabilities, one per class of
    `classes`, for a multiclass model), or a one-line UsageError: the model is user code and may fail,
    print, or return anything."""
    try:
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries --json
            predictions = predict_frame(task, estimator, signature.from_frame(X))
    except UsageError:
        raise
    except USER_CODE_FAILURES as error:  # includes values that are not numbers (ValueError, TypeError)
        hint = missing_hint(X, on)
        raise UsageError(f"{who} failed to predict on {on} ({describe(error)}){hint}") from None
    if len(predictions) != len(X):  # numpy would broadcast a short answer over every row
        raise UsageError(
            f"{who} returned {len(predictions)} prediction(s) for the {len(X)} rows of {on}; "
            "predict must return one number per row"
        )
    if classes is not None and predictions.shape[1:] != (len(classes),):
        raise UsageError(
            f"{who} returned {predictions.shape[1]} class probabilities per row of {on}; "
            f"the model has {len(classes)} classes ({', '.join(map(str, classes))})"
        )
    return predictions


def missing_hint(X: pd.DataFrame, on: str) -> str:
    """What to do when a model fails on rows with missing feature values (empty when none are)."""
    missing = missing_values(X, list(X.columns))
    if not missing:
        return ""
    return (
        f"; {on} has missing feature values: {describe_missing(missing)}; this model does not "
        "handle them: fill or drop those rows and register the data again"
    )
