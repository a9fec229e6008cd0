"""Measurements the gate's leakage checks read: a simple baseline, one-feature models, feature times.

Values in, numbers out (no store, no clock): `gating` loads the training rows and the test set and hands
them here; `gates` decides on the results. Costs are bounded: at most `MAX_ROWS` training rows (a
seeded sample) and the first `MAX_FEATURES` numeric features are probed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from pitstop.losses import Loss, LossKind
from pitstop.registry import Task

MAX_ROWS = 5000  # training rows each probe fits on (a seeded sample beyond)
MAX_FEATURES = 50  # numeric features probed one at a time, in the model's order
TREE_DEPTH = 6  # a one-feature model: a decision tree this deep (64 steps at most)
MIN_LEAF = 20
PROBABILITY_CLIP = 0.005  # keeps a one-feature classifier's log loss finite
AVAILABLE_AT_SUFFIX = "_available_at"  # column `<feature>_available_at`: when that value became known


@dataclass(frozen=True)
class FeatureScore:
    """A one-feature model's error on the test set."""

    column: str
    error: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LateFeature:
    """A feature whose recorded time is later than its row's event time on `rows` of `checked` rows."""

    column: str
    source: str  # the column holding the time: the feature itself or `<feature>_available_at`
    rows: int
    checked: int
    example_event: str
    example_recorded: str
    dataset: str = "test set"  # where: the test set or the version's training rows

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _numeric(frame: pd.DataFrame, features: list[str]) -> list[str]:
    return [
        c for c in features if pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c])
    ]


def _sample(X: pd.DataFrame, y: pd.Series, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    if len(X) <= MAX_ROWS:
        return X, y
    rows = np.random.default_rng(seed).choice(len(X), size=MAX_ROWS, replace=False)
    return X.iloc[rows], y.iloc[rows]


def _filled(train: pd.DataFrame, test: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Numbers, missing values as the training median (a linear model cannot take NaN)."""
    a, b = train.astype(float), test.astype(float)
    medians = a.median().fillna(0.0)
    return a.fillna(medians).to_numpy(), b.fillna(medians).to_numpy()


def _error(task: Task, loss: Loss, y: pd.Series, predictions: np.ndarray) -> float:
    if task is not Task.REGRESSION:
        predictions = np.clip(predictions, PROBABILITY_CLIP, 1 - PROBABILITY_CLIP)
    return float(np.mean(loss.per_request(y.to_numpy(dtype=float), predictions)))


def _probabilities(task: Task, model: Any, rows: np.ndarray, classes: int) -> np.ndarray:
    """A fitted classifier's probabilities as the loss reads them: the positive class's (binary), or
    one column per class of the model (multiclass; a class missing from the probe's rows gets 0)."""
    found = model.predict_proba(rows)
    if task is Task.CLASSIFICATION:
        return np.asarray(found[:, 1], dtype=float)
    out = np.zeros((len(rows), classes))
    out[:, np.asarray(model.classes_, dtype=int)] = found
    return out


def _prior(task: Task, y_train: pd.Series, rows: int, classes: int) -> np.ndarray:
    """Predicting without features: the training mean (rate), the quantile a pinball loss asks for, or
    the classes' training frequencies."""
    values = y_train.to_numpy(dtype=float)
    if task is Task.MULTICLASS:
        frequencies = np.bincount(values.astype(int), minlength=classes) / len(values)
        return np.tile(frequencies, (rows, 1))
    return np.full(rows, float(np.mean(values)))


def baseline_errors(
    task: Task,
    X_train: pd.DataFrame,
    y_train: pd.Series,
    X_test: pd.DataFrame,
    y_test: pd.Series,
    seed: int = 0,
    *,
    loss: Loss | None = None,
) -> dict[str, float]:
    """`mean`: predicting the training mean (a quantile for a pinball loss; class frequencies for a
    classifier); `linear`: a linear (logistic) model on the numeric features, fitted on the training
    rows. Both scored on the test set with the model's loss (default: the task's)."""
    X_train, y_train = _sample(X_train, y_train, seed)
    loss = loss or Loss.default(task)
    classes = _classes(y_train, y_test)
    prior = _prior(task, y_train, len(y_test), classes)
    if loss.kind is LossKind.PINBALL:
        prior = np.full(len(y_test), float(np.quantile(y_train.to_numpy(dtype=float), loss.quantile or 0.5)))
    errors = {"mean": _error(task, loss, y_test, prior)}
    columns = _numeric(X_train, list(X_train.columns))
    if not columns or (task is not Task.REGRESSION and y_train.nunique() < 2):
        errors["linear"] = errors["mean"]
        return errors
    a, b = _filled(X_train[columns], X_test[columns])
    if task is Task.REGRESSION:
        errors["linear"] = _error(task, loss, y_test, LinearRegression().fit(a, y_train).predict(b))
    else:
        classifier = LogisticRegression(max_iter=1000).fit(a, y_train.astype(int))
        errors["linear"] = _error(task, loss, y_test, _probabilities(task, classifier, b, classes))
    return errors


def _classes(y_train: pd.Series, y_test: pd.Series) -> int:
    """How many probability columns a multiclass probe gives: up to the highest class index seen."""
    return int(max(y_train.max(), y_test.max())) + 1


def single_feature_errors(
    task: Task,
    X_train: pd.DataFrame,
    y_train: pd.Series,
    X_test: pd.DataFrame,
    y_test: pd.Series,
    seed: int = 0,
    *,
    loss: Loss | None = None,
) -> list[FeatureScore]:
    """For each numeric feature (the first `MAX_FEATURES`), the test error of a shallow decision tree
    fitted on that feature alone. A missing value becomes a value below every other, so the tree can
    still split on "missing"."""
    X_train, y_train = _sample(X_train, y_train, seed)
    loss = loss or Loss.default(task)
    classes = _classes(y_train, y_test)
    scores = []
    for column in _numeric(X_train, list(X_train.columns))[:MAX_FEATURES]:
        train, test = X_train[column].astype(float), X_test[column].astype(float)
        low = float(np.nanmin([train.min(), test.min()])) if train.notna().any() else 0.0
        a = train.fillna(low - 1.0).to_numpy().reshape(-1, 1)
        b = test.fillna(low - 1.0).to_numpy().reshape(-1, 1)
        if task is Task.REGRESSION:
            regressor = DecisionTreeRegressor(
                max_depth=TREE_DEPTH, min_samples_leaf=MIN_LEAF, random_state=seed
            )
            predictions = regressor.fit(a, y_train).predict(b)
        else:
            if y_train.nunique() < 2:
                continue
            tree = DecisionTreeClassifier(max_depth=TREE_DEPTH, min_samples_leaf=MIN_LEAF, random_state=seed)
            predictions = _probabilities(task, tree.fit(a, y_train.astype(int)), b, classes)
        scores.append(FeatureScore(column, round(_error(task, loss, y_test, predictions), 6)))
    return scores


def _as_times(values: pd.Series) -> pd.Series | None:
    """The column as UTC times when it holds times (typed, or text nearly all parseable); else None."""
    if pd.api.types.is_datetime64_any_dtype(values):
        times = pd.to_datetime(values, utc=True)
    elif pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values):
        present = values.dropna()
        if present.empty:
            return None
        if isinstance(values.dtype, pd.CategoricalDtype):
            # pandas maps a categorical's categories through its cache, and with pyarrow's strings
            # that path warns of a coming change (Pandas4Warning): parse the values themselves
            values = values.astype(object)
        times = pd.to_datetime(values, utc=True, errors="coerce", format="mixed")
        if times.notna().sum() < 0.95 * len(present):
            return None
    else:
        return None
    return times


def late_features(frame: pd.DataFrame, features: list[str], event_times: pd.Series) -> list[LateFeature]:
    """Features recorded after their row's event time: a time-valued feature later than the event, or a
    `<feature>_available_at` column later than the event. A value known only after the event (and so
    possibly after the outcome) cannot be known when the prediction is made."""
    events = pd.to_datetime(event_times, utc=True)
    found = []
    for column in features:
        sources = [column] if column in frame.columns else []
        if f"{column}{AVAILABLE_AT_SUFFIX}" in frame.columns:
            sources.append(f"{column}{AVAILABLE_AT_SUFFIX}")
        for source in sources:
            times = _as_times(frame[source])
            if times is None:
                continue
            both = times.notna() & events.notna()
            late = both & (times > events)
            if late.any():
                first = late.to_numpy().nonzero()[0][0]
                found.append(
                    LateFeature(
                        column,
                        source,
                        int(late.sum()),
                        int(both.sum()),
                        events.iloc[first].isoformat(),
                        times.iloc[first].isoformat(),
                    )
                )
                break
    return found
