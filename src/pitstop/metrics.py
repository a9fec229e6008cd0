"""Error metrics: offline (whole test set) and per request (what the live comparison averages).

Every formula comes from scikit-learn or numpy; lower error is better for both tasks.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from pitstop.errors import UsageError
from pitstop.registry import Task

# Probabilities are clipped away from 0 and 1 so one confident mistake costs a large, finite loss.
PROBABILITY_EPS = 1e-15

ERROR_METRIC = {Task.REGRESSION: "mae", Task.CLASSIFICATION: "log_loss"}
QUALITY_METRIC = {Task.REGRESSION: "r2", Task.CLASSIFICATION: "roc_auc"}


def offline_metrics(task: Task, y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> dict[str, float]:
    """The error and quality metrics of one model on one test set.

    Regression: MAE and R². Classification (binary; `y_pred` is the positive-class probability):
    log loss and ROC AUC.

    >>> offline_metrics(Task.REGRESSION, [1.0, 2.0, 3.0], [1.0, 2.0, 4.0])
    {'mae': 0.333..., 'r2': 0.5}
    """
    # scikit-learn takes a second to import; only the offline gate needs it, so it loads here.
    from sklearn.metrics import log_loss, mean_absolute_error, r2_score, roc_auc_score

    truth = np.asarray(y_true, dtype=float)
    predicted = np.asarray(y_pred, dtype=float)
    if len(truth) == 0:
        raise UsageError("the test set has no rows")
    if not np.isfinite(predicted).all():
        raise UsageError("the model returned NaN or infinite predictions on the test set")
    if task is Task.REGRESSION:
        return {"mae": float(mean_absolute_error(truth, predicted)), "r2": float(r2_score(truth, predicted))}
    if len(np.unique(truth)) < 2:
        raise UsageError("the test set holds only one class; ROC AUC and log loss need both")
    probabilities = np.clip(predicted, PROBABILITY_EPS, 1 - PROBABILITY_EPS)
    return {
        "log_loss": float(log_loss(truth, probabilities, labels=[0, 1])),
        "roc_auc": float(roc_auc_score(truth, probabilities)),
    }


def per_request_error(task: Task, y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Each request's own error: absolute error, or the log loss of that one prediction.

    >>> per_request_error(Task.CLASSIFICATION, [1, 0], [0.5, 0.5]).round(4).tolist()
    [0.6931, 0.6931]
    """
    truth = np.asarray(y_true, dtype=float)
    predicted = np.asarray(y_pred, dtype=float)
    if task is Task.REGRESSION:
        return np.asarray(np.abs(truth - predicted), dtype=float)
    probabilities = np.clip(predicted, PROBABILITY_EPS, 1 - PROBABILITY_EPS)
    return np.asarray(-(truth * np.log(probabilities) + (1 - truth) * np.log(1 - probabilities)), dtype=float)
