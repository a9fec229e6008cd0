"""Trainers and models that misbehave the ways user code does: print, exit, answer short or in words.

Used as `--trainer misbehaving_models:NAME` (tests put this folder on sys.path); the model classes are
at module level with plain attributes, so skops stores them (each on its version's type allow-list).
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression

TRAINER_CHATTER = "epoch 1/1 loss=0.1"
# The door check refuses these models at registration; tests of what later stages do with them skip it.
SKIP_CHECK = "misbehaves on purpose, to test what later stages do with it"
PREDICT_CHATTER = "predicting..."


class ShortAnswer:
    """Three predictions, whatever the number of rows."""

    def predict(self, X: pd.DataFrame) -> list[float]:
        return [1.0, 2.0, 3.0]


class WordsAnswer:
    """Predictions that are not numbers."""

    def predict(self, X: pd.DataFrame) -> list[str]:
        return ["slow"] * len(X)


class BrokenPredict:
    def predict(self, X: pd.DataFrame) -> list[float]:
        raise RuntimeError("feature store unreachable")


class DiesPredicting:
    """Ends its process while predicting anywhere but where it was trained, as a crash in native code
    on another machine would."""

    def __init__(self) -> None:
        self.trained_in = os.getpid()

    def predict(self, X: pd.DataFrame) -> list[float]:
        if os.getpid() != self.trained_in:
            os._exit(3)
        return [0.0] * len(X)


class NaNAnswer:
    """Deterministic, but NaN for every other row."""

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        answer = np.arange(len(X), dtype=float)
        answer[::2] = np.nan
        return answer


class ChattyModel:
    """A working model that prints while predicting."""

    def __init__(self, base: LinearRegression) -> None:
        self.base = base

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        print(PREDICT_CHATTER)
        return np.asarray(self.base.predict(X))


def chatty(X: pd.DataFrame, y: pd.Series, params: dict[str, object]) -> LinearRegression:
    print(TRAINER_CHATTER)
    return LinearRegression().fit(X, y)


def chatty_model(X: pd.DataFrame, y: pd.Series, params: dict[str, object]) -> ChattyModel:
    return ChattyModel(LinearRegression().fit(X, y))


def gives_up(X: pd.DataFrame, y: pd.Series, params: dict[str, object]) -> None:
    sys.exit("trainer gave up")


def interrupted(X: pd.DataFrame, y: pd.Series, params: dict[str, object]) -> None:
    raise KeyboardInterrupt


def short_answer(X: pd.DataFrame, y: pd.Series, params: dict[str, object]) -> ShortAnswer:
    return ShortAnswer()


def dies_predicting(X: pd.DataFrame, y: pd.Series, params: dict[str, object]) -> DiesPredicting:
    return DiesPredicting()


def words_answer(X: pd.DataFrame, y: pd.Series, params: dict[str, object]) -> WordsAnswer:
    return WordsAnswer()


def broken_predict(X: pd.DataFrame, y: pd.Series, params: dict[str, object]) -> BrokenPredict:
    return BrokenPredict()


def nan_answer(X: pd.DataFrame, y: pd.Series, params: dict[str, object]) -> NaNAnswer:
    return NaNAnswer()


class LeakingModel:
    """A working model that keeps `leak_mib` MiB more memory after every call (a cache without bounds)."""

    def __init__(self, base: LinearRegression, leak_mib: int = 32) -> None:
        self.base, self.leak_mib = base, leak_mib
        self.feature_names_in_ = base.feature_names_in_  # fed the DataFrame the real model gets
        self.kept: list[np.ndarray] = []

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        self.kept.append(np.ones(self.leak_mib * 2**20, dtype=np.uint8))  # written, so resident
        return np.asarray(self.base.predict(X))


def fail_picky(X: pd.DataFrame, answer: np.ndarray) -> np.ndarray:
    """What the picky models do with their inputs: a call holding a row with `a` above 2 raises, and
    a row with `b` above 1.5 is answered NaN, whatever batch the rows arrive in."""
    if (np.asarray(X["a"]) > 2).any():
        raise ValueError("a is out of the range this model knows")
    answer[np.asarray(X["b"]) > 1.5] = np.nan
    return answer


class Picky:
    """A fitted model that fails on some inputs (`fail_picky`)."""

    def __init__(self, base: object) -> None:
        self.base = base
        self.feature_names_in_ = base.feature_names_in_  # type: ignore[attr-defined]

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return fail_picky(X, np.asarray(self.base.predict(X), dtype=float))  # type: ignore[attr-defined]


class PickyClassifier:
    """A fitted classifier that fails on some inputs (`fail_picky`): NaN probabilities for a row."""

    def __init__(self, base: object) -> None:
        self.base = base
        self.classes_ = base.classes_  # type: ignore[attr-defined]
        self.feature_names_in_ = base.feature_names_in_  # type: ignore[attr-defined]

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return fail_picky(X, np.asarray(self.base.predict_proba(X), dtype=float))  # type: ignore[attr-defined]

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.classes_)[np.nanargmax(self.predict_proba(X), axis=1)]
