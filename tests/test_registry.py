from __future__ import annotations

import itertools
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pandas as pd
import pytest

from helpers import (
    fit_classifier_artifact,
    fit_regression_artifact,
    write_classification_csv,
    write_regression_csv,
)
from pitstop.errors import (
    AlreadyExistsError,
    ArtifactIntegrityError,
    ConflictError,
    NotFoundError,
    UsageError,
)
from pitstop.registry import Alias
from pitstop.workspace import Workspace


@pytest.fixture
def registered(workspace: Workspace, tmp_path: Path) -> Workspace:
    csv = write_regression_csv(tmp_path / "train.csv")
    workspace.add_dataset("train", csv, time_column="time")
    workspace.create_model(
        "eta", task="regression", target="y", features="all", time_column="time", id_columns=["user_id"]
    )
    artifact = fit_regression_artifact(csv, tmp_path / "m.joblib")
    workspace.register(
        "eta", artifact, train_data="train", params={"alpha": 0.1}, feature_pipeline_version="fp-1"
    )
    return workspace


def test_register_records_full_lineage(registered: Workspace) -> None:
    version = registered.version("eta", 1)
    lineage = version.lineage.to_json()
    snapshot = registered.dataset("train:1")
    assert lineage["datasets"] == [
        {"role": "train", "name": "train", "version": 1, "sha256": snapshot.sha256, "rows": 200}
    ]
    assert lineage["training_window"]["start"].startswith("2026-01-01T00:00:00")
    assert lineage["training_window"]["rows"] == 200
    assert lineage["as_of"] is None
    assert lineage["params"] == {"alpha": 0.1}
    assert lineage["feature_pipeline_version"] == "fp-1"
    assert lineage["features"] == ["a", "b"]
    assert set(lineage["code"]) == {"commit", "dirty"}
    assert set(lineage["environment"]) == {"python", "pitstop"}
    assert lineage["packages"]["scikit-learn"] == metadata.version("scikit-learn")
    assert lineage["packages"]["numpy"] == metadata.version("numpy")
    assert version.created_by


def test_features_are_fixed_by_the_first_version(registered: Workspace) -> None:
    assert registered.model("eta").features == ["a", "b"]


def test_versions_number_up_and_load_verified(registered: Workspace, tmp_path: Path) -> None:
    artifact = fit_regression_artifact(tmp_path / "train.csv", tmp_path / "m2.joblib")
    assert registered.register("eta", artifact, train_data="train:1").version == 2
    model = registered.load("eta", 2)
    assert hasattr(model, "predict")


def test_tampered_artifact_is_refused_naming_both_hashes(registered: Workspace) -> None:
    version = registered.version("eta", 1)
    stored = Path(registered.artifacts.location(version.artifact_uri))
    stored.write_bytes(stored.read_bytes() + b"tamper")
    with pytest.raises(ArtifactIntegrityError) as raised:
        registered.load("eta", 1)
    message = str(raised.value)
    assert "eta version 1" in message and version.sha256 in message and "found sha256" in message


def test_missing_artifact_is_refused(registered: Workspace) -> None:
    Path(registered.artifacts.location(registered.version("eta", 1).artifact_uri)).unlink()
    with pytest.raises(ArtifactIntegrityError, match="missing"):
        registered.load("eta", "1")


def test_artifact_is_copied_so_the_original_may_change(registered: Workspace, tmp_path: Path) -> None:
    (tmp_path / "m.joblib").write_bytes(b"overwritten")
    assert hasattr(registered.load("eta", 1), "predict")


def test_a_moved_workspace_keeps_its_models_and_datasets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PITSTOP_DATABASE_URL", raising=False)  # the store inside the folder moves with it
    csv = write_regression_csv(tmp_path / "train.csv")
    with Workspace.init(tmp_path / "before") as ws:
        ws.add_dataset("train", csv, time_column="time")
        ws.create_model(
            "eta", task="regression", target="y", features="all", time_column="time", id_columns=["user_id"]
        )
        ws.register("eta", fit_regression_artifact(csv, tmp_path / "m.joblib"), train_data="train")
    (tmp_path / "before").rename(tmp_path / "after")
    with Workspace(tmp_path / "after") as moved:
        assert hasattr(moved.load("eta", 1), "predict")
        assert len(moved.dataset_frame("train")) == 200


def test_duplicate_model_is_refused(registered: Workspace) -> None:
    with pytest.raises(AlreadyExistsError, match="already exists"):
        registered.create_model("eta", task="regression", target="y", features="all")


def test_unknown_model_and_version(registered: Workspace) -> None:
    with pytest.raises(NotFoundError, match="unknown model 'nope'"):
        registered.version("nope", 1)
    with pytest.raises(NotFoundError, match="no version 9"):
        registered.version("eta", 9)
    with pytest.raises(NotFoundError, match="no challenger"):
        registered.version("eta", "challenger")


def test_feature_may_not_be_the_target(workspace: Workspace) -> None:
    with pytest.raises(UsageError, match="must not be a feature"):
        workspace.create_model("m", task="regression", target="y", features=["a", "y"])


def test_bad_task_and_name(workspace: Workspace) -> None:
    with pytest.raises(UsageError, match="regression, classification or multiclass"):
        workspace.create_model("m", task="ranking", target="y", features="all")
    with pytest.raises(UsageError, match="invalid model name"):
        workspace.create_model("Bad Name!", task="regression", target="y", features="all")


def test_artifact_without_predict_is_refused_and_nothing_stored(workspace: Workspace, tmp_path: Path) -> None:
    import joblib

    csv = write_regression_csv(tmp_path / "train.csv")
    workspace.add_dataset("train", csv)
    workspace.create_model("eta", task="regression", target="y", features="all")
    joblib.dump({"not": "a model"}, tmp_path / "bad.joblib")
    with pytest.raises(UsageError, match="no predict method"):
        workspace.register("eta", tmp_path / "bad.joblib", train_data="train")
    (tmp_path / "junk.joblib").write_bytes(b"not a pickle")
    with pytest.raises(UsageError, match="cannot load with joblib"):
        workspace.register("eta", tmp_path / "junk.joblib", train_data="train")
    assert workspace.versions("eta") == []


def test_classifier_needs_predict_proba(workspace: Workspace, tmp_path: Path) -> None:
    csv = write_classification_csv(tmp_path / "train.csv")
    workspace.add_dataset("train", csv)
    workspace.create_model("churn", task="classification", target="y", features=["a", "b"])
    regressor = fit_regression_artifact(csv, tmp_path / "r.joblib")
    with pytest.raises(UsageError, match="predict_proba"):
        workspace.register("churn", regressor, train_data="train")
    classifier = fit_classifier_artifact(csv, tmp_path / "c.joblib")
    assert workspace.register("churn", classifier, train_data="train").version == 1


def test_training_data_missing_the_target_is_refused(workspace: Workspace, tmp_path: Path) -> None:
    csv = write_regression_csv(tmp_path / "train.csv")
    workspace.add_dataset("train", csv)
    workspace.create_model("eta", task="regression", target="minutes", features="all")
    with pytest.raises(UsageError, match="missing column"):
        workspace.register("eta", fit_regression_artifact(csv, tmp_path / "m.joblib"), train_data="train")


def test_set_champion_refuses_to_replace_without_force(registered: Workspace, tmp_path: Path) -> None:
    registered.register(
        "eta", fit_regression_artifact(tmp_path / "train.csv", tmp_path / "m2.joblib"), train_data="train"
    )
    assert registered.set_champion("eta", 1, reason="bootstrap") == {"champion": 1}
    with pytest.raises(ConflictError, match="pass force=True"):
        registered.set_champion("eta", 2, reason="try")
    assert registered.set_champion("eta", 2, reason="incident 42", force=True, actor="alice") == {
        "champion": 2,
        "previous": 1,
    }
    moves = [e for e in registered.events("eta") if e.kind == "alias_moved"]
    assert [(e.rule, e.from_state, e.to_state) for e in moves] == [
        ("champion", None, "1"),
        ("champion", "1", "2"),
        ("previous", None, "1"),
    ]
    assert moves[-1].actor == "alice" and moves[-1].reason == "incident 42" and moves[-1].data["forced"]


def test_champion_alias_resolves_as_a_version(registered: Workspace) -> None:
    registered.set_champion("eta", 1, reason="bootstrap")
    assert registered.version("eta", "champion").version == 1
    assert registered.version("eta", "champion").aliases == ["champion"]


def test_reason_is_required(registered: Workspace) -> None:
    with pytest.raises(UsageError, match=r"^reason: say why"):
        registered.set_champion("eta", 1, reason=" ")


FLIP_CHAMPION = """
import sys
from pitstop import Workspace
ws = Workspace(sys.argv[1])
for i in range(int(sys.argv[2])):
    ws.set_champion("eta", 1 + i % 2, reason=f"flip {i}", force=True)
"""


def test_concurrent_alias_moves_leave_a_consistent_history(
    registered: Workspace, tmp_path: Path, database_url: str
) -> None:
    registered.register(
        "eta", fit_regression_artifact(tmp_path / "train.csv", tmp_path / "m2.joblib"), train_data="train"
    )
    registered.set_champion("eta", 1, reason="bootstrap")
    env = {**os.environ, "PITSTOP_DATABASE_URL": database_url}
    workers = [
        subprocess.Popen([sys.executable, "-c", FLIP_CHAMPION, str(registered.path), "15"], env=env)
        for _ in range(2)
    ]
    assert [worker.wait(timeout=120) for worker in workers] == [0, 0]
    champion_moves = [e for e in registered.events("eta") if e.kind == "alias_moved" and e.rule == "champion"]
    # The history is a chain: each move starts where the previous one ended, and ends at the live alias.
    for before, after in itertools.pairwise(champion_moves):
        assert after.from_state == before.to_state
    assert champion_moves[-1].to_state == str(registered.model("eta").aliases["champion"])
    previous_moves = [e for e in registered.events("eta") if e.kind == "alias_moved" and e.rule == "previous"]
    for before, after in itertools.pairwise(previous_moves):
        assert after.from_state == before.to_state


def test_aliases_move_together(registered: Workspace, tmp_path: Path) -> None:
    registered.register(
        "eta", fit_regression_artifact(tmp_path / "train.csv", tmp_path / "m2.joblib"), train_data="train"
    )
    registered.set_champion("eta", 1, reason="bootstrap")
    with pytest.raises(NotFoundError):
        registered.move_aliases("eta", {Alias.CHALLENGER: 2, Alias.PREVIOUS: 7}, reason="bad")
    assert "challenger" not in registered.model("eta").aliases


def test_register_records_the_as_of_cutoff_and_trains_window_before_it(
    workspace: Workspace, tmp_path: Path
) -> None:
    csv = write_regression_csv(tmp_path / "train.csv")  # hourly rows from 2026-01-01T00:00Z
    workspace.add_dataset("train", csv, time_column="time")
    workspace.create_model(
        "eta", task="regression", target="y", features="all", time_column="time", id_columns=["user_id"]
    )
    artifact = fit_regression_artifact(csv, tmp_path / "m.joblib")
    version = workspace.register(
        "eta", artifact, train_data="train", as_of=pd.Timestamp("2026-01-02", tz="UTC")
    )
    assert version.lineage.to_json()["as_of"] == "2026-01-02T00:00:00+00:00"
    assert version.lineage.to_json()["training_window"]["rows"] == 24
    assert version.lineage.to_json()["training_window"]["end"].startswith("2026-01-01T23:00:00")


def test_an_fsspec_artifact_store_holds_models_and_datasets(workspace_dir: Path, tmp_path: Path) -> None:
    store = tmp_path / "arts"
    with (workspace_dir / "pitstop.yaml").open("a") as config:
        config.write(f"\nartifact_store: file://{store}\n")
    csv = write_regression_csv(tmp_path / "train.csv")
    with Workspace(workspace_dir) as ws:
        snapshot, _ = ws.add_dataset("train", csv, time_column="time")
        ws.create_model(
            "eta", task="regression", target="y", features="all", time_column="time", id_columns=["user_id"]
        )
        version = ws.register("eta", fit_regression_artifact(csv, tmp_path / "m.joblib"), train_data="train")
        assert snapshot.uri.startswith("datasets/") and version.artifact_uri.startswith("models/")
        assert ws.artifacts.location(version.artifact_uri).startswith(f"file://{store}/models/")
        stored = sorted(p.relative_to(store).parts[0] for p in store.rglob("*") if p.is_file())
        assert stored == ["datasets", "models"]
        assert hasattr(ws.load("eta", 1), "predict")
        assert len(ws.dataset_frame("train")) == 200


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture
def repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository with one commit, made the current folder."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "features.py").write_text("VERSION = 1\n")
    _git(repo, "add", "features.py")
    _git(repo, "commit", "-q", "-m", "first")
    monkeypatch.chdir(repo)
    return repo


def test_code_commit_is_the_head_of_the_repository_registered_from(
    registered: Workspace, repository: Path, tmp_path: Path
) -> None:
    artifact = fit_regression_artifact(tmp_path / "train.csv", tmp_path / "m2.joblib")
    (repository / "notes.txt").write_text("untracked files do not count")
    code = registered.register("eta", artifact, train_data="train").lineage.to_json()["code"]
    assert code == {"commit": _git(repository, "rev-parse", "HEAD"), "dirty": False}
    (repository / "features.py").write_text("VERSION = 2\n")
    assert registered.register("eta", artifact, train_data="train").lineage.to_json()["code"]["dirty"] is True


def test_code_commit_is_unknown_outside_a_repository(
    registered: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "plain"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # git must not find a repository above
    artifact = fit_regression_artifact(tmp_path / "train.csv", tmp_path / "m2.joblib")
    code = registered.register("eta", artifact, train_data="train").lineage.to_json()["code"]
    assert code == {"commit": "unknown", "dirty": False}
