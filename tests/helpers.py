"""Small builders shared by tests (not fixtures: plain functions)."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression, LogisticRegression


def write_regression_csv(path: Path, rows: int = 200, seed: int = 0, start: str = "2026-01-01") -> Path:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "time": pd.date_range(start, periods=rows, freq="h", tz="UTC"),
            "user_id": [f"u{i % 20}" for i in range(rows)],
            "a": rng.normal(size=rows),
            "b": rng.normal(size=rows),
        }
    )
    frame["y"] = 3 * frame["a"] - 2 * frame["b"] + rng.normal(scale=0.1, size=rows)
    frame.to_csv(path, index=False)
    return path


def fit_regression_artifact(csv: Path, out: Path) -> Path:
    frame = pd.read_csv(csv)
    joblib.dump(LinearRegression().fit(frame[["a", "b"]], frame["y"]), out)
    return out


def fit_classifier_artifact(csv: Path, out: Path) -> Path:
    frame = pd.read_csv(csv)
    joblib.dump(LogisticRegression().fit(frame[["a", "b"]], frame["y"] > 0), out)
    return out
