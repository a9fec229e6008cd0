"""The routing cache a gateway starts from while its store is down (issue 16, row 9)."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import fsspec
import pytest

from helpers import fit_regression_artifact, write_regression_csv
from pitstop import loading
from pitstop.artifacts import ArtifactStore
from pitstop.config import ServingSettings
from pitstop.errors import ArtifactIntegrityError
from pitstop.records.lineage import Lineage
from pitstop.registry import ModelInfo, Task, VersionInfo
from pitstop.routing.table import RoutingTable
from pitstop.serving import routing_cache
from pitstop.workspace import Workspace

WHEN = datetime(2026, 3, 1, 12, tzinfo=UTC)


def cached_model(uri: str, sha256: str = "0" * 64) -> routing_cache.CachedModel:
    info = ModelInfo(
        7, "eta", Task.REGRESSION, "y", "time", ["a", "b"], ["user_id"], WHEN, "me", {"champion": 1}
    )
    table = RoutingTable("eta", 4, 1, 2, 0.25, None, "salt", 3, 1, None, WHEN)
    lineage = Lineage.from_json({"features": ["a", "b"]})
    version = VersionInfo("eta", 1, uri, sha256, 10, lineage, None, WHEN, "me", ["champion"])
    return routing_cache.CachedModel(info, table, version)


def test_the_cache_reads_back_what_was_written(tmp_path: Path) -> None:
    cache = routing_cache.RoutingCache(WHEN, (cached_model(str(tmp_path / "v1.joblib")),))
    routing_cache.write(tmp_path / "cache", cache)
    assert routing_cache.read(tmp_path / "cache") == cache
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [routing_cache.CACHE_FILE]  # no temp left


def test_a_missing_unreadable_or_foreign_cache_is_none(tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    assert routing_cache.read(folder) is None
    folder.mkdir()
    (folder / routing_cache.CACHE_FILE).write_text("{not json")
    assert routing_cache.read(folder) is None
    (folder / routing_cache.CACHE_FILE).write_text('{"format": 99, "written_at": "x", "models": []}')
    assert routing_cache.read(folder) is None


def test_the_folder_is_a_setting_relative_to_the_workspace(tmp_path: Path) -> None:
    assert routing_cache.cache_folder(tmp_path, ServingSettings()) == tmp_path / ".pitstop" / "serving-cache"
    settings = ServingSettings(cache_dir="var/cache")
    assert routing_cache.cache_folder(tmp_path, settings) == tmp_path / "var" / "cache"


def test_a_local_artifact_is_used_where_it_is(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "artifacts"))
    source = tmp_path / "model.joblib"
    source.write_bytes(b"model bytes")
    uri, sha256, _ = store.put(source, "models", ".joblib")
    version = cached_model(uri, sha256).champion
    assert routing_cache.keep_artifact(tmp_path / "cache", store, version) == version


def test_a_remote_artifact_is_copied_verified_and_stale_copies_are_removed(tmp_path: Path) -> None:
    store = ArtifactStore(f"memory://pitstop-{uuid.uuid4().hex}")
    source = tmp_path / "model.joblib"
    source.write_bytes(b"remote model bytes")
    uri, sha256, _ = store.put(source, "models", ".joblib")
    folder = tmp_path / "cache"
    kept = routing_cache.keep_artifact(folder, store, cached_model(uri, sha256).champion)
    copy = Path(kept.artifact_uri)
    assert copy.parent == folder / "artifacts"
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == sha256
    (folder / "artifacts" / "stale.joblib").write_bytes(b"old")
    routing_cache.write(
        folder, routing_cache.RoutingCache(WHEN, (replace(cached_model(uri), champion=kept),))
    )
    assert sorted(p.name for p in (folder / "artifacts").iterdir()) == [copy.name]


def test_a_remote_artifact_that_does_not_match_its_hash_is_not_kept(tmp_path: Path) -> None:
    store = ArtifactStore(f"memory://pitstop-{uuid.uuid4().hex}")
    source = tmp_path / "model.joblib"
    source.write_bytes(b"remote model bytes")
    uri, _, _ = store.put(source, "models", ".joblib")
    with pytest.raises(ArtifactIntegrityError):
        routing_cache.keep_artifact(tmp_path / "cache", store, cached_model(uri, "f" * 64).champion)
    assert not (tmp_path / "cache" / "artifacts").exists() or not any(
        (tmp_path / "cache" / "artifacts").iterdir()
    )


def test_a_remote_artifact_loads_from_its_copy_once_the_remote_store_is_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = f"memory://pitstop-{uuid.uuid4().hex}"
    monkeypatch.setenv("PITSTOP_DATABASE_URL", f"sqlite:///{tmp_path / 'store' / 'pitstop.db'}")
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "pitstop.yaml").write_text(f"artifact_store: {remote}\n")
    with Workspace.init(tmp_path / "ws") as ws:
        csv = write_regression_csv(tmp_path / "train.csv")
        ws.add_dataset("train", csv, time_column="time")
        ws.create_model(
            "eta", task="regression", target="y", features="all", time_column="time", id_columns=["user_id"]
        )
        version = ws.register("eta", fit_regression_artifact(csv, tmp_path / "v1.joblib"), train_data="train")
        info = ws.model("eta")
        folder = tmp_path / "cache"
        kept = routing_cache.keep_artifact(folder, ws.artifacts, version)
        table = RoutingTable.initial("eta", 1, WHEN)
        cache = routing_cache.RoutingCache(WHEN, (routing_cache.CachedModel(info, table, kept),))
        fsspec.filesystem("memory").rm(remote.removeprefix("memory://"), recursive=True)
        (cached,) = cache.models
        model = loading.load_version(ws, cached.info, cached.champion)
        assert hasattr(model, "predict")
        Path(kept.artifact_uri).write_bytes(b"tampered")
        with pytest.raises(ArtifactIntegrityError):
            loading.load_version(ws, cached.info, cached.champion)
