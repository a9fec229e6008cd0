"""A version's scorer in a batched replay: many rows a call, and the rows a model fails on found."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pitstop.model_input import Column, InputSignature
from pitstop.registry import Task
from pitstop.replay.scorer import Scorer
from pitstop.serving.inprocess import Predictor

SIGNATURE = InputSignature((Column("a", "float64"), Column("b", "float64")))
TRAFFIC = pd.DataFrame({"a": np.arange(10, dtype=float), "b": np.zeros(10)})


class TwoColumns:
    """Answers each row with two numbers, where a regression gives one."""

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.zeros((len(X), 2))


class FailsOnSeven:
    """Raises on any call holding the row whose `a` is 7; NaN for the row whose `a` is 3."""

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        a = np.asarray(X["a"])
        if (a == 7).any():
            raise ValueError("seven")
        return np.where(a == 3, np.nan, a * 2)


def scorer(model: object, classes: int = 0, task: Task = Task.REGRESSION) -> Scorer:
    return Scorer(Predictor(model, signature=SIGNATURE, task=task), TRAFFIC, ["a", "b"], classes)


def test_a_model_answering_in_the_wrong_shape_fails_every_row_it_was_given() -> None:
    _, failed = scorer(TwoColumns()).score(np.arange(10))
    assert failed.tolist() == [True] * 10


def test_the_rows_a_model_fails_on_fail_alone() -> None:
    output, failed = scorer(FailsOnSeven()).score(np.arange(10))
    assert np.flatnonzero(failed).tolist() == [3, 7]
    assert output[~failed].tolist() == [0, 2, 4, 8, 10, 12, 16, 18]


class FailsOnSevenOfThree:
    """A three-class model failing as `FailsOnSeven` does."""

    classes_ = np.array([0, 1, 2])

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        a = np.asarray(X["a"])
        if (a == 7).any():
            raise ValueError("seven")
        out = np.full((len(X), 3), 1 / 3)
        out[a == 3] = np.nan
        return out


def test_a_multiclass_model_failing_on_a_row_in_a_split_call_keeps_its_columns() -> None:
    output, failed = scorer(FailsOnSevenOfThree(), classes=3, task=Task.MULTICLASS).score(np.arange(10))
    assert output.shape == (10, 3) and np.flatnonzero(failed).tolist() == [3, 7]
