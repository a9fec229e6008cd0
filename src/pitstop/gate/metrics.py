"""Offline metrics of one model on one test set: its mean loss (`losses.py`) and a quality score.

Quality, checked against a minimum by the gate where it means something: R² for a regression model
predicting a mean or a median (not for a pinball loss: a quantile forecast is biased on purpose, so
its R² says nothing about it); ROC AUC for a binary classifier, and for a multiclass one the macro
average of one-vs-rest ROC AUCs. Classifiers also report accuracy (informative, not checked).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from pitstop.errors import UsageError
from pitstop.losses import Loss, LossKind
from pitstop.registry import Task


def quality_metric(task: Task, loss: Loss) -> str | None:
    """The quality score the gate checks for this task and loss (None: none applies)."""
    if task is not Task.REGRESSION:
        return "roc_auc"
    return None if loss.kind is LossKind.PINBALL else "r2"


def offline_metrics(task: Task, loss: Loss, y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> dict[str, float]:
    """The mean loss (and RMSE for a squared loss) and quality metrics of one model on one test set.

    `y_pred` is what the model serves: values, the positive-class probability (binary), or one column
    of probabilities per class (multiclass, `y_true` holding class indices).

    >>> offline_metrics(Task.REGRESSION, Loss.default(Task.REGRESSION), [1.0, 2.0, 3.0], [1.0, 2.0, 4.0])
    {'mae': 0.333..., 'r2': 0.5}
    """
    # scikit-learn takes a second to import; only the offline gate needs it, so it loads here.
    from sklearn.metrics import accuracy_score, r2_score, roc_auc_score

    truth = np.asarray(y_true, dtype=float)
    predicted = np.asarray(y_pred, dtype=float)
    if len(truth) == 0:
        raise UsageError("the test set has no rows")
    if not np.isfinite(predicted).all():
        raise UsageError("the model returned NaN or infinite predictions on the test set")
    out = loss.reported(float(np.mean(loss.per_request(truth, predicted))))
    if task is Task.REGRESSION:
        if quality_metric(task, loss):
            out["r2"] = float(r2_score(truth, predicted))
        return out
    present = np.unique(truth)
    if len(present) < 2:
        raise UsageError("the test set holds only one class; ROC AUC needs at least two")
    if task is Task.CLASSIFICATION:
        out["roc_auc"] = float(roc_auc_score(truth, predicted))
        out["accuracy"] = float(accuracy_score(truth, predicted >= 0.5))
        return out
    out["roc_auc"] = _multiclass_auc(truth, predicted, present)
    out["accuracy"] = float(accuracy_score(truth, predicted.argmax(axis=1)))
    return out


def _multiclass_auc(
    truth: npt.NDArray[np.float64], probabilities: npt.NDArray[np.float64], present: npt.NDArray[np.float64]
) -> float:
    """Macro one-vs-rest ROC AUC over the classes the test set holds (a class it lacks has none)."""
    from sklearn.metrics import roc_auc_score

    scores = [roc_auc_score(truth == k, probabilities[:, int(k)]) for k in present]
    return float(np.mean(scores))
