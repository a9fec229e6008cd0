"""A gateway's local copy of what it serves, so a replica restarted while the store is down still serves.

After every routing refresh that changes what it serves, a gateway writes `routing.json` into its
cache folder (`serving.cache_dir`, default `<workspace>/.pitstop/serving-cache`) atomically (a
temporary file renamed over the old one): per model its details, the routing table in force and its
champion version's details (artifact location, sha256, lineage). An artifact kept elsewhere (a
remote fsspec artifact store) is copied into the folder and checked against its sha256; a local
artifact store already keeps every file under its hash and is used as it is.

A gateway that cannot read the store at start serves each cached champion alone (see
`Gateway.start`). Loading goes through `loading.load_version` with the cached details, so the
artifact is checked against the cached sha256 exactly as it is against the store's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from pitstop.artifacts import ArtifactStore
from pitstop.config import STATE_DIR, ServingSettings
from pitstop.errors import ArtifactIntegrityError
from pitstop.records.gate_result import GateResult
from pitstop.records.lineage import Lineage
from pitstop.registry import ModelInfo, Task, VersionInfo
from pitstop.routing.table import RoutingTable

log = logging.getLogger(__name__)

CACHE_FILE = "routing.json"
DEFAULT_FOLDER = "serving-cache"  # inside the workspace's STATE_DIR
_FORMAT = 1  # bumped when the file's shape changes; another format is ignored, never misread


@dataclass(frozen=True)
class CachedModel:
    info: ModelInfo
    table: RoutingTable  # the table in force when the cache was written
    champion: VersionInfo  # its artifact_uri is a local file


@dataclass(frozen=True)
class RoutingCache:
    written_at: datetime
    models: tuple[CachedModel, ...]

    @property
    def names(self) -> list[str]:
        return sorted(m.info.name for m in self.models)


def cache_folder(workspace: Path, settings: ServingSettings) -> Path:
    """`serving.cache_dir` (relative to the workspace), else `<workspace>/.pitstop/serving-cache`."""
    if settings.cache_dir:
        return workspace / Path(settings.cache_dir).expanduser()
    return workspace / STATE_DIR / DEFAULT_FOLDER


def write(folder: Path, cache: RoutingCache) -> None:
    """Replace the cache in one rename, then remove artifact copies it no longer names."""
    folder.mkdir(parents=True, exist_ok=True)
    body = {
        "format": _FORMAT,
        "written_at": cache.written_at.isoformat(),
        "models": [_model_to_dict(m) for m in cache.models],
    }
    _write_atomically(folder / CACHE_FILE, json.dumps(body, indent=1).encode())
    kept = {Path(m.champion.artifact_uri).name for m in cache.models}
    copies = folder / "artifacts"
    if copies.is_dir():
        for stale in copies.iterdir():
            if stale.name not in kept:
                stale.unlink(missing_ok=True)


def read(folder: Path) -> RoutingCache | None:
    """The cache in `folder`; None when there is none or it cannot be used (logged)."""
    path = folder / CACHE_FILE
    try:
        body = json.loads(path.read_bytes())
        if body.get("format") != _FORMAT:
            raise ValueError(f"format {body.get('format')!r}, this pitstop reads {_FORMAT}")
        return RoutingCache(
            datetime.fromisoformat(body["written_at"]),
            tuple(_model_from_dict(m) for m in body["models"]),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as error:
        log.warning("routing cache %s cannot be used: %s: %s", path, type(error).__name__, error)
        return None


def keep_artifact(folder: Path, artifacts: ArtifactStore, version: VersionInfo) -> VersionInfo:
    """`version` with an artifact this machine can read without the network.

    A local artifact store's file is used where it is (content-addressed, never overwritten); one of
    a remote store is read, checked against the version's sha256 and copied into `folder/artifacts`.
    """
    store_fs, _ = fsspec.core.url_to_fs(artifacts.base_url)
    if isinstance(store_fs, LocalFileSystem):
        return version
    copy = folder / "artifacts" / f"{version.sha256}{Path(version.artifact_uri).suffix}"
    if not copy.exists():
        data = artifacts.read(version.artifact_uri)
        actual = hashlib.sha256(data).hexdigest() if data is not None else None
        if data is None or actual != version.sha256:
            raise ArtifactIntegrityError(
                version.model, version.version, version.sha256, actual, version.artifact_uri
            )
        copy.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(copy, data)
    return replace(version, artifact_uri=str(copy))


def _write_atomically(path: Path, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _model_to_dict(model: CachedModel) -> dict[str, Any]:
    table = model.table.to_dict()
    table.pop("mode")
    return {
        "info": {"id": model.info.id, **model.info.to_dict()},
        "table": table,
        "champion": model.champion.to_dict(),
    }


def _model_from_dict(data: dict[str, Any]) -> CachedModel:
    info = dict(data["info"])
    info["task"] = Task(info["task"])
    info["created_at"] = datetime.fromisoformat(info["created_at"])
    table = dict(data["table"])
    table["created_at"] = datetime.fromisoformat(table["created_at"])
    champion = dict(data["champion"])
    champion["created_at"] = datetime.fromisoformat(champion["created_at"])
    champion["lineage"] = Lineage.from_json(champion["lineage"])
    if champion["gate_result"] is not None:
        champion["gate_result"] = GateResult.from_json(champion["gate_result"])
    return CachedModel(ModelInfo(**info), RoutingTable(**table), VersionInfo(**champion))
