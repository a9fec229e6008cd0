"""Small builders shared by tests (not fixtures: plain functions)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sqlalchemy as sa
from sklearn.linear_model import LinearRegression, LogisticRegression


def write_classification_csv(path: Path, rows: int = 200, seed: int = 0, start: str = "2026-01-01") -> Path:
    """Like `write_regression_csv`, with a binary target `y` (True when the linear signal is positive)."""
    write_regression_csv(path, rows, seed, start)
    frame = pd.read_csv(path)
    frame["y"] = frame["y"] > 0
    frame.to_csv(path, index=False)
    return path


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


# Trainers for `pitstop train --trainer helpers:NAME` (tests put this folder on sys.path).
def linear_trainer(X: pd.DataFrame, y: pd.Series, params: dict[str, object]) -> LinearRegression:
    return LinearRegression(fit_intercept=bool(params.get("intercept", True))).fit(X, y)


def logistic_trainer(X: pd.DataFrame, y: pd.Series, params: dict[str, object]) -> LogisticRegression:
    return LogisticRegression(C=float(params.get("C", 1.0))).fit(X, y)  # type: ignore[arg-type]


def failing_trainer(X: pd.DataFrame, y: pd.Series, params: dict[str, object]) -> None:
    raise RuntimeError("out of memory on purpose")


def no_predict_trainer(X: pd.DataFrame, y: pd.Series, params: dict[str, object]) -> dict[str, str]:
    return {"weights": "none"}


def nondeterministic_trainer(X: pd.DataFrame, y: pd.Series, params: dict[str, object]) -> object:
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(n_estimators=5, random_state=None).fit(X, y)


def spy_trainer(X: pd.DataFrame, y: pd.Series, params: dict[str, object]) -> LinearRegression:
    """Records what it was given, so tests can check no target, time or id column leaks into X."""
    SPY.update(columns=list(X.columns), rows=len(X), max_a=float(X["a"].max()))
    return LinearRegression().fit(X, y)


SPY: dict[str, object] = {}


class OffsetModel:
    """A fitted model whose every prediction is shifted: a worse (or, for the champion, stale) model."""

    def __init__(self, base: object, offset: float) -> None:
        self.base, self.offset = base, offset
        self.feature_names_in_ = base.feature_names_in_  # type: ignore[attr-defined]

    def predict(self, X: object) -> object:
        return self.base.predict(X) + self.offset  # type: ignore[attr-defined]


class ScaledModel:
    """A fitted model whose every prediction is scaled: errors that differ from the base model's by a
    varying amount (an offset makes many pairs of errors differ by exactly the offset: ties)."""

    def __init__(self, base: object, factor: float) -> None:
        self.base, self.factor = base, factor
        self.feature_names_in_ = base.feature_names_in_  # type: ignore[attr-defined]

    def predict(self, X: object) -> object:
        return self.base.predict(X) * self.factor  # type: ignore[attr-defined]


def make_traffic(
    start: str,
    hours: float,
    requests: int,
    *,
    seed: int = 0,
    users: int = 200,
    label_delay_minutes: float = 10.0,
) -> pd.DataFrame:
    """Requests spread over `hours`, features a and b, label = 3a - 2b + noise, known after a delay."""
    rng = np.random.default_rng(seed)
    times = pd.Timestamp(start, tz="UTC") + pd.to_timedelta(
        np.sort(rng.uniform(0, hours * 3600, requests)), unit="s"
    )
    frame = pd.DataFrame(
        {
            "time": times,
            "user_id": [f"u{k}" for k in rng.integers(0, users, requests)],
            "a": rng.normal(size=requests),
            "b": rng.normal(size=requests),
        }
    )
    frame["label"] = 3 * frame["a"] - 2 * frame["b"] + rng.normal(scale=0.5, size=requests)
    frame["label_time"] = frame["time"] + pd.Timedelta(minutes=label_delay_minutes)
    return frame


def fresh_postgres_schema(base_url: str, prefix: str = "t") -> Iterator[str]:
    """A store URL on a PostgreSQL schema of its own, dropped with everything in it afterwards."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(base_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in base_url else "?"
    try:
        yield f"{base_url}{separator}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def one_line_error(result: Any) -> str:
    """The one `error: …` line a bad input gets: exit 2, no traceback, no usage box."""
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return str(lines[0])


class SlottedModel:
    """A working model skops cannot store (its state is in `__slots__`), though pickle can."""

    __slots__ = ("base",)

    def __init__(self, base: Any) -> None:
        self.base = base

    def predict(self, X: pd.DataFrame) -> Any:
        return self.base.predict(X)


def slotted_trainer(X: pd.DataFrame, y: pd.Series, params: dict[str, object]) -> SlottedModel:
    return SlottedModel(LinearRegression().fit(X, y))


CLASSES = ("high", "low", "mid")  # sorted: the order of a multiclass model's probabilities


def multiclass_frame(rows: int, seed: int = 0, start: str = "2026-01-01", noise: float = 0.3) -> pd.DataFrame:
    """Features a and b; class `kind` low, mid or high by a + b (with noise): three classes a linear
    model separates well."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "time": pd.date_range(start, periods=rows, freq="h", tz="UTC"),
            "user_id": [f"u{i % 20}" for i in range(rows)],
            "a": rng.normal(size=rows),
            "b": rng.normal(size=rows),
        }
    )
    signal = frame["a"] + frame["b"] + rng.normal(scale=noise, size=rows)
    frame["kind"] = np.where(signal < -0.6, "low", np.where(signal > 0.6, "high", "mid"))
    return frame


def write_multiclass_csv(path: Path, rows: int = 300, seed: int = 0, start: str = "2026-01-01") -> Path:
    multiclass_frame(rows, seed, start).to_csv(path, index=False)
    return path
