"""Per-request losses: what "error" means for a model, chosen when it is created and used everywhere.

A model's loss turns one prediction and its label into one number, lower is better. The offline gate
averages it over the test set; the shadow, A/B and ramp rules average it over live requests (in SQL,
`loss_sql.py`, with the same formulas). Every threshold (the gate's 1.05 x champion, the leakage
floor, the shadow tolerance, the A/B margin, the ramp ratio) compares these *means*. For the squared
loss that is the mean squared error: RMSE (its square root) is reported alongside, and a ratio of
1.05 on MSE is about 1.025 on RMSE.

| spec | task | per request | reported |
|---|---|---|---|
| `absolute` (regression default) | regression | abs(p - y) | MAE |
| `squared` | regression | (p - y)² | MSE and RMSE |
| `percentage` | regression | abs(p - y) / abs(y); a label of 0 is refused | MAPE (a fraction) |
| `pinball:Q` | regression | max(Q (y - p), (Q - 1)(y - p)) | pinball loss at quantile Q |
| `log_loss` (classifier default) | classifiers | -ln p(true class), p within [1e-15, 1 - 1e-15] | log loss |
| `brier` | classifiers | binary (p - y)²; multiclass Σₖ (pₖ - [k = y])² | Brier score |
| `module:function` | any | the function of (predictions, labels) arrays | mean loss |

Predictions are what the model serves: the value (regression), the positive-class probability
(binary) or the probability matrix, one column per class in the model's class order (multiclass);
labels are numbers (binary 0/1, multiclass the class's index in that order).
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from pitstop.errors import USER_CODE_FAILURES, UsageError, describe
from pitstop.registry import ModelInfo, Task
from pitstop.user_code import import_function

# Probabilities are clipped away from 0 and 1 so one confident mistake costs a large, finite loss.
PROBABILITY_EPS = 1e-15

Floats = npt.NDArray[np.float64]


class LossKind(StrEnum):
    ABSOLUTE = "absolute"
    SQUARED = "squared"
    PERCENTAGE = "percentage"
    PINBALL = "pinball"
    LOG_LOSS = "log_loss"
    BRIER = "brier"
    FUNCTION = "function"


REGRESSION_LOSSES = frozenset({LossKind.ABSOLUTE, LossKind.SQUARED, LossKind.PERCENTAGE, LossKind.PINBALL})
CLASSIFIER_LOSSES = frozenset({LossKind.LOG_LOSS, LossKind.BRIER})
CHOICES = "absolute, squared, percentage, pinball:Q (0 < Q < 1), log_loss, brier or module:function"

# The key of the mean loss in offline metrics, and its name in sentences.
_METRIC = {
    LossKind.ABSOLUTE: ("mae", "MAE"),
    LossKind.SQUARED: ("mse", "MSE"),
    LossKind.PERCENTAGE: ("mape", "MAPE"),
    LossKind.PINBALL: ("pinball", "pinball loss"),
    LossKind.LOG_LOSS: ("log_loss", "log loss"),
    LossKind.BRIER: ("brier", "Brier score"),
    LossKind.FUNCTION: ("loss", "loss"),
}


@dataclass(frozen=True)
class Loss:
    """One model's per-request loss; `str(loss)` is its spec, as stored with the model.

    >>> Loss.parse("pinball:0.9", Task.REGRESSION).per_request([10.0, 10.0], [8.0, 12.0]).round(6).tolist()
    [1.8, 0.2]
    >>> str(Loss.parse(None, Task.MULTICLASS))
    'log_loss'
    """

    kind: LossKind
    quantile: float | None = None  # pinball only
    function: str | None = None  # `module:function`, FUNCTION only

    @classmethod
    def default(cls, task: Task) -> Loss:
        return cls(LossKind.ABSOLUTE if task is Task.REGRESSION else LossKind.LOG_LOSS)

    @classmethod
    def parse(cls, spec: str | None, task: Task) -> Loss:
        """The loss a spec names, checked against the task; a UsageError says which rule broke."""
        if spec is None or not spec.strip():
            return cls.default(task)
        text = spec.strip()
        name, _, argument = text.partition(":")
        if name == LossKind.PINBALL:
            loss = cls(LossKind.PINBALL, quantile=_quantile(argument))
        elif text in {kind.value for kind in LossKind} - {LossKind.FUNCTION, LossKind.PINBALL}:
            loss = cls(LossKind(text))
        elif name and argument and ":" not in argument:
            loss = cls(LossKind.FUNCTION, function=text)
        else:
            raise UsageError(f"unknown loss {text!r}: use {CHOICES}")
        loss.check_task(task)
        return loss

    def check_task(self, task: Task) -> None:
        allowed = REGRESSION_LOSSES if task is Task.REGRESSION else CLASSIFIER_LOSSES
        if self.kind is not LossKind.FUNCTION and self.kind not in allowed:
            names = ", ".join(sorted(kind.value for kind in allowed))
            raise UsageError(f"loss {self} does not fit a {task.value} model: use {names} or module:function")

    def __str__(self) -> str:
        if self.kind is LossKind.PINBALL:
            return f"pinball:{self.quantile:g}"
        return self.function if self.kind is LossKind.FUNCTION else self.kind.value  # type: ignore[return-value]

    @property
    def metric(self) -> str:
        """The key of the mean loss in offline metrics (`mae`, `mse`, …): what every ratio compares."""
        return _METRIC[self.kind][0]

    @property
    def label(self) -> str:
        """The mean loss's name in sentences: `MAE`, `MSE`, `pinball loss (q=0.9)`, `loss m:f`."""
        name = _METRIC[self.kind][1]
        if self.kind is LossKind.PINBALL:
            return f"{name} (q={self.quantile:g})"
        return f"{name} {self.function}" if self.kind is LossKind.FUNCTION else name

    @property
    def unit(self) -> str:
        """What one request's error is, for a chart axis."""
        units = {
            LossKind.ABSOLUTE: "abs. error (target units)",
            LossKind.SQUARED: "squared error (target units²)",
            LossKind.PERCENTAGE: "abs. percentage error (fraction)",
            LossKind.LOG_LOSS: "log loss (nats)",
            LossKind.BRIER: "Brier score",
        }
        return units.get(self.kind, self.label)

    def per_request(self, labels: npt.ArrayLike, predictions: npt.ArrayLike) -> Floats:
        """Each request's loss. A FUNCTION loss is imported now; its failures are UsageErrors naming it."""
        truth = np.asarray(labels, dtype=float)
        predicted = np.asarray(predictions, dtype=float)
        if self.kind is LossKind.FUNCTION:
            return self._call_function(truth, predicted)
        if self.kind in CLASSIFIER_LOSSES:
            return _classifier_loss(self.kind, truth, predicted)
        error = predicted - truth
        if self.kind is LossKind.ABSOLUTE:
            losses = np.abs(error)
        elif self.kind is LossKind.SQUARED:
            losses = error * error
        elif self.kind is LossKind.PERCENTAGE:
            check_percentage_labels(truth, "the labels")
            losses = np.abs(error) / np.abs(truth)
        else:
            q = float(self.quantile or 0.0)
            losses = np.maximum(-q * error, (1 - q) * error)
        return np.asarray(losses, dtype=float)

    def reported(self, mean: float) -> dict[str, float]:
        """The offline metrics of a mean loss: itself, and RMSE for the squared loss."""
        out = {self.metric: mean}
        if self.kind is LossKind.SQUARED:
            out["rmse"] = float(np.sqrt(mean))
        return out

    def _call_function(self, truth: Floats, predicted: Floats) -> Floats:
        function = import_function(str(self.function), "loss", f"loss {self.function!r}")
        try:
            with contextlib.redirect_stdout(sys.stderr):  # stdout carries --json
                out = function(predicted, truth)
            losses = np.asarray(out, dtype=float)
        except USER_CODE_FAILURES as error:
            raise UsageError(f"loss {self.function} raised {describe(error)}") from None
        if losses.shape != (len(truth),):
            raise UsageError(
                f"loss {self.function} returned shape {losses.shape} for {len(truth)} requests; "
                "it must return one number per request"
            )
        if not np.isfinite(losses).all():
            raise UsageError(f"loss {self.function} returned NaN or infinite losses")
        return losses


def check_function(loss: Loss) -> None:
    """A FUNCTION loss must import now (it is imported again at every use)."""
    if loss.kind is LossKind.FUNCTION:
        import_function(str(loss.function), "loss")


def _quantile(text: str) -> float:
    try:
        q = float(text)
    except ValueError:
        q = float("nan")
    if not 0 < q < 1:
        raise UsageError(f"pinball:{text}: the quantile must be a number between 0 and 1, e.g. pinball:0.9")
    return q


def check_percentage_labels(truth: npt.ArrayLike, source: str) -> None:
    """Absolute percentage error divides by the label: a label of 0 has none."""
    zeros = int(np.count_nonzero(np.asarray(truth, dtype=float) == 0))
    if zeros:
        raise UsageError(
            f"{source}: {zeros} label(s) are 0, where absolute percentage error is undefined; "
            "drop those rows or choose another loss (absolute, squared, pinball:Q)"
        )


def _classifier_loss(kind: LossKind, truth: Floats, predicted: Floats) -> Floats:
    if predicted.ndim == 1:  # binary: the positive-class probability
        if kind is LossKind.BRIER:
            return np.asarray((predicted - truth) ** 2, dtype=float)
        p = np.clip(predicted, PROBABILITY_EPS, 1 - PROBABILITY_EPS)
        return np.asarray(-(truth * np.log(p) + (1 - truth) * np.log(1 - p)), dtype=float)
    classes = predicted.shape[1]
    index = truth.astype(int)
    if kind is LossKind.BRIER:
        onehot = np.eye(classes)[index]
        return np.asarray(((predicted - onehot) ** 2).sum(axis=1), dtype=float)
    chosen = predicted[np.arange(len(index)), index]
    return np.asarray(-np.log(np.clip(chosen, PROBABILITY_EPS, 1 - PROBABILITY_EPS)), dtype=float)


def as_jsonable(value: Any) -> Any:
    """A class value as JSON holds it: numpy scalars become Python ones, integral floats ints."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@dataclass(frozen=True)
class Scoring:
    """How one model's requests are scored: its task, its loss, and (multiclass) how many classes."""

    task: Task
    loss: Loss
    classes: int = 0

    @classmethod
    def of(cls, info: ModelInfo) -> Scoring:
        return cls(info.task, Loss.parse(info.loss, info.task), len(info.classes or []))
