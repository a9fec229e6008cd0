"""A model's life after `models create`: features chosen, never guessed; description and metadata;
archived and brought back, with everything it holds kept."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import joblib
import pandas as pd
import pytest
import sqlalchemy as sa
from sklearn.linear_model import LinearRegression

from helpers import fit_regression_artifact, one_line_error, write_regression_csv
from pitstop import registry
from pitstop.errors import ConflictError, UsageError
from pitstop.feature_choice import FeaturesNotChosenError
from pitstop.registry import ModelArchivedError
from pitstop.store.engine import make_engine
from pitstop.store.migrate import head_revision, upgrade
from pitstop.workspace import Workspace


def add_trips(ws: Workspace, tmp_path: Path) -> Path:
    """Dataset `trips`: time, user_id, features a and b, the target y, and `tipped`, an outcome."""
    csv = write_regression_csv(tmp_path / "trips.csv")
    text = csv.read_text().splitlines()
    rows = [text[0] + ",tipped"] + [line + f",{i % 2}" for i, line in enumerate(text[1:])]
    csv.write_text("\n".join(rows) + "\n")
    ws.add_dataset("trips", csv, time_column="time")
    return csv


@pytest.fixture
def trips(workspace: Workspace, tmp_path: Path) -> Path:
    return add_trips(workspace, tmp_path)


def create_args(ws_dir: Path, *extra: str) -> list[str]:
    return ["models", "create", "eta", "--task", "regression", "--target", "y", "--id-columns", "user_id",
            *extra, "-w", str(ws_dir)]  # fmt: skip


# -- no silent features -----------------------------------------------------------------------------


def test_create_without_features_refuses_and_lists_the_candidates(  # type: ignore[no-untyped-def]
    cli, workspace: Workspace, trips: Path
) -> None:
    line = one_line_error(cli(*create_args(workspace.path)))
    assert "--features: say which columns model 'eta' reads" in line
    assert "candidates in dataset trips:1 are a, b, tipped" in line  # the outcome is shown, not taken
    assert "--features all" in line and "--features a,b,tipped" in line
    assert workspace.models(include_archived=True) == []


def test_create_without_features_and_without_data_says_how_to_see_candidates(  # type: ignore[no-untyped-def]
    cli, workspace: Workspace
) -> None:
    line = one_line_error(cli(*create_args(workspace.path)))
    assert "--features all" in line and "--data NAME" in line


def test_features_all_with_data_prints_the_chosen_list_in_json(  # type: ignore[no-untyped-def]
    cli, workspace: Workspace, trips: Path
) -> None:
    created = cli(*create_args(workspace.path, "--features", "all", "--data", "trips", "--json"))
    assert created.exit_code == 0, created.stderr
    assert json.loads(created.stdout)["features"] == ["a", "b", "tipped"]
    assert workspace.model("eta").features == ["a", "b", "tipped"]


def test_features_all_with_data_prints_the_chosen_list_for_people(  # type: ignore[no-untyped-def]
    cli, workspace: Workspace, trips: Path
) -> None:
    created = cli(*create_args(workspace.path, "--features", "all", "--data", "trips"))
    assert created.exit_code == 0, created.stderr
    assert "features: a, b, tipped" in created.stdout


def test_features_all_without_data_is_fixed_and_printed_at_the_first_version(  # type: ignore[no-untyped-def]
    cli, workspace: Workspace, trips: Path, tmp_path: Path
) -> None:
    created = cli(*create_args(workspace.path, "--features", "all"))
    assert created.exit_code == 0, created.stderr
    assert "fixed and shown then" in created.stdout
    frame = pd.read_csv(trips)
    artifact = tmp_path / "m.joblib"
    joblib.dump(LinearRegression().fit(frame[["a", "b", "tipped"]], frame["y"]), artifact)
    registered = cli("register", "eta", artifact, "--train-data", "trips", "-w", workspace.path)
    assert registered.exit_code == 0, registered.stderr
    assert "features: a, b, tipped" in registered.stdout
    assert workspace.model("eta").features == ["a", "b", "tipped"]


def test_a_listed_feature_the_data_lacks_is_refused(cli, workspace: Workspace, trips: Path) -> None:  # type: ignore[no-untyped-def]
    line = one_line_error(cli(*create_args(workspace.path, "--features", "a,tip", "--data", "trips")))
    assert "dataset trips:1 has no column 'tip'" in line


def test_the_python_api_does_not_guess_features_either(workspace: Workspace, trips: Path) -> None:
    with pytest.raises(FeaturesNotChosenError) as refused:
        workspace.create_model("eta", task="regression", target="y", id_columns=["user_id"])
    assert refused.value.candidates == ["a", "b", "tipped"] and refused.value.source == "trips:1"
    info = workspace.create_model(
        "eta", task="regression", target="y", id_columns=["user_id"], features="all", data="trips"
    )
    assert info.features == ["a", "b", "tipped"]


def test_a_bare_string_is_not_a_feature_list(workspace: Workspace) -> None:
    with pytest.raises(UsageError, match="a list of columns or 'all'"):
        workspace.create_model("eta", task="regression", target="y", features="a,b")


# -- description and metadata -----------------------------------------------------------------------


@pytest.fixture
def eta(workspace: Workspace, trips: Path, tmp_path: Path) -> Workspace:
    """Model `eta` (features a, b) with version 1 as champion."""
    workspace.create_model(
        "eta", task="regression", target="y", time_column="time", features=["a", "b"], id_columns=["user_id"]
    )
    artifact = fit_regression_artifact(write_regression_csv(tmp_path / "ab.csv"), tmp_path / "m.joblib")
    workspace.register("eta", artifact, train_data="trips")
    workspace.register("eta", artifact, train_data="trips")
    workspace.set_champion("eta", 1, reason="first")
    return workspace


def test_update_sets_description_and_metadata_and_records_an_event(cli, eta: Workspace) -> None:  # type: ignore[no-untyped-def]
    args = ["-w", eta.path, "--by", "ana", "--json"]
    done = cli("models", "update", "eta", "--description", "ETA", "--meta", "owner=team-eta", *args)
    assert done.exit_code == 0, done.stderr
    assert json.loads(done.stdout)["metadata"] == {"owner": "team-eta"}
    done = cli("models", "update", "eta", "--meta", "tier=1", "--unset", "owner", *args)
    assert json.loads(done.stdout)["metadata"] == {"tier": "1"}
    assert eta.model("eta").description == "ETA"
    updates = [e for e in eta.events("eta") if e.kind == "model_updated"]
    assert [e.actor for e in updates] == ["ana", "ana"]
    assert updates[-1].data["before"]["metadata"] == {"owner": "team-eta"}


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--meta=2nd=x", "--meta '2nd': a key starts with a letter"),
        ("--meta=novalue", "--meta 'novalue': write it as KEY=VALUE"),
        (f"--meta=k={'v' * 501}", "--meta k: a value holds at most 500 characters"),
        ("--unset=ghost", "--unset ghost: the model has no such metadata key"),
    ],
)
def test_bad_metadata_is_one_line(cli, eta: Workspace, option: str, message: str) -> None:  # type: ignore[no-untyped-def]
    assert message in one_line_error(cli("models", "update", "eta", option, "-w", eta.path))
    assert eta.model("eta").metadata == {}


def test_update_with_nothing_to_change_is_refused(cli, eta: Workspace) -> None:  # type: ignore[no-untyped-def]
    assert "nothing to change" in one_line_error(cli("models", "update", "eta", "-w", eta.path))


# -- archive ----------------------------------------------------------------------------------------


def test_an_archived_model_is_listed_only_with_all(cli, eta: Workspace) -> None:  # type: ignore[no-untyped-def]
    archived = cli(
        "models", "archive", "eta", "--reason", "replaced", "--by", "ana", "-w", eta.path, "--json"
    )
    assert archived.exit_code == 0, archived.stderr
    assert json.loads(archived.stdout)["archived"]["by"] == "ana"
    listed = json.loads(cli("models", "list", "-w", eta.path, "--json").stdout)
    assert listed == []
    everything = json.loads(cli("models", "list", "--all", "-w", eta.path, "--json").stdout)
    assert [m["name"] for m in everything] == ["eta"]
    assert "eta (archived)" in cli("models", "list", "--all", "-w", eta.path).stdout


def test_an_archived_model_keeps_its_versions_and_events(eta: Workspace) -> None:
    before = [e.kind for e in eta.events("eta")]
    eta.archive_model("eta", reason="replaced", actor="ana")
    assert [v.version for v in eta.versions("eta")] == [1, 2]
    events = eta.events("eta")
    assert [e.kind for e in events] == [*before, "model_archived"]
    assert (events[-1].actor, events[-1].reason) == ("ana", "replaced")
    assert eta.load("eta", "champion") is not None  # still served: a gateway loads it as before


def test_an_archived_model_refuses_new_versions(cli, eta: Workspace, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    eta.archive_model("eta", reason="replaced")
    artifact = fit_regression_artifact(write_regression_csv(tmp_path / "ab.csv"), tmp_path / "m2.joblib")
    line = one_line_error(cli("register", "eta", artifact, "--train-data", "trips", "-w", eta.path))
    assert "model 'eta' is archived" in line and "takes no new versions" in line
    assert "pitstop models unarchive eta" in line
    assert [v.version for v in eta.versions("eta")] == [1, 2]


def test_an_archived_model_refuses_rollouts_routes_and_champions(eta: Workspace) -> None:
    from pitstop.rollout import routes

    eta.archive_model("eta", reason="replaced")
    with pytest.raises(ModelArchivedError, match="takes no new rollouts"):
        eta.start_rollout("eta", 2, skip_gate=True, reason="try")
    with pytest.raises(ModelArchivedError, match="takes no new routes"):
        routes.route(eta, "eta", mode="shadow", challenger=2, reason="look")
    with pytest.raises(ModelArchivedError, match="takes no new champion"):
        eta.set_champion("eta", 2, reason="swap", force=True)
    assert eta.rollouts("eta") == []


def test_unarchive_brings_the_model_back(cli, eta: Workspace) -> None:  # type: ignore[no-untyped-def]
    eta.archive_model("eta", reason="replaced")
    back = cli("models", "unarchive", "eta", "--reason", "still needed", "-w", eta.path, "--json")
    assert back.exit_code == 0, back.stderr
    assert json.loads(back.stdout)["archived"] is None
    assert [m.name for m in eta.models()] == ["eta"]
    assert eta.events("eta")[-1].data["archived"]["reason"] == "replaced"
    assert eta.start_rollout("eta", 2, skip_gate=True, reason="try").state.challenger_version == 2


def test_a_model_with_an_active_rollout_cannot_be_archived(cli, eta: Workspace) -> None:  # type: ignore[no-untyped-def]
    rollout = eta.start_rollout("eta", 2, skip_gate=True, reason="try")
    line = one_line_error(cli("models", "archive", "eta", "--reason", "done", "-w", eta.path))
    assert f"rollout {rollout.state.id} of 'eta' is active" in line
    assert eta.model("eta").archived is None


def test_archiving_twice_is_a_conflict(eta: Workspace) -> None:
    eta.archive_model("eta", reason="replaced")
    with pytest.raises(ConflictError, match="already archived"):
        eta.archive_model("eta", reason="again")


# -- migration 0006 ---------------------------------------------------------------------------------


def test_upgrading_keeps_models_active_with_no_description_or_metadata(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine, "0005")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO models (name, task, target, id_columns, created_at, created_by, allow_pickle) "
                "VALUES ('old', 'regression', 'y', '[]', :at, 't', :no)"
            ),
            {"at": datetime(2026, 1, 1), "no": False},
        )
    assert upgrade(engine) == ("0005", head_revision())
    with engine.connect() as conn:
        [old] = registry.list_models(conn, include_archived=False)
    engine.dispose()
    assert (old.name, old.description, old.metadata, old.archived) == ("old", None, {}, None)
