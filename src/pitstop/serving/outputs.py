"""A model's output for one row, read the same way for the log and the answer.

A runner gives one value per row: a number (a regression's prediction, a binary classifier's
positive-class probability) or, for a multiclass model, its list of class probabilities in the model's
class order. It is logged as `prediction` (for multiclass: the predicted class's index) and, for
multiclass, `probabilities`; a classifier's answer adds the predicted class and every probability.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pitstop.registry import Task

BINARY_CLASSES = (0, 1)  # a binary model's labels: its target's larger value is 1 (`scoring.binary_target`)


@dataclass(frozen=True, slots=True)
class Output:
    """One row's output: what is logged, or the problem that makes it no prediction."""

    prediction: float | None
    probabilities: tuple[float, ...] | None = None
    problem: str | None = None

    @property
    def logged_probabilities(self) -> str | None:
        return None if self.probabilities is None else json.dumps(self.probabilities)


def read_output(value: float | Sequence[float]) -> Output:
    """A runner's value for one row; a non-finite number anywhere is a failed prediction.

    >>> read_output([0.2, 0.7, 0.1]).prediction
    1.0
    """
    if isinstance(value, Sequence):
        probabilities = tuple(float(p) for p in value)
        if not probabilities or not all(math.isfinite(p) for p in probabilities):
            return Output(None, None, f"non-finite probabilities ({list(probabilities)})")
        best = max(range(len(probabilities)), key=probabilities.__getitem__)
        return Output(float(best), probabilities)
    if not math.isfinite(value):
        return Output(None, None, f"non-finite prediction ({value})")
    return Output(float(value))


def class_answer(task: Task, classes: list[Any] | None, output: Output) -> dict[str, Any]:
    """The fields a classifier's answer adds: its predicted `class`, the `classes` and their
    `probabilities` in the same order (a binary model's are 0 and 1). Empty for a regression."""
    if task is Task.REGRESSION or output.prediction is None:
        return {}
    if task is Task.CLASSIFICATION:
        p = output.prediction
        names: list[Any] = list(BINARY_CLASSES)
        probabilities = [1.0 - p, p]
    else:
        names, probabilities = list(classes or []), list(output.probabilities or ())
    best = max(range(len(probabilities)), key=probabilities.__getitem__)
    return {"class": names[best], "classes": names, "probabilities": probabilities}
