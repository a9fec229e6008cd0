"""Checked at the door: `register` and `train` load the model in a fresh process and predict training
rows before anything is stored; a model that cannot is refused with its own error (exit 2)."""

from __future__ import annotations

import sys
import textwrap
from importlib import metadata
from pathlib import Path
from typing import Any

import joblib
import lightgbm
import pandas as pd
import pytest

from helpers import one_line_error, write_regression_csv
from pitstop.door_check import ArtifactRefusedError
from pitstop.workspace import Workspace


@pytest.fixture
def ready(workspace: Workspace, tmp_path: Path) -> Workspace:
    workspace.add_dataset("train", write_regression_csv(tmp_path / "train.csv", rows=240), time_column="time")
    workspace.create_model(
        "eta", task="regression", target="y", time_column="time", id_columns=["user_id"], features="all"
    )
    return workspace


FAILED = "it failed to predict 100 of its training rows"


def nothing_stored(ws: Workspace) -> bool:
    """No version row and no model file in the artifact store."""
    models = ws.path / ".pitstop" / "artifacts" / "models"
    return ws.versions("eta") == [] and not (models.exists() and any(models.iterdir()))


@pytest.mark.parametrize(
    ("trainer", "reads"),
    [
        ("broken_predict", f"{FAILED} (RuntimeError: feature store unreachable)"),
        ("words_answer", f"{FAILED} (ValueError: could not convert"),
        ("short_answer", "it returned 3 predictions for 100 rows; predict must return one number per row"),
        (
            "nan_answer",
            "it returned NaN or infinite predictions for training rows 1, 6, 11, 15, 20 and 45 more",
        ),
        ("dies_predicting", "its process died while loading or predicting (its error is on stderr)"),
    ],
)
def test_train_refuses_a_model_that_cannot_predict_its_training_rows(  # type: ignore[no-untyped-def]
    cli, ready: Workspace, trainer: str, reads: str
) -> None:
    result = cli(
        "train", "eta", "--trainer", f"misbehaving_models:{trainer}", "--data", "train", "-w", ready.path
    )
    assert result.exit_code == 2
    assert f"error: trainer misbehaving_models:{trainer} refused, nothing stored: {reads}" in one_line_error(
        result
    )
    assert nothing_stored(ready)


def test_register_refuses_a_file_whose_classes_a_fresh_process_cannot_import(  # type: ignore[no-untyped-def]
    cli, ready: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's first failure: a class that only the registering process could import."""
    module = tmp_path / "vanishing_models.py"
    module.write_text(textwrap.dedent(CONSTANT_MODEL))
    monkeypatch.syspath_prepend(str(tmp_path))
    import vanishing_models  # type: ignore[import-not-found]

    artifact = tmp_path / "model.joblib"
    joblib.dump(vanishing_models.Constant(), artifact)
    module.unlink()  # still imported here; a gateway starting tomorrow could not
    try:
        result = cli("register", "eta", artifact, "--train-data", "train", "-w", ready.path)
    finally:
        sys.modules.pop("vanishing_models", None)
    assert result.exit_code == 2
    assert (
        "refused, nothing stored: it cannot be loaded in a fresh process (ModuleNotFoundError: "
        "No module named 'vanishing_models'; the module its classes come from must be importable"
    ) in one_line_error(result)
    assert nothing_stored(ready)


CONSTANT_MODEL = """
    class Constant:
        def predict(self, X):
            return [1.0] * len(X)
"""


def test_the_python_api_raises_a_named_error_with_the_facts(ready: Workspace) -> None:
    with pytest.raises(ArtifactRefusedError) as refused:
        ready.train("eta", trainer="misbehaving_models:short_answer", data="train")
    assert refused.value.source == "trainer misbehaving_models:short_answer"
    assert refused.value.problem.startswith("it returned 3 predictions for 100 rows")


def test_skip_check_stores_the_model_untried_with_the_reason_in_its_lineage(  # type: ignore[no-untyped-def]
    cli, ready: Workspace
) -> None:
    result = cli(
        "train", "eta", "--trainer", "misbehaving_models:broken_predict", "--data", "train",
        "--skip-check", "needs the feature store", "-w", ready.path,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert ready.version("eta", 1).lineage.to_json()["door_check"] == {"skipped": "needs the feature store"}


def test_a_passing_model_records_the_packages_it_needs_with_their_versions(ready: Workspace) -> None:
    lineage = ready.train("eta", trainer="helpers:linear_trainer", data="train").lineage.to_json()
    assert lineage["door_check"] == {"rows": 100}
    packages: dict[str, Any] = lineage["packages"]
    assert packages["scikit-learn"] == metadata.version("scikit-learn")
    assert "lightgbm" not in packages and "xgboost" not in packages  # installed here, not used by it


def lightgbm_on_a_category(csv: Path, out: Path) -> Path:
    frame = pd.read_csv(csv)
    frame["zone"] = frame["zone"].astype("category")
    model = lightgbm.LGBMRegressor(n_estimators=5, min_child_samples=5, verbose=-1)
    joblib.dump(model.fit(frame[["a", "zone"]], frame["y"]), out)
    return out


def test_register_refuses_lightgbm_on_a_category_column_a_csv_snapshot_holds_as_text(  # type: ignore[no-untyped-def]
    cli, workspace: Workspace, tmp_path: Path
) -> None:
    """The issue's fourth failure: it registered, then failed at the gate. Declared categorical, it works."""
    csv = write_regression_csv(tmp_path / "train.csv")
    frame = pd.read_csv(csv).assign(zone=lambda f: "z" + f["user_id"].str[-1])
    frame.to_csv(csv, index=False)
    artifact = lightgbm_on_a_category(csv, tmp_path / "lgbm.joblib")
    workspace.create_model("eta", task="regression", target="y", time_column="time", features=["a", "zone"])
    workspace.add_dataset("text", csv, time_column="time")
    refused = cli("register", "eta", artifact, "--train-data", "text", "-w", workspace.path)
    assert refused.exit_code == 2
    assert (
        "it failed to predict 100 of its training rows (ValueError: train and valid dataset categorical"
        in (one_line_error(refused))
    )
    assert "declare them categorical (--categorical zone)" in one_line_error(refused)
    cli(
        "dataset", "add", "zones", csv, "--time-column", "time", "--categorical", "zone", "-w", workspace.path
    )
    registered = cli("register", "eta", artifact, "--train-data", "zones", "-w", workspace.path)
    assert registered.exit_code == 0, registered.stderr
    packages = workspace.version("eta", 1).lineage.to_json()["packages"]
    assert packages["lightgbm"] == metadata.version("lightgbm")
