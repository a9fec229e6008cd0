"""`pitstop register MODEL models:/…`: an MLflow model imported from a real `mlflow server`, by alias,
by version and by run, with MLflow's lineage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlflow_registry.conftest import COMMIT, FRAME, MODEL, NAME, MlflowServer
from pitstop.errors import AlreadyImportedError, UsageError
from pitstop.mlflow_source import MlflowUnavailableError, client
from pitstop.workspace import Workspace


def test_a_version_named_by_alias_is_imported_with_mlflow_s_lineage(
    ws: Workspace, mlflow_server: MlflowServer
) -> None:
    client(mlflow_server.url).set_registered_model_alias(NAME, "challenger", "2")
    info = ws.register_mlflow(MODEL, f"models:/{NAME}@challenger", tracking_uri=mlflow_server.url)
    origin = info.lineage.mlflow
    assert origin is not None
    assert (origin.name, origin.version, origin.alias) == (NAME, "2", "challenger")
    assert origin.run_id == mlflow_server.runs[1]
    assert origin.params == {"fit_intercept": "True", "coefficient": "2.0"}
    assert origin.metrics == {"mae": pytest.approx(0.02)}
    [dataset] = origin.datasets
    assert (dataset.name, dataset.context, dataset.source_type) == ("train", "training", "s3")
    assert "s3://bucket/eta/train.parquet" in dataset.source and dataset.digest
    assert (origin.flavor, origin.serialization_format) == ("sklearn", "skops")
    assert len(origin.files["model.skops"]) == 64 and "MLmodel" in origin.files
    assert origin.git_commit == COMMIT and info.lineage.code.commit == COMMIT
    assert info.lineage.params == origin.params
    assert info.format == "skops" and info.lineage.door_check is not None
    assert info.lineage.door_check.rows == 2  # the logged input example
    predicted = ws.load(MODEL, info.version).predict(FRAME)
    assert list(predicted) == pytest.approx(list(2 * FRAME["a"] + 10 * FRAME["b"]))


def test_a_version_named_by_number_is_imported_from_the_command_line(
    ws: Workspace, workspace_dir: Path, mlflow_server: MlflowServer, cli
) -> None:  # type: ignore[no-untyped-def]
    uri = f"models:/{NAME}/1"
    done = cli("register", MODEL, uri, "--tracking-uri", mlflow_server.url, "-w", workspace_dir, "--json")
    assert done.exit_code == 0, done.stderr
    lineage = json.loads(done.stdout)["lineage"]["mlflow"]
    assert (lineage["version"], lineage["alias"], lineage["run_id"]) == ("1", None, mlflow_server.runs[0])
    shown = cli("models", "show", MODEL, "1", "-w", workspace_dir)
    assert "from MLflow" in shown.stdout and f"{NAME} version 1" in shown.stdout


def test_an_mlflow_version_is_imported_once(
    ws: Workspace, workspace_dir: Path, mlflow_server: MlflowServer, cli
) -> None:  # type: ignore[no-untyped-def]
    """Checked under the model's lock as the version is written: two imports of one MLflow version
    (a webhook's and a poll's, say) cannot both pass, whatever each saw before downloading."""
    uri = f"models:/{NAME}/1"
    first = ws.register_mlflow(MODEL, uri, tracking_uri=mlflow_server.url)
    with pytest.raises(AlreadyImportedError) as refused:
        ws.register_mlflow(MODEL, uri, tracking_uri=mlflow_server.url)
    assert refused.value.version == first.version
    assert f"MLflow {NAME} version 1 is already version {first.version}" in str(refused.value)
    again = cli("register", MODEL, uri, "--tracking-uri", mlflow_server.url, "-w", workspace_dir)
    assert again.exit_code == 2 and "is already version" in again.stderr
    assert [v.version for v in ws.versions(MODEL)] == [first.version]


def test_a_run_s_model_is_imported_without_a_registry_version(
    ws: Workspace, mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)  # the server MLflow's own way
    info = ws.register_mlflow(MODEL, f"runs:/{mlflow_server.runs[0]}/model")
    origin = info.lineage.mlflow
    assert origin is not None and origin.run_id == mlflow_server.runs[0]
    assert (origin.name, origin.version) == (None, None)
    expected = list(FRAME["a"] + 10 * FRAME["b"])
    assert list(ws.load(MODEL, info.version).predict(FRAME)) == pytest.approx(expected)


def test_an_unreachable_server_or_unknown_alias_is_one_clear_error(
    ws: Workspace, mlflow_server: MlflowServer, workspace_dir: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # MLflow's own retries, minutes by default
    with pytest.raises(MlflowUnavailableError, match="no-such-alias"):
        ws.register_mlflow(MODEL, f"models:/{NAME}@no-such-alias", tracking_uri=mlflow_server.url)
    with pytest.raises(UsageError, match="not an MLflow model URI"):
        ws.register_mlflow(MODEL, "models:/", tracking_uri=mlflow_server.url)
    with pytest.raises(UsageError, match="say which MLflow server"):
        ws.register_mlflow(MODEL, f"models:/{NAME}/1")
    closed = "http://127.0.0.1:9"
    done = cli("register", MODEL, f"models:/{NAME}/1", "--tracking-uri", closed, "-w", workspace_dir)
    assert done.exit_code == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert ws.versions(MODEL) == []
