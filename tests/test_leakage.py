"""The measurements behind the gate's leakage checks (pure: frames in, numbers out)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pitstop.leakage import baseline_errors, late_features, single_feature_errors
from pitstop.registry import Task


def _frame(rows: int, seed: int, leak_noise: float = 0.7) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=rows), "b": rng.normal(size=rows)})
    y = 10 * X["a"] - 5 * X["b"] + rng.normal(size=rows)
    X["leak"] = y + rng.normal(scale=leak_noise, size=rows)  # read from the outcome, a little noisy
    return X, y


def test_a_target_derived_feature_alone_is_far_better_than_predicting_the_mean() -> None:
    (X, y), (X_test, y_test) = _frame(400, 1), _frame(150, 2)
    scores = {s.column: s.error for s in single_feature_errors(Task.REGRESSION, X, y, X_test, y_test)}
    naive = baseline_errors(Task.REGRESSION, X, y, X_test, y_test)["mean"]
    assert scores["leak"] / naive < 0.2 < scores["a"] / naive


def test_the_linear_baseline_fits_the_training_rows() -> None:
    (X, y), (X_test, y_test) = _frame(400, 1), _frame(150, 2)
    errors = baseline_errors(Task.REGRESSION, X[["a", "b"]], y, X_test[["a", "b"]], y_test)
    assert errors["linear"] < 1.0 < errors["mean"]


def test_probes_take_missing_values_and_classification_targets() -> None:
    (X, y), (X_test, y_test) = _frame(300, 1), _frame(100, 2)
    X.loc[::7, "a"] = None
    scores = single_feature_errors(Task.CLASSIFICATION, X, y > 0, X_test, y_test > 0)
    assert all(np.isfinite(s.error) for s in scores) and {s.column for s in scores} == {"a", "b", "leak"}


def test_a_time_feature_or_available_at_column_later_than_the_event_is_found() -> None:
    events = pd.Series(pd.date_range("2026-01-10", periods=4, freq="h", tz="UTC"))
    frame = pd.DataFrame(
        {
            "a": [1.0, 2.0, 3.0, 4.0],
            "a_available_at": [str(t) for t in events - pd.Timedelta(minutes=5)],
            "b": [0.0, 1.0, 0.0, 1.0],
            "b_available_at": [str(t) for t in events + pd.Timedelta(hours=2) * np.array([0, 0, 1, 1])],
            "closed_at": events + pd.Timedelta(minutes=30),
        }
    )
    found = late_features(frame, ["a", "b", "closed_at"], events)
    assert [(f.column, f.source, f.rows, f.checked) for f in found] == [
        ("b", "b_available_at", 2, 4),
        ("closed_at", "closed_at", 4, 4),
    ]


def test_numbers_and_text_that_are_not_times_are_not_read_as_times() -> None:
    events = pd.Series(pd.date_range("2026-01-10", periods=3, freq="h", tz="UTC"))
    frame = pd.DataFrame({"x": [20270101, 20270102, 20270103], "city": ["paris", "rome", "oslo"]})
    assert late_features(frame, ["x", "city"], events) == []
