"""`pitstop mlflow sync`: MLflow's `@challenger` polled on a real `mlflow server`; a move imports the
version once, a repeat does nothing, and the policy's action gates it."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from mlflow_registry.conftest import FRAME, MODEL, NAME, MlflowServer
from pitstop.mlflow_source import client
from pitstop.mlflow_sync import SyncOutcome, sync
from pitstop.workspace import Workspace


def test_a_challenger_move_is_imported_once(
    ws: Workspace, workspace_dir: Path, mlflow_server: MlflowServer, cli
) -> None:  # type: ignore[no-untyped-def]
    mlflow = client(mlflow_server.url)
    mlflow.set_registered_model_alias(NAME, "challenger", "1")
    look = ["mlflow", "sync", MODEL, "--name", NAME, "--tracking-uri", mlflow_server.url, "--once"]
    first = cli(*look, "-w", workspace_dir, "--json")
    assert first.exit_code == 0, first.stderr
    assert json.loads(first.stdout) | {"gate": None, "mirror": None} == {
        "model": MODEL,
        "name": NAME,
        "outcome": "imported",
        "mlflow_version": "1",
        "version": 1,
        "gate": None,
        "rollout_id": None,
        "mirror": None,
    }
    again = cli(*look, "-w", workspace_dir)
    assert again.exit_code == 0 and "version 1 already (nothing to do)" in again.stdout
    mlflow.set_registered_model_alias(NAME, "challenger", "2")
    moved = sync(ws, MODEL, name=NAME, tracking_uri=mlflow_server.url)
    assert (moved.outcome, moved.mlflow_version, moved.version) == (SyncOutcome.IMPORTED, "2", 2)
    origin = ws.version(MODEL, 2).lineage.mlflow
    assert origin is not None and (origin.version, origin.alias) == ("2", "challenger")
    assert [v.version for v in ws.versions(MODEL)] == [1, 2]


def test_the_gate_action_gates_the_imported_version(
    ws: Workspace, workspace_dir: Path, mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    test_csv = tmp_path / "test.csv"
    FRAME.assign(y=2 * FRAME["a"] + 10 * FRAME["b"]).to_csv(test_csv, index=False)
    ws.add_dataset("eta-test", test_csv)
    config = workspace_dir / "pitstop.yaml"
    settings = yaml.safe_load(config.read_text()) | {
        "mlflow": {"on_challenger": "gate", "test_set": "eta-test"}
    }
    config.write_text(yaml.safe_dump(settings))
    client(mlflow_server.url).set_registered_model_alias(NAME, "challenger", "2")
    with Workspace(workspace_dir) as fresh:
        result = sync(fresh, MODEL, name=NAME, tracking_uri=mlflow_server.url)
    assert result.outcome is SyncOutcome.IMPORTED and result.gate is not None
    assert result.gate.version == result.version


def test_no_challenger_alias_imports_nothing(ws: Workspace, mlflow_server: MlflowServer) -> None:
    mlflow = client(mlflow_server.url)
    mlflow.delete_registered_model_alias(NAME, "challenger")
    result = sync(ws, MODEL, name=NAME, tracking_uri=mlflow_server.url)
    assert result.outcome is SyncOutcome.NO_CHALLENGER and ws.versions(MODEL) == []
