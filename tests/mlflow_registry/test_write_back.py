"""`mirror`: pitstop's champion and previous written back to MLflow's `@champion` and `@previous`,
the promoted version tagged with the decision; an outside move of `@champion` during a rollout is
reported and not followed. Against the real `mlflow server`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlflow_registry.conftest import MODEL, NAME, MlflowServer
from pitstop.events import EventKind, list_events
from pitstop.mlflow_source import client
from pitstop.mlflow_sync import mirror, write_back
from pitstop.rollout.controller import Controller
from pitstop.workspace import Workspace


def test_promotion_moves_champion_and_previous_and_tags_the_version(
    ws: Workspace, mlflow_server: MlflowServer
) -> None:
    url = mlflow_server.url
    mlflow = client(url)
    for alias in ("champion", "previous"):  # the server is shared: start from no pitstop aliases
        mlflow.delete_registered_model_alias(NAME, alias)
    for key in mlflow.get_model_version(NAME, "2").tags:  # nor tags (another store's rollout 1)
        mlflow.delete_model_version_tag(NAME, "2", key)
    ws.register_mlflow(MODEL, f"models:/{NAME}/1", tracking_uri=url)
    ws.register_mlflow(MODEL, f"models:/{NAME}/2", tracking_uri=url)
    ws.set_champion(MODEL, 1, reason="first import")
    assert mirror(ws, MODEL, name=NAME, tracking_uri=url).moved == {"champion": "1"}

    ws.start_rollout(MODEL, 2, reason="MLflow challenger", skip_gate=True)
    mlflow.set_registered_model_alias(NAME, "champion", "2")  # someone jumps the gun in MLflow
    during = mirror(ws, MODEL, name=NAME, tracking_uri=url)
    assert during.outside_champion == "2" and during.moved == {}
    assert mirror(ws, MODEL, name=NAME, tracking_uri=url).outside_champion == "2"  # still there
    assert ws.model(MODEL).aliases["champion"] == 1  # not followed

    ws.promote(MODEL, reason="looks good", to_end=True)
    after = mirror(ws, MODEL, name=NAME, tracking_uri=url)
    assert after.moved == {"previous": "1"} and after.tagged == ["2"]  # @champion already said 2
    aliases = mlflow.get_registered_model(NAME).aliases
    assert (aliases["champion"], aliases["previous"]) == ("2", "1")
    tags = mlflow.get_model_version(NAME, "2").tags
    assert tags["pitstop.decision"] == "promoted" and tags["pitstop.version"] == "2"
    assert tags["pitstop.rule"] and isinstance(json.loads(tags["pitstop.numbers"]), dict)
    assert mirror(ws, MODEL, name=NAME, tracking_uri=url).lines() == []  # converged: nothing to do
    # pitstop's events keep the alias history MLflow does not: every move, and the outside one once
    with ws.reading() as conn:
        history = list_events(conn, ws.model(MODEL).id, kinds=(EventKind.MLFLOW_ALIAS,))
    assert [(e.data["alias"], e.from_state, e.to_state, e.actor, e.data["outside"]) for e in history] == [
        ("champion", None, "1", "pitstop", False),
        ("champion", "1", "2", "mlflow", True),
        ("previous", None, "1", "pitstop", False),
    ]


@pytest.fixture
def promoted_without_write_back(
    workspace_dir: Path, mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A workspace mapping `delivery-eta` to MLflow's `eta` (no sync loop: a webhook-only setup),
    where version 2 was promoted over version 1 and MLflow was not told yet."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    url, mlflow = mlflow_server.url, client(mlflow_server.url)
    for alias in ("champion", "previous"):
        mlflow.delete_registered_model_alias(NAME, alias)
    config = workspace_dir / "pitstop.yaml"
    settings = {"tracking_uri": url, "models": {MODEL: NAME}}
    config.write_text(yaml.safe_dump(yaml.safe_load(config.read_text()) | {"mlflow": settings}))
    with Workspace(workspace_dir) as ws:
        ws.create_model(MODEL, task="regression", target="y", features=["a", "b"])
        ws.register_mlflow(MODEL, f"models:/{NAME}/1")
        ws.register_mlflow(MODEL, f"models:/{NAME}/2")
        ws.set_champion(MODEL, 1, reason="first import")
        ws.start_rollout(MODEL, 2, reason="MLflow challenger", skip_gate=True)
        ws.promote(MODEL, reason="looks good", to_end=True)
    return workspace_dir


def mlflow_aliases(mlflow_server: MlflowServer) -> dict[str, str]:
    return {k: str(v) for k, v in client(mlflow_server.url).get_registered_model(NAME).aliases.items()}


def test_the_leading_controller_writes_back_without_a_sync_loop(
    promoted_without_write_back: Path, mlflow_server: MlflowServer
) -> None:
    """The controller mirrors every model of `mlflow.models` after its rounds, off its own thread, and
    a controller that stops leading waits for that write-back: none is cut off half-way."""
    with Workspace(promoted_without_write_back) as ws:
        after_round = write_back(ws)
        assert after_round is not None
        controller = Controller(ws, after_round=after_round)
        controller.tick()
        controller.release()
        assert {"champion": "2", "previous": "1"}.items() <= mlflow_aliases(mlflow_server).items()
        with ws.reading() as conn:
            assert list_events(conn, ws.model(MODEL).id, kinds=(EventKind.MLFLOW_ALIAS,))


def test_one_controller_round_from_the_command_line_writes_back(
    promoted_without_write_back: Path, mlflow_server: MlflowServer, cli: Any
) -> None:
    """`pitstop controller --once` (a cron job's round) ends only once MLflow has been told."""
    done = cli("controller", "--once", "--workspace", str(promoted_without_write_back))
    assert done.exit_code == 0, done.stderr
    assert {"champion": "2", "previous": "1"}.items() <= mlflow_aliases(mlflow_server).items()


def test_nothing_is_written_back_without_a_mapped_model(workspace: Workspace) -> None:
    assert write_back(workspace) is None  # no `mlflow.models`: the controller runs no write-back
