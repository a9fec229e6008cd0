"""The input signature: recorded from the training rows and the model, read back, and the one builder
of a model's input from a table or from JSON rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sklearn.linear_model import LinearRegression

from contract_models import ArrayWeights, ZoneMeans
from helpers import write_regression_csv
from pitstop.model_input import InputSignature, from_lineage, signature_of
from pitstop.records.lineage import Lineage
from pitstop.store.tables import model_versions
from pitstop.workspace import Workspace

TRAIN = pd.DataFrame(
    {
        "a": [0.5, 1.5, -2.0, 3.0],
        "n": [1, 2, 3, 4],
        "zone": pd.Categorical(["north", "south", "east", "north"]),
    }
)


def predicts(model: Any) -> Any:
    return lambda data: model.predict(data)


def test_a_table_and_json_rows_give_the_same_input() -> None:
    signature = signature_of(ZoneMeans({}, 0.0), TRAIN, ["a", "n", "zone"], lambda data: None)
    rows = [{"a": 0.5, "n": 1, "zone": "north"}, {"a": 2, "n": 5, "zone": "east"}]
    from_table = signature.from_frame(pd.DataFrame(rows).astype({"zone": "category"}))
    pd.testing.assert_frame_equal(signature.from_rows(rows), from_table)
    assert from_table["a"].dtype == np.float64 and from_table["n"].dtype == np.int64


def test_a_categorical_column_keeps_the_training_categories_whatever_the_rows_hold() -> None:
    signature = signature_of(ZoneMeans({}, 0.0), TRAIN, ["zone"], lambda data: None)
    built = signature.from_rows([{"zone": "south"}])["zone"]
    assert list(built.cat.categories) == ["east", "north", "south"] and built.cat.codes.tolist() == [2]


def test_the_features_are_recorded_in_the_order_the_model_was_fitted_with() -> None:
    model = LinearRegression().fit(TRAIN[["n", "a"]], [1.0, 2.0, 3.0, 5.0])
    signature = signature_of(model, TRAIN, ["a", "n"], predicts(model))
    assert signature.names == ["n", "a"] and signature.takes == "frame"
    assert list(signature.from_rows([{"a": 1.0, "n": 2}]).columns) == ["n", "a"]


def test_what_a_model_takes_comes_from_its_attributes_or_a_try() -> None:
    unnamed = LinearRegression().fit(TRAIN[["a", "n"]].to_numpy(), [1.0, 2.0, 3.0, 5.0])
    framed = ZoneMeans({"north": 1.0, "south": 2.0, "east": 3.0}, 0.5)
    arrayed = ArrayWeights([1.0, 2.0])
    assert signature_of(unnamed, TRAIN, ["a", "n"], predicts(unnamed)).takes == "array"
    assert signature_of(framed, TRAIN, ["a", "zone"], predicts(framed)).takes == "frame"
    assert signature_of(arrayed, TRAIN, ["a", "n"], predicts(arrayed)).takes == "array"


def test_a_signature_survives_json() -> None:
    signature = signature_of(ZoneMeans({}, 0.0), TRAIN, ["a", "n", "zone"], lambda data: None)
    assert InputSignature.from_dict(signature.to_dict()) == signature


def test_an_old_version_without_a_signature_gets_one_as_pitstop_fed_it_then() -> None:
    lineage = Lineage.from_json({"features": ["a", "n"], "feature_types": {"a": "float64", "n": "int64"}})
    named = LinearRegression().fit(TRAIN[["a", "n"]], [1.0, 2.0, 3.0, 5.0])
    unnamed = LinearRegression().fit(TRAIN[["a", "n"]].to_numpy(), [1.0, 2.0, 3.0, 5.0])
    derived = from_lineage(["a", "n"], lineage, named)
    assert [(c.name, c.dtype) for c in derived.columns] == [("a", "float64"), ("n", "int64")]
    assert derived.takes == "frame"
    assert from_lineage(["a", "n"], lineage, unnamed).takes == "array"
    assert from_lineage(["a", "n"], lineage, ZoneMeans({}, 0.0)).takes == "frame"


def test_an_old_version_without_a_signature_still_gates(workspace: Workspace, tmp_path: Path) -> None:
    workspace.add_dataset("train", write_regression_csv(tmp_path / "train.csv"), time_column="time")
    workspace.add_dataset("test", write_regression_csv(tmp_path / "t.csv", seed=3, start="2026-02-01"))
    workspace.create_model(
        "eta", task="regression", target="y", time_column="time", id_columns=["user_id"], features="all"
    )
    version = workspace.train("eta", trainer="helpers:linear_trainer", data="train")
    old = {k: v for k, v in version.lineage.to_json().items() if k != "input_signature"}
    with workspace.writing() as conn:
        conn.execute(sa.update(model_versions).values(lineage=old))
    report = workspace.gate("eta", 1, test_set="test")
    assert report.metrics["challenger"] is not None and report.metrics["challenger"]["mae"] < 0.2
