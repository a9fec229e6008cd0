"""The Python API: everything the CLI does, importable (`from pitstop import Workspace`)."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import joblib
import pandas as pd
from sqlalchemy import Connection, Engine

from pitstop import datasets as ds
from pitstop import registry
from pitstop.artifacts import ArtifactStore
from pitstop.clock import Clock, SystemClock
from pitstop.config import CONFIG_FILE, STATE_DIR, Config, database_url, load_config, render_default_config
from pitstop.errors import ArtifactIntegrityError, NotFoundError, StoreUnavailableError, UsageError
from pitstop.events import Event, list_events
from pitstop.lineage import code_commit, current_actor, environment
from pitstop.registry import Alias, ModelInfo, Task, VersionInfo
from pitstop.store.engine import make_engine, read_transaction, write_transaction
from pitstop.store.migrate import current_revision, head_revision, upgrade


def resolve_workspace_path(path: str | Path | None) -> Path:
    """The workspace folder: the argument, else `PITSTOP_WORKSPACE`, else the current folder."""
    chosen = path if path is not None else os.environ.get("PITSTOP_WORKSPACE") or "."
    return Path(chosen).expanduser().resolve()


class Workspace:
    """A folder holding `pitstop.yaml`, and the store and artifacts it points to."""

    def __init__(
        self, path: str | Path | None = None, *, clock: Clock | None = None, check_schema: bool = True
    ):
        self.path = resolve_workspace_path(path)
        config_file = self.path / CONFIG_FILE
        if not config_file.exists():
            raise NotFoundError(
                f"{self.path} is not a pitstop workspace (no {CONFIG_FILE}); run `pitstop init {path or '.'}`"
            )
        self.config: Config = load_config(config_file)
        self.clock: Clock = clock or SystemClock()
        self.database_url = database_url(self.config, self.path)
        self.engine: Engine = make_engine(self.database_url)
        self.artifacts = ArtifactStore(self.config.artifact_store or str(self.path / STATE_DIR / "artifacts"))
        if check_schema:
            self._check_schema()

    @classmethod
    def init(cls, path: str | Path | None = None, *, clock: Clock | None = None) -> Workspace:
        """Create `pitstop.yaml` (unless present) and bring the store to the newest schema."""
        folder = resolve_workspace_path(path)
        folder.mkdir(parents=True, exist_ok=True)
        config_file = folder / CONFIG_FILE
        if not config_file.exists():
            config_file.write_text(render_default_config())
        workspace = cls(folder, clock=clock, check_schema=False)
        workspace.upgrade()
        return workspace

    def upgrade(self) -> tuple[str | None, str]:
        """Apply pending migrations; returns the schema revision before and after."""
        try:
            return upgrade(self.engine)
        except StoreUnavailableError:
            raise
        except Exception as error:
            if "connect" in str(error).lower():
                raise StoreUnavailableError(
                    f"cannot reach the store at {self._safe_url()}: {error}"
                ) from None
            raise

    def _check_schema(self) -> None:
        try:
            revision = current_revision(self.engine)
        except Exception as error:
            raise StoreUnavailableError(f"cannot reach the store at {self._safe_url()}: {error}") from None
        if revision != head_revision():
            state = "empty" if revision is None else f"at schema {revision}"
            raise StoreUnavailableError(
                f"the store at {self._safe_url()} is {state}, pitstop needs {head_revision()}: "
                "run `pitstop db upgrade`"
            )

    def _safe_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """One write transaction: everything inside commits together or not at all."""
        with write_transaction(self.engine) as conn:
            yield conn

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        with read_transaction(self.engine) as conn:
            yield conn

    # -- models -----------------------------------------------------------------------------------

    def create_model(
        self,
        name: str,
        *,
        task: Task | str,
        target: str,
        time_column: str | None = None,
        features: list[str] | None = None,
        id_columns: list[str] | None = None,
        actor: str | None = None,
    ) -> ModelInfo:
        """Record a new model's schema."""
        try:
            task = Task(task)
        except ValueError:
            raise UsageError(f"--task: must be regression or classification, got {task!r}") from None
        with self.writing() as conn:
            return registry.create_model(
                conn,
                name=name,
                task=task,
                target=target,
                time_column=time_column,
                features=features,
                id_columns=list(id_columns or []),
                now=self.clock.now(),
                actor=actor or current_actor(),
            )

    def models(self) -> list[ModelInfo]:
        with self.reading() as conn:
            return registry.list_models(conn)

    def model(self, name: str) -> ModelInfo:
        with self.reading() as conn:
            return registry.get_model(conn, name)

    def versions(self, model: str) -> list[VersionInfo]:
        with self.reading() as conn:
            return registry.list_versions(conn, registry.get_model(conn, model))

    def version(self, model: str, ref: str | int) -> VersionInfo:
        with self.reading() as conn:
            return registry.get_version(conn, registry.get_model(conn, model), ref)

    def register(
        self,
        model: str,
        artifact: str | Path,
        *,
        train_data: str,
        params: dict[str, Any] | None = None,
        feature_pipeline_version: str | None = None,
        as_of: pd.Timestamp | None = None,
        extra_lineage: dict[str, Any] | None = None,
        actor: str | None = None,
    ) -> VersionInfo:
        """Register a trained joblib artifact as the next version of `model`, with its lineage."""
        artifact_path = Path(artifact)
        info = self.model(model)
        estimator = _load_artifact_file(artifact_path)
        check_estimator(estimator, info.task, str(artifact_path))
        snapshot = self.dataset(train_data)
        frame = self.dataset_frame(snapshot.ref)
        features = info.features or infer_features(info, list(frame.columns))
        check_columns(frame, info, features, snapshot.ref)
        training_rows = rows_before(frame, time_column_of(info, snapshot), as_of)
        lineage = build_lineage(
            info, snapshot, training_rows, features, params or {}, feature_pipeline_version, as_of, frame
        )
        lineage.update(extra_lineage or {})
        uri, sha256, size = self.artifacts.put(artifact_path, "models", ".joblib")
        with self.writing() as conn:
            current = registry.get_model(conn, model, for_update=True)
            if current.features is None:
                current = registry.set_features(conn, current, features)
            return registry.add_version(
                conn,
                current,
                artifact_uri=uri,
                sha256=sha256,
                size_bytes=size,
                lineage=lineage,
                now=self.clock.now(),
                actor=actor or current_actor(),
            )

    def load(self, model: str, ref: str | int) -> Any:
        """The version's model object, after re-checking its sha256."""
        version = self.version(model, ref)
        data = self.artifacts.read(version.artifact_uri)
        if data is None:
            raise ArtifactIntegrityError(model, version.version, version.sha256, None, version.artifact_uri)
        actual = hashlib.sha256(data).hexdigest()
        if actual != version.sha256:
            raise ArtifactIntegrityError(model, version.version, version.sha256, actual, version.artifact_uri)
        return joblib.load(io.BytesIO(data))

    def set_champion(
        self, model: str, version: str | int, *, reason: str, force: bool = False, actor: str | None = None
    ) -> dict[str, int]:
        """Bootstrap the first champion (or override one with `force`)."""
        if not reason.strip():
            raise UsageError("--reason: say why the champion is set by hand")
        with self.writing() as conn:
            info = registry.get_model(conn, model, for_update=True)
            number = registry.get_version(conn, info, version).version
            return registry.set_champion(
                conn,
                info,
                number,
                force=force,
                now=self.clock.now(),
                actor=actor or current_actor(),
                reason=reason,
            )

    def move_aliases(
        self, model: str, moves: dict[Alias, int | None], *, reason: str, actor: str | None = None
    ) -> dict[str, int]:
        with self.writing() as conn:
            info = registry.get_model(conn, model, for_update=True)
            return registry.move_aliases(
                conn, info, moves, now=self.clock.now(), actor=actor or current_actor(), reason=reason
            )

    # -- datasets ---------------------------------------------------------------------------------

    def add_dataset(
        self, name: str, path: str | Path, *, time_column: str | None = None, actor: str | None = None
    ) -> tuple[ds.DatasetSnapshot, bool]:
        """Snapshot a CSV/Parquet file; identical content returns the existing snapshot (created=False)."""
        registry.validate_name("dataset", name)
        source = Path(path)
        if not source.is_file():
            raise UsageError(f"{source}: no such file")
        fmt = ds.file_format(source)
        try:
            data = source.read_bytes()
        except OSError as error:
            raise UsageError(f"{source}: cannot read: {error.strerror}") from None
        info = ds.describe_frame(ds.read_table(data, fmt, str(source)), time_column, str(source))
        uri, sha256, _ = self.artifacts.put(source, "datasets", source.suffix.lower())
        with self.writing() as conn:
            return ds.insert_snapshot(
                conn,
                name=name,
                sha256=sha256,
                fmt=fmt,
                uri=uri,
                source_path=str(source.resolve()),
                info=info,
                time_column=time_column,
                now=self.clock.now(),
                actor=actor or current_actor(),
            )

    def datasets(self, name: str | None = None) -> list[ds.DatasetSnapshot]:
        with self.reading() as conn:
            return ds.list_snapshots(conn, name)

    def dataset(self, ref: str) -> ds.DatasetSnapshot:
        with self.reading() as conn:
            return ds.get_snapshot(conn, ref)

    def dataset_frame(self, ref: str) -> pd.DataFrame:
        """The snapshot's rows (verified against its sha256), time column parsed to UTC."""
        snapshot = self.dataset(ref)
        return ds.frame_from_bytes(snapshot, self.artifacts.read(snapshot.uri))

    # -- events -----------------------------------------------------------------------------------

    def events(self, model: str | None = None, *, limit: int | None = None) -> list[Event]:
        with self.reading() as conn:
            model_id = registry.get_model(conn, model).id if model else None
            return list_events(conn, model_id, limit=limit)


def _load_artifact_file(path: Path) -> Any:
    if not path.is_file():
        raise UsageError(f"{path}: no such artifact file")
    try:
        return joblib.load(path)
    except Exception as error:  # any unpickling failure means the same thing to the user
        raise UsageError(f"{path}: cannot load with joblib ({type(error).__name__}: {error})") from None


def check_estimator(estimator: Any, task: Task, source: str) -> None:
    """A model must predict; a classifier must also give probabilities."""
    if not callable(getattr(estimator, "predict", None)):
        raise UsageError(f"{source}: the object ({type(estimator).__name__}) has no predict method")
    if task is Task.CLASSIFICATION and not callable(getattr(estimator, "predict_proba", None)):
        raise UsageError(
            f"{source}: a classification model needs predict_proba ({type(estimator).__name__} has none)"
        )


def infer_features(model: ModelInfo, columns: list[str]) -> list[str]:
    """Every column that is not the target, the time column or an id column."""
    reserved = {model.target, model.time_column, *model.id_columns}
    return [str(c) for c in columns if c not in reserved]


def check_columns(frame: pd.DataFrame, model: ModelInfo, features: list[str], source: str) -> None:
    missing = [c for c in [*features, model.target] if c not in frame.columns]
    if missing:
        raise UsageError(
            f"{source}: missing column(s) {', '.join(missing)} needed by model {model.name!r} "
            f"(features and target {model.target!r})"
        )


def time_column_of(model: ModelInfo, snapshot: ds.DatasetSnapshot) -> str | None:
    return model.time_column or snapshot.time_column


def rows_before(frame: pd.DataFrame, time_column: str | None, as_of: pd.Timestamp | None) -> pd.DataFrame:
    """Rows strictly before the as-of cutoff (all rows without one)."""
    if as_of is None:
        return frame
    if time_column is None:
        raise UsageError(
            "--as-of needs a time column: give the model --time-column or the dataset --time-column"
        )
    times = ds.parse_times(frame[time_column], time_column, "training data")
    subset = frame[times < as_of]
    if subset.empty:
        raise UsageError(f"--as-of {as_of.isoformat()}: no training rows before the cutoff")
    return subset


def build_lineage(
    model: ModelInfo,
    snapshot: ds.DatasetSnapshot,
    rows: pd.DataFrame,
    features: list[str],
    params: dict[str, Any],
    feature_pipeline_version: str | None,
    as_of: pd.Timestamp | None,
    frame: pd.DataFrame,
) -> dict[str, Any]:
    """Everything needed to know, and later reproduce, where a version came from."""
    time_column = time_column_of(model, snapshot)
    window: dict[str, Any] = {"start": None, "end": None, "rows": len(rows), "time_column": time_column}
    if time_column is not None and time_column in rows.columns:
        times = ds.parse_times(rows[time_column], time_column, snapshot.ref)
        window["start"], window["end"] = times.min().isoformat(), times.max().isoformat()
    return {
        "datasets": [
            {
                "role": "train",
                "name": snapshot.name,
                "version": snapshot.version,
                "sha256": snapshot.sha256,
                "rows": snapshot.rows,
            }
        ],
        "training_window": window,
        "as_of": as_of.isoformat() if as_of is not None else None,
        "params": params,
        "features": features,
        "feature_types": {c: str(frame[c].dtype) for c in features},
        "feature_pipeline_version": feature_pipeline_version,
        "code": code_commit(),
        "environment": environment(),
        "trainer": None,
    }
