"""Where a version imported from an MLflow Model Registry came from, as MLflow knows it: the registry
name, version and alias, the run (its parameters, metrics, dataset inputs and git commit), the flavor
and serialization format, and the sha256 of every file downloaded.

MLflow keeps no history of which version an alias named when; this record keeps it for the version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class MlflowDataset:
    """A dataset input of the MLflow run: MLflow's own `digest` (not a file hash) and its `source`."""

    name: str
    digest: str
    source_type: str
    source: str
    context: str | None = None  # `training`, `eval`, … (MLflow's `mlflow.data.context` tag)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "digest": self.digest,
            "source_type": self.source_type,
            "source": self.source,
            "context": self.context,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MlflowDataset:
        return cls(data["name"], data["digest"], data["source_type"], data["source"], data.get("context"))


@dataclass(frozen=True)
class MlflowOrigin:
    """The MLflow model a version was imported from (`uri` as given, resolved to `name`/`version`)."""

    tracking_uri: str
    uri: str
    flavor: str
    serialization_format: str | None
    files: dict[str, str]  # path inside the downloaded model -> sha256
    name: str | None = None  # the registered model; None for a `runs:/` URI
    version: str | None = None
    alias: str | None = None  # the alias the URI named (`models:/name@alias`)
    run_id: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    datasets: list[MlflowDataset] = field(default_factory=list)
    git_commit: str | None = None  # the run's `mlflow.source.git.commit` tag
    mlflow_version: str | None = None  # the MLflow that saved the model

    def to_json(self) -> dict[str, Any]:
        return {
            "tracking_uri": self.tracking_uri,
            "uri": self.uri,
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "run_id": self.run_id,
            "flavor": self.flavor,
            "serialization_format": self.serialization_format,
            "files": self.files,
            "params": self.params,
            "metrics": self.metrics,
            "datasets": [d.to_json() for d in self.datasets],
            "git_commit": self.git_commit,
            "mlflow_version": self.mlflow_version,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MlflowOrigin:
        return cls(
            tracking_uri=data["tracking_uri"],
            uri=data["uri"],
            flavor=data["flavor"],
            serialization_format=data.get("serialization_format"),
            files=dict(data.get("files") or {}),
            name=data.get("name"),
            version=data.get("version"),
            alias=data.get("alias"),
            run_id=data.get("run_id"),
            params=dict(data.get("params") or {}),
            metrics=dict(data.get("metrics") or {}),
            datasets=[MlflowDataset.from_json(d) for d in data.get("datasets") or []],
            git_commit=data.get("git_commit"),
            mlflow_version=data.get("mlflow_version"),
        )
