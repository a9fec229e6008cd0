"""The Python API: everything the CLI does, importable (`from pitstop import Workspace`)."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

import joblib
import pandas as pd
from sqlalchemy import Connection, Engine

from pitstop import datasets as ds
from pitstop import registry, training
from pitstop.artifacts import ArtifactStore
from pitstop.clock import Clock, SystemClock
from pitstop.config import CONFIG_FILE, STATE_DIR, Config, load_config, render_default_config
from pitstop.config import database_url as resolve_database_url
from pitstop.errors import (
    ArtifactIntegrityError,
    ConflictError,
    NotFoundError,
    StoreUnavailableError,
    UsageError,
    describe,
    describe_os_error,
)
from pitstop.events import Event, list_events
from pitstop.gating import GateReport, run_gate
from pitstop.lineage import build_lineage, current_actor
from pitstop.registry import Alias, ModelInfo, Task, VersionInfo
from pitstop.scoring import check_estimator, checked_predictions
from pitstop.store.engine import (
    describe_store_error,
    make_engine,
    read_transaction,
    safe_url,
    sqlite_file,
    store_hint,
    write_transaction,
)
from pitstop.store.migrate import current_revision, head_revision, upgrade

if TYPE_CHECKING:
    from pitstop.rollout.actions import RolloutStatus
    from pitstop.rollout.records import StoredRollout


# Set while a gateway process builds its app (`serving.server.app_from_env`), so the workspace that
# uvicorn's factory opens is a service's without every factory having to say so.
_SERVICE: ContextVar[bool] = ContextVar("pitstop_service_workspace", default=False)


@contextmanager
def service_workspaces() -> Iterator[None]:
    """Workspaces opened inside default to `service=True` (see `Workspace`)."""
    token = _SERVICE.set(True)
    try:
        yield
    finally:
        _SERVICE.reset(token)


def resolve_workspace_path(path: str | Path | None) -> Path:
    """The workspace folder: the argument, else `PITSTOP_WORKSPACE`, else the current folder."""
    chosen = path if path is not None else os.environ.get("PITSTOP_WORKSPACE") or "."
    return Path(chosen).expanduser().resolve()


class Workspace:
    """A folder holding `pitstop.yaml`, and the store and artifacts it points to."""

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        clock: Clock | None = None,
        check_schema: bool = True,
        database_url: str | None = None,
        service: bool | None = None,
    ):
        """Open the workspace at `path` and its store, which must exist at pitstop's schema.

        `check_schema=False` opens it to create or upgrade the store (`init`, `db upgrade`).

        `service=True` opens it for a long-running service (a gateway, its controller): its statements
        are cancelled after `store.statement_timeout`, and a store that cannot be reached does not stop
        it opening: `store_problem` says why, and `check_store()` retries (a gateway then starts from
        its routing cache). Commands are not services: a report or a migration on a big store may
        legitimately take long. Default: inside `service_workspaces()`, else False."""
        self.path = resolve_workspace_path(path)
        config_file = self.path / CONFIG_FILE
        if not config_file.exists():
            raise NotFoundError(
                f"{self.path} is not a pitstop workspace (no {CONFIG_FILE}); run `pitstop init {path or '.'}`"
            )
        self.config: Config = load_config(config_file)
        self.clock: Clock = clock or SystemClock()
        self.database_url = database_url or resolve_database_url(self.config, self.path)
        self.service = _SERVICE.get() if service is None else service
        self.store_problem: str | None = None
        if check_schema:  # without the check the caller creates the store (`init`, `db upgrade`)
            self._check_store_exists()
        try:  # creates a SQLite store's folder
            self.engine: Engine = self._make_engine()
        except OSError as error:
            raise StoreUnavailableError(f"cannot create the store: {describe_os_error(error)}") from None
        self.artifacts = ArtifactStore(self.config.artifact_store or str(self.path / STATE_DIR / "artifacts"))
        if check_schema:
            try:
                self._check_schema()
            except _Unreachable as error:
                if not self.service:
                    self.engine.dispose()
                    raise StoreUnavailableError(str(error)) from None
                self.store_problem = str(error)
            except BaseException:
                self.engine.dispose()
                raise

    def _make_engine(self) -> Engine:
        settings = self.config.store
        statement = settings.statement_timeout.total_seconds() if self.service else 0.0
        return make_engine(
            self.database_url,
            connect_timeout=settings.connect_timeout.total_seconds(),
            statement_timeout=statement or None,  # 0: no limit
            busy_timeout=settings.busy_timeout.total_seconds(),
        )

    def check_store(self) -> None:
        """Raise StoreUnavailableError unless the store answers at pitstop's schema; clears
        `store_problem` when it does (a service opened while the store was down)."""
        try:
            self._check_schema()
        except _Unreachable as error:
            self.store_problem = str(error)
            raise StoreUnavailableError(str(error)) from None
        self.store_problem = None

    @classmethod
    def init(
        cls, path: str | Path | None = None, *, clock: Clock | None = None, database_url: str | None = None
    ) -> Workspace:
        """Create `pitstop.yaml` (unless present) and bring the store to the newest schema.

        `database_url` overrides the environment and the file (a throwaway replay store, for example)."""
        folder = resolve_workspace_path(path)
        config_file = folder / CONFIG_FILE
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if not config_file.exists():
                config_file.write_text(render_default_config())
        except OSError as error:  # a file in the way, a read-only or missing parent
            raise UsageError(
                f"cannot make a workspace at {folder}: {describe_os_error(error, folder)}"
            ) from None
        workspace = cls(folder, clock=clock, check_schema=False, database_url=database_url)
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
                raise self._unreachable(error) from None
            raise

    def _check_store_exists(self) -> None:
        """A missing SQLite file is refused, not created: opening a store to use it leaves nothing behind."""
        store = sqlite_file(self.database_url)
        if store is not None and not store.exists():
            raise StoreUnavailableError(
                f"there is no store at {store}: create it with `pitstop init {self.path}` "
                f"or `pitstop db upgrade -w {self.path}`"
            )

    def _check_schema(self) -> None:
        try:
            revision = current_revision(self.engine)
        except Exception as error:
            raise _Unreachable(str(self._unreachable(error))) from None
        if revision != head_revision():
            state = "empty" if revision is None else f"at schema {revision}"
            raise StoreUnavailableError(
                f"the store at {safe_url(self.engine)} is {state}, pitstop needs {head_revision()}: "
                "run `pitstop db upgrade`"
            )

    def _unreachable(self, error: Exception) -> StoreUnavailableError:
        return StoreUnavailableError(
            f"cannot reach the store at {safe_url(self.engine)}: {describe_store_error(error)}; "
            f"{store_hint(self.engine)}"
        )

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
        actor: str | None = None,
    ) -> VersionInfo:
        """Register an externally trained joblib artifact as the next version of `model`, with its lineage."""
        artifact_path = Path(artifact)
        info = self.model(model)
        estimator = _load_artifact_file(artifact_path)
        snapshot = self.dataset(train_data)
        return self._register_estimator(
            info,
            estimator,
            artifact_path,
            snapshot=snapshot,
            frame=self.dataset_frame(snapshot.ref),
            params=params or {},
            feature_pipeline_version=feature_pipeline_version,
            as_of=as_of,
            trainer=None,
            actor=actor,
        )

    def train(
        self,
        model: str,
        *,
        trainer: str,
        data: str,
        as_of: pd.Timestamp | None = None,
        params: dict[str, Any] | None = None,
        feature_pipeline_version: str | None = None,
        actor: str | None = None,
    ) -> VersionInfo:
        """Train on the rows of `data` strictly before `as_of`; register the result as the next version."""
        info = self.model(model)
        snapshot = self.dataset(data)
        frame = self.dataset_frame(snapshot.ref)
        time_column = training.time_column_of(info, snapshot, frame.columns)
        features = training.features_for(info, snapshot, frame.columns)
        rows = training.rows_before(frame, time_column, as_of, _data_source(info, snapshot))
        X, y = training.training_frame(info, rows, features, snapshot.ref)
        estimator = training.fit(trainer, X, y, params or {}, info.task)
        with tempfile.TemporaryDirectory(prefix="pitstop-train-") as folder:
            artifact = Path(folder) / "model.joblib"
            training.save(estimator, artifact, trainer)
            return self._register_estimator(
                info,
                estimator,
                artifact,
                snapshot=snapshot,
                frame=frame,
                params=params or {},
                feature_pipeline_version=feature_pipeline_version,
                as_of=as_of,
                trainer=trainer,
                actor=actor,
            )

    def reproduce(self, model: str, version: str | int) -> training.Reproduction:
        """Retrain from the recorded snapshot, cutoff, parameters, trainer; compare training predictions."""
        info = self.model(model)
        recorded = self.version(model, version)
        lineage = recorded.lineage
        if not lineage.get("trainer"):
            raise UsageError(
                f"{model} version {recorded.version} was registered from an artifact, not trained by "
                "pitstop: there is no recorded trainer to rerun"
            )
        source = next(d for d in lineage["datasets"] if d["role"] == "train")
        snapshot = self.dataset(f"{source['name']}:{source['version']}")
        as_of = pd.Timestamp(lineage["as_of"]) if lineage.get("as_of") else None
        frame = self.dataset_frame(snapshot.ref)
        time_column = training.time_column_of(info, snapshot, frame.columns)
        rows = training.rows_before(frame, time_column, as_of, _data_source(info, snapshot))
        X, y = training.training_frame(info, rows, lineage["features"], snapshot.ref)
        role = f"the trainer {lineage['trainer']!r} recorded for {model} version {recorded.version}"
        retrained = training.fit(lineage["trainer"], X, y, lineage.get("params", {}), info.task, role)
        on = f"its training data {snapshot.ref}"
        who = f"{model} version {recorded.version}"
        original = checked_predictions(info.task, self.load(model, recorded.version), X, who, on)
        again = checked_predictions(info.task, retrained, X, f"{who} retrained", on)
        return training.Reproduction.compare(model, recorded.version, lineage["trainer"], original, again)

    def gate(self, model: str, version: str | int, *, test_set: str, actor: str | None = None) -> GateReport:
        """Stage 2: evaluate the version and the current champion on the same test set (stored, recorded)."""
        return run_gate(self, model, version, test_set, actor=actor)

    def _register_estimator(
        self,
        info: ModelInfo,
        estimator: Any,
        artifact: Path,
        *,
        snapshot: ds.DatasetSnapshot,
        frame: pd.DataFrame,
        params: dict[str, Any],
        feature_pipeline_version: str | None,
        as_of: pd.Timestamp | None,
        trainer: str | None,
        actor: str | None,
    ) -> VersionInfo:
        check_estimator(estimator, info.task, str(artifact))
        time_column = training.time_column_of(info, snapshot, frame.columns)
        features = training.features_for(info, snapshot, frame.columns)
        rows = training.rows_before(frame, time_column, as_of, _data_source(info, snapshot))
        training.training_frame(info, rows, features, snapshot.ref)  # every feature and the target exist
        lineage = build_lineage(
            info, snapshot, rows, time_column, features, params, feature_pipeline_version, as_of
        )
        lineage["trainer"] = trainer
        uri, sha256, size = self.artifacts.put(artifact, "models", ".joblib")
        with self.writing() as conn:
            current = registry.get_model(conn, info.name, for_update=True)
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
        try:
            with training.current_folder_importable():  # its classes may live in the trainer's module
                return joblib.load(io.BytesIO(data))
        except Exception as error:  # unpickling runs the artifact's imports: anything may fail
            raise UsageError(
                f"{model} version {version.version} cannot be loaded ({describe(error)})"
                f"{training.load_hint(error)}"
            ) from None

    def set_champion(
        self, model: str, version: str | int, *, reason: str, force: bool = False, actor: str | None = None
    ) -> dict[str, int]:
        """Bootstrap the first champion (or override one with `force`); returns the aliases.

        Once the model has a routing table, a new champion also gets a new table serving only it, in
        the same transaction and with the same reason, so running gateways serve it within their poll
        interval. Refused while a rollout is active: the rollout owns the champion and the routing.
        """
        from pitstop.serving.routing_store import follow_champion

        if not reason.strip():
            raise UsageError("--reason: say why the champion is set by hand")
        now, actor = self.clock.now(), actor or current_actor()
        with self.writing() as conn:
            info = registry.get_model(conn, model, for_update=True)
            number = registry.get_version(conn, info, version).version
            if number != info.aliases.get(Alias.CHAMPION.value):
                _refuse_during_rollout(conn, info)
            aliases = registry.set_champion(
                conn, info, number, force=force, now=now, actor=actor, reason=reason
            )
            follow_champion(conn, info, number, now=now, actor=actor, reason=reason)
            return aliases

    def move_aliases(
        self, model: str, moves: dict[Alias, int | None], *, reason: str, actor: str | None = None
    ) -> dict[str, int]:
        with self.writing() as conn:
            info = registry.get_model(conn, model, for_update=True)
            return registry.move_aliases(
                conn, info, moves, now=self.clock.now(), actor=actor or current_actor(), reason=reason
            )

    # -- rollouts (stages 3-5) ---------------------------------------------------------------------
    # The rollout code builds on the gateway's routing, which builds on Workspace: imported when used.

    def start_rollout(
        self,
        model: str,
        version: str | int,
        *,
        reason: str | None = None,
        skip_gate: bool = False,
        actor: str | None = None,
        salt: str | None = None,
    ) -> StoredRollout:
        """Take a gated challenger into shadow; the controller carries it through A/B test and ramp."""
        from pitstop.rollout import actions

        return actions.start_rollout(
            self, model, version, reason=reason, skip_gate=skip_gate, actor=actor, salt=salt
        )

    def rollout_status(self, model: str, rollout_id: int | None = None) -> RolloutStatus:
        """The active (or latest, or given) rollout, its live evidence and what the next check would do."""
        from pitstop.rollout import actions

        if rollout_id is not None:
            self.rollout(model, rollout_id)  # a missing one is named with the rollouts the model has
        return actions.status(self, model, rollout_id)

    def rollout(self, model: str, rollout_id: int) -> StoredRollout:
        """Rollout `rollout_id` of `model`; NotFoundError names the model and lists its rollouts."""
        from pitstop.rollout.records import rollout_of

        with self.reading() as conn:
            return rollout_of(conn, registry.get_model(conn, model).id, model, rollout_id)

    def rollouts(self, model: str) -> list[StoredRollout]:
        from pitstop.rollout import actions

        return actions.rollouts(self, model)

    def promote(
        self, model: str, *, reason: str, to_end: bool = False, actor: str | None = None
    ) -> StoredRollout:
        """Advance the active rollout one phase or step by hand (`to_end`: promote now)."""
        from pitstop.rollout import actions

        return actions.promote(self, model, reason=reason, to_end=to_end, actor=actor)

    def rollback(self, model: str, *, reason: str, actor: str | None = None) -> StoredRollout:
        """All traffic back to the champion; after a promotion, restore the previous champion."""
        from pitstop.rollout import actions

        return actions.rollback(self, model, reason=reason, actor=actor)

    def abort(self, model: str, *, reason: str, actor: str | None = None) -> StoredRollout:
        """End the active rollout, keeping the champion."""
        from pitstop.rollout import actions

        return actions.abort(self, model, reason=reason, actor=actor)

    # -- datasets ---------------------------------------------------------------------------------

    def add_dataset(
        self, name: str, path: str | Path, *, time_column: str | None = None, actor: str | None = None
    ) -> tuple[ds.DatasetSnapshot, bool]:
        """Snapshot a CSV/Parquet file; identical content returns the existing snapshot (created=False)."""
        registry.validate_name("dataset", name)
        source = Path(path)
        if source.is_dir():
            raise UsageError(f"{source} is a folder; give the CSV or Parquet file to register")
        if not source.is_file():
            raise UsageError(f"{source}: no such file")
        fmt = ds.file_format(source)
        try:
            data = source.read_bytes()
        except OSError as error:
            raise UsageError(f"{source}: cannot read: {describe_os_error(error, source)}") from None
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

    def events(
        self, model: str | None = None, *, rollout_id: int | None = None, limit: int | None = None
    ) -> list[Event]:
        """Events, oldest first: of `model` (default all); of its rollout `rollout_id`, which must exist."""
        from pitstop.rollout.records import rollout_of

        with self.reading() as conn:
            info = registry.get_model(conn, model) if model else None
            if info is not None and rollout_id is not None:
                rollout_of(conn, info.id, info.name, rollout_id)  # missing: named with the model's rollouts
            return list_events(conn, info.id if info else None, rollout_id=rollout_id, limit=limit)


class _Unreachable(Exception):
    """The store did not answer (as opposed to answering at the wrong schema)."""


def _refuse_during_rollout(conn: Connection, info: ModelInfo) -> None:
    """A champion set by hand mid-rollout would be overwritten by the rollout's own end."""
    from pitstop.rollout.apply import describe
    from pitstop.rollout.records import active_rollout
    from pitstop.rollout.state import challenger_share

    running = active_rollout(conn, info.id)
    if running is None:
        return
    s = running.state
    raise ConflictError(
        f"rollout {s.id} of {info.name!r} is active ({describe(s, challenger_share(s, running.policy))}, "
        f"challenger v{s.challenger_version}) and owns the champion and the routing; end it first with "
        f"`pitstop rollout rollback {info.name} --reason …` (or `abort`), then set the champion"
    )


def _data_source(info: ModelInfo, snapshot: ds.DatasetSnapshot) -> str:
    return f"dataset {snapshot.ref} (for model {info.name!r})"


def _load_artifact_file(path: Path) -> Any:
    if not path.is_file():
        raise UsageError(f"{path}: no such artifact file")
    try:
        with training.current_folder_importable():
            return joblib.load(path)
    except Exception as error:  # any unpickling failure means the same thing to the user
        raise UsageError(
            f"{path}: cannot load with joblib ({describe(error)}){training.load_hint(error)}"
        ) from None
