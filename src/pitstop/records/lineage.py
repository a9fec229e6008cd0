"""The lineage record: where a model version came from, as typed fields.

`lineage` builds one; the registry stores it as JSON (`to_json`) and reads it back (`from_json`), which
accepts every shape earlier versions stored: a key added later is absent there and takes its default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pitstop.data_refs import DataReference
from pitstop.records.mlflow_origin import MlflowOrigin

# The keys this record knows; a stored lineage's other keys (earlier versions let a caller add its own,
# `extra_lineage`) are kept unchanged in `Lineage.extra`.
KNOWN_KEYS = frozenset(
    {
        "datasets",
        "data_reference",
        "training_window",
        "as_of",
        "params",
        "features",
        "feature_types",
        "feature_pipeline_version",
        "code",
        "environment",
        "trainer",
        "input_signature",
        "packages",
        "door_check",
        "mlflow",
    }
)


@dataclass(frozen=True)
class DatasetUse:
    """A dataset snapshot the version used, in a `role` (`train`)."""

    role: str
    name: str
    version: int
    sha256: str
    rows: int

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def to_json(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "name": self.name,
            "version": self.version,
            "sha256": self.sha256,
            "rows": self.rows,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DatasetUse:
        return cls(data["role"], data["name"], data["version"], data["sha256"], data["rows"])


@dataclass(frozen=True)
class TrainingWindow:
    """The training rows' time range (ISO 8601 as recorded) and count; all None for data by reference."""

    start: str | None = None
    end: str | None = None
    rows: int | None = None
    time_column: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "rows": self.rows, "time_column": self.time_column}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainingWindow:
        return cls(data.get("start"), data.get("end"), data.get("rows"), data.get("time_column"))


@dataclass(frozen=True)
class CodeCommit:
    """The git commit the version was made from; `given` when the caller named it (`--code-commit`),
    then `folder` is this folder's own checkout when it differs."""

    commit: str = "unknown"
    dirty: bool = False
    given: bool = False
    folder: CodeCommit | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"commit": self.commit, "dirty": self.dirty}
        if self.given:
            out["given"] = True
        if self.folder is not None:
            out["folder"] = self.folder.to_json()
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CodeCommit:
        folder = data.get("folder")
        return cls(
            str(data.get("commit", "unknown")),
            bool(data.get("dirty", False)),
            bool(data.get("given", False)),
            None if folder is None else cls.from_json(folder),
        )


@dataclass(frozen=True)
class Environment:
    """The Python and pitstop versions that registered the version. Versions registered before the door
    check recorded `packages` here instead: the registering process's key packages."""

    python: str | None = None
    pitstop: str | None = None
    packages: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"python": self.python}
        if self.pitstop is not None:
            out["pitstop"] = self.pitstop
        if self.packages is not None:
            out["packages"] = self.packages
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Environment:
        return cls(data.get("python"), data.get("pitstop"), data.get("packages"))


@dataclass(frozen=True)
class DoorCheckRecord:
    """How the version was tried at the door: on `rows` rows, or `skipped` with the reason given."""

    rows: int | None = None
    skipped: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"skipped": self.skipped} if self.skipped is not None else {"rows": self.rows}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DoorCheckRecord:
        return cls(data.get("rows"), data.get("skipped"))


@dataclass(frozen=True)
class Lineage:
    """Everything needed to know, and later reproduce, where a version came from."""

    features: list[str] = field(default_factory=list)
    datasets: list[DatasetUse] = field(default_factory=list)  # empty for training data by reference
    data_reference: DataReference | None = None  # the training data, when named by reference
    training_window: TrainingWindow = field(default_factory=TrainingWindow)
    as_of: str | None = None  # the point-in-time cutoff, ISO 8601
    params: dict[str, Any] = field(default_factory=dict)  # the trainer's parameters, as the user gave them
    feature_types: dict[str, str] = field(default_factory=dict)  # pandas dtype per feature
    feature_pipeline_version: str | None = None
    code: CodeCommit = field(default_factory=CodeCommit)
    environment: Environment = field(default_factory=Environment)
    trainer: str | None = None  # `module:function`; None for a registered artifact
    # `model_input.InputSignature.to_dict()`; None for versions registered before signatures
    input_signature: dict[str, Any] | None = None
    packages: dict[str, str] | None = None  # what the model needs (the door check's finding)
    door_check: DoorCheckRecord | None = None
    mlflow: MlflowOrigin | None = None  # the MLflow model it was imported from
    extra: dict[str, Any] = field(default_factory=dict)  # keys a caller added in earlier versions

    @property
    def training_dataset(self) -> DatasetUse | None:
        """The snapshot the version was trained on; None for training data by reference."""
        return next((d for d in self.datasets if d.role == "train"), None)

    def recorded_packages(self) -> dict[str, str]:
        """Package → version: the door check's `packages`, else (older versions) the environment's."""
        packages = self.packages if self.packages is not None else self.environment.packages
        return {str(name): str(version) for name, version in (packages or {}).items()}

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"datasets": [d.to_json() for d in self.datasets]}
        if self.data_reference is not None:
            out["data_reference"] = self.data_reference.to_dict()
        out |= {
            "training_window": self.training_window.to_json(),
            "as_of": self.as_of,
            "params": self.params,
            "features": self.features,
            "feature_types": self.feature_types,
            "feature_pipeline_version": self.feature_pipeline_version,
            "code": self.code.to_json(),
            "environment": self.environment.to_json(),
            "trainer": self.trainer,
        }
        if self.input_signature is not None:
            out["input_signature"] = self.input_signature
        if self.packages is not None:
            out["packages"] = self.packages
        if self.door_check is not None:
            out["door_check"] = self.door_check.to_json()
        if self.mlflow is not None:
            out["mlflow"] = self.mlflow.to_json()
        return out | self.extra

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Lineage:
        """A stored lineage, of any shape pitstop has written."""
        reference, door = data.get("data_reference"), data.get("door_check")
        packages, mlflow = data.get("packages"), data.get("mlflow")
        return cls(
            features=list(data.get("features") or []),
            datasets=[DatasetUse.from_json(d) for d in data.get("datasets") or []],
            data_reference=None if reference is None else DataReference(**reference),
            training_window=TrainingWindow.from_json(data.get("training_window") or {}),
            as_of=data.get("as_of"),
            params=dict(data.get("params") or {}),
            feature_types=dict(data.get("feature_types") or {}),
            feature_pipeline_version=data.get("feature_pipeline_version"),
            code=CodeCommit.from_json(data.get("code") or {}),
            environment=Environment.from_json(data.get("environment") or {}),
            trainer=data.get("trainer"),
            input_signature=data.get("input_signature"),
            packages=None if packages is None else dict(packages),
            door_check=None if door is None else DoorCheckRecord.from_json(door),
            mlflow=None if mlflow is None else MlflowOrigin.from_json(mlflow),
            extra={k: v for k, v in data.items() if k not in KNOWN_KEYS},
        )
