"""Per-request losses: each formula against scikit-learn, the SQL the evidence uses against numpy, and
a bad spec or user function named."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import (
    log_loss,
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_pinball_loss,
    mean_squared_error,
)

from helpers import write_regression_csv
from pitstop.errors import ConflictError, UsageError
from pitstop.losses import Loss, Scoring
from pitstop.registry import Task
from pitstop.rollout.gather import Window, gather_evidence
from pitstop.rollout.reads import EVERYTHING
from pitstop.serving.errors import InvalidInputError
from pitstop.serving.labels import Label, encode_labels, upsert_labels
from pitstop.serving.predlog import write_records
from pitstop.store.predictions.write import PredictionRecord
from pitstop.workspace import Workspace

START = datetime(2026, 3, 1, tzinfo=UTC)
Y = np.array([1.5, 2.0, 1.0, 3.0, -2.0])
P = np.array([1.0, 2.5, -0.5, 4.0, -1.0])
Q = np.array([1.4, 2.2, 0.5, 3.1, -2.5])  # another model's predictions of the same requests
BINARY_Y = np.array([1.0, 0.0, 0.0, 1.0, 1.0])
BINARY_P = np.array([0.9, 0.2, 0.6, 0.05, 0.5])
BINARY_Q = np.array([0.7, 0.1, 0.3, 0.4, 0.8])
CLASS_Y = np.array([0.0, 2.0, 1.0, 1.0, 2.0])
CLASS_P = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4], [0.0, 1.0, 0.0], [0.5, 0.4, 0.1]])
CLASS_Q = np.array([[0.5, 0.3, 0.2], [0.2, 0.2, 0.6], [0.1, 0.8, 0.1], [0.2, 0.6, 0.2], [0.3, 0.3, 0.4]])


def mean(spec: str, task: Task, y: Any, p: Any) -> float:
    return float(np.mean(Loss.parse(spec, task).per_request(y, p)))


def test_each_regression_loss_is_scikit_learns() -> None:
    assert mean("absolute", Task.REGRESSION, Y, P) == pytest.approx(mean_absolute_error(Y, P))
    assert mean("squared", Task.REGRESSION, Y, P) == pytest.approx(mean_squared_error(Y, P))
    assert mean("percentage", Task.REGRESSION, Y, P) == pytest.approx(mean_absolute_percentage_error(Y, P))
    for q in (0.1, 0.5, 0.9):
        assert mean(f"pinball:{q}", Task.REGRESSION, Y, P) == pytest.approx(mean_pinball_loss(Y, P, alpha=q))


def test_each_classifier_loss_is_scikit_learns() -> None:
    assert mean("log_loss", Task.CLASSIFICATION, BINARY_Y, BINARY_P) == pytest.approx(
        log_loss(BINARY_Y, BINARY_P)
    )
    assert mean("brier", Task.CLASSIFICATION, BINARY_Y, BINARY_P) == pytest.approx(
        np.mean((BINARY_P - BINARY_Y) ** 2)
    )
    clipped = np.clip(CLASS_P, 1e-15, 1 - 1e-15)
    expected = log_loss(CLASS_Y, clipped / clipped.sum(axis=1, keepdims=True), labels=[0, 1, 2])
    assert mean("log_loss", Task.MULTICLASS, CLASS_Y, CLASS_P) == pytest.approx(expected, rel=1e-6)
    onehot = np.eye(3)[CLASS_Y.astype(int)]
    assert mean("brier", Task.MULTICLASS, CLASS_Y, CLASS_P) == pytest.approx(
        np.mean(((CLASS_P - onehot) ** 2).sum(1))
    )


def test_squared_loss_reports_rmse_next_to_the_mse_its_ratios_compare() -> None:
    loss = Loss.parse("squared", Task.REGRESSION)
    assert loss.reported(4.0) == {"mse": 4.0, "rmse": 2.0}
    assert loss.label == "MSE"


@pytest.mark.parametrize(
    ("spec", "task", "message"),
    [
        ("cubic", Task.REGRESSION, "unknown loss 'cubic'"),
        ("pinball:1.5", Task.REGRESSION, "quantile must be a number between 0 and 1"),
        ("pinball", Task.REGRESSION, "quantile must be a number between 0 and 1"),
        ("log_loss", Task.REGRESSION, "does not fit a regression model"),
        ("squared", Task.MULTICLASS, "does not fit a multiclass model"),
    ],
)
def test_a_bad_loss_spec_says_which_rule_broke(spec: str, task: Task, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        Loss.parse(spec, task)


def test_a_percentage_loss_refuses_labels_of_zero() -> None:
    with pytest.raises(
        UsageError, match="1 label\\(s\\) are 0, where absolute percentage error is undefined"
    ):
        Loss.parse("percentage", Task.REGRESSION).per_request([0.0, 1.0], [1.0, 1.0])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nosuchmodule:loss", "loss 'nosuchmodule:loss': cannot import nosuchmodule"),
        ("lossfunctions:missing", "lossfunctions has no function 'missing'"),
        (
            "lossfunctions:one_number",
            "returned shape \\(\\) for 5 requests; it must return one number per request",
        ),
        (
            "lossfunctions:raises",
            "loss lossfunctions:raises raised ZeroDivisionError: the loss divided by zero",
        ),
    ],
)
def test_a_user_loss_that_cannot_run_is_named(spec: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        Loss.parse(spec, Task.REGRESSION).per_request(Y, P)


def _log(ws: Workspace, task: Task, y: Any, served: Any, shadow: Any) -> None:
    """Five requests served by the champion and scored in shadow by the challenger, all labelled."""

    def record(i: int, arm: str, role: str, value: Any) -> PredictionRecord:
        probabilities = None
        if task is Task.MULTICLASS:
            probabilities, value = json.dumps([float(v) for v in value]), float(np.argmax(value))
        time = (START + timedelta(minutes=i)).timestamp()
        return PredictionRecord(
            1, f"r{i}", f"u{i}", time, 1 if arm == "champion" else 2, arm, role, 1, "user",
            float(value), 1.0, None, probabilities,
        )  # fmt: skip

    records = [record(i, "champion", "served", v) for i, v in enumerate(served)]
    records += [record(i, "challenger", "shadow", v) for i, v in enumerate(shadow)]
    write_records(ws.engine, records)
    with ws.writing() as conn:
        labels = [Label(f"r{i}", float(v), START) for i, v in enumerate(y)]
        upsert_labels(conn, 1, labels, received_at=START + timedelta(hours=1))


CASES = [
    (Task.REGRESSION, "absolute", Y, P, Q),
    (Task.REGRESSION, "squared", Y, P, Q),
    (Task.REGRESSION, "percentage", Y, P, Q),
    (Task.REGRESSION, "pinball:0.8", Y, P, Q),
    (Task.REGRESSION, "lossfunctions:absolute", Y, P, Q),
    (Task.CLASSIFICATION, "log_loss", BINARY_Y, BINARY_P, BINARY_Q),
    (Task.CLASSIFICATION, "brier", BINARY_Y, BINARY_P, BINARY_Q),
    (Task.MULTICLASS, "log_loss", CLASS_Y, CLASS_P, CLASS_Q),
    (Task.MULTICLASS, "brier", CLASS_Y, CLASS_P, CLASS_Q),
    (Task.MULTICLASS, "lossfunctions:wrong_probability", CLASS_Y, CLASS_P, CLASS_Q),
]


@pytest.mark.parametrize(
    ("task", "spec", "y", "served", "shadow"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES]
)
def test_the_evidence_averages_the_same_losses_as_numpy(
    workspace: Workspace, task: Task, spec: str, y: Any, served: Any, shadow: Any
) -> None:
    loss = Loss.parse(spec, task)
    _log(workspace, task, y, served, shadow)
    window = Window(1, task, 1, START, START + timedelta(days=1), loss=loss, classes=3)
    with workspace.reading() as conn:
        evidence = gather_evidence(conn, window, EVERYTHING)
    champion, challenger = loss.per_request(y, served), loss.per_request(y, shadow)
    assert evidence.champion.error_mean == pytest.approx(np.mean(champion))
    assert evidence.shadow.error_mean == pytest.approx(np.mean(challenger))
    assert (evidence.paired.champion_mean, evidence.paired.challenger_mean) == pytest.approx(
        (np.mean(champion), np.mean(challenger))
    )


def test_labels_are_checked_against_the_models_loss_and_classes() -> None:
    percentage = Scoring(Task.REGRESSION, Loss.parse("percentage", Task.REGRESSION))
    with pytest.raises(InvalidInputError) as zero:
        encode_labels([Label("r1", 2.0), Label("r2", 0.0)], percentage, None)
    assert [(p.field, p.problem) for p in zero.value.problems] == [
        ("labels[1].label", "0 has no percentage error (the model's loss divides by the label)")
    ]
    multiclass = Scoring(Task.MULTICLASS, Loss.default(Task.MULTICLASS), 3)
    encoded = encode_labels([Label("r1", "mid"), Label("r2", "high")], multiclass, ["high", "low", "mid"])
    assert [label.value for label in encoded] == [2.0, 0.0]  # stored as the class's index
    numbered = encode_labels([Label("r1", 2.0), Label("r2", "3")], multiclass, [1, 2, 3])
    assert [label.value for label in numbered] == [1.0, 2.0]  # 2.0 is the class 2, "3" the class 3


def test_a_loss_changes_only_while_the_model_has_no_version(workspace: Workspace, tmp_path: Path) -> None:
    workspace.add_dataset("train", write_regression_csv(tmp_path / "train.csv"), time_column="time")
    workspace.create_model("eta", task="regression", target="y", id_columns=["user_id"], features="all")
    assert workspace.set_loss("eta", "pinball:0.25").loss == "pinball:0.25"
    workspace.train("eta", trainer="helpers:linear_trainer", data="train")
    with pytest.raises(ConflictError, match=r"its loss \(pinball:0\.25\) is fixed: create a new model"):
        workspace.set_loss("eta", "squared")
    changes = [event for event in workspace.events("eta") if event.kind == "loss_changed"]
    assert [(event.from_state, event.to_state) for event in changes] == [("absolute", "pinball:0.25")]
