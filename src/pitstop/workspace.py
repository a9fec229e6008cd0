"""The Python API: everything the CLI does, importable (`from pitstop import Workspace`)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from pitstop import loading, model_lifecycle, policies, registry, signing
from pitstop.clock import Clock
from pitstop.config import CONFIG_FILE, GatePolicy, Policy, render_default_config
from pitstop.context import Context, resolve_workspace_path
from pitstop.errors import (
    ArtifactIntegrityError,
    ConflictError,
    NotFoundError,
    UsageError,
    describe_os_error,
)
from pitstop.events import Event, list_events
from pitstop.lineage import current_actor
from pitstop.registry import Alias, ModelInfo, Task, VersionInfo

if TYPE_CHECKING:
    import pandas as pd

    from pitstop import datasets as ds
    from pitstop import feature_choice, training
    from pitstop.conversion import Conversion
    from pitstop.data_refs import DataReference
    from pitstop.losses import Loss
    from pitstop.notify.outbox import Delivery
    from pitstop.notify.sender import PassReport, Sent
    from pitstop.package_drift import PackageDrift
    from pitstop.records.gate_result import GateResult
    from pitstop.rollout.actions import RolloutStatus
    from pitstop.rollout.log_upkeep import Pruning
    from pitstop.rollout.manual_shadow import ShadowComparison
    from pitstop.rollout.records import StoredRollout
    from pitstop.rollout.routes import ManualMode
    from pitstop.routing.table import RoutingTable
    from pitstop.store.gateways import Heartbeat


class Workspace(Context):
    """A workspace folder with its store and artifacts, and every operation on them: the Python API.

    `Workspace(path)` opens an existing workspace (see `Context` for its arguments); `Workspace.init`
    creates one."""

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

    # -- models -----------------------------------------------------------------------------------

    def create_model(
        self,
        name: str,
        *,
        task: Task | str,
        target: str,
        time_column: str | None = None,
        features: feature_choice.Features | None = None,
        id_columns: list[str] | None = None,
        data: str | None = None,
        description: str | None = None,
        metadata: dict[str, str] | None = None,
        allow_pickle: bool = False,
        actor: str | None = None,
        loss: str | None = None,
    ) -> ModelInfo:
        """Record a new model's schema, with an optional description and free metadata (strings).
        `allow_pickle` lets its versions be pickles (joblib) when skops cannot store them, and lets
        pickled versions load (with a warning). `loss` is the per-request loss's spec
        (`losses.Loss.parse`; default absolute error, or log loss for a classifier).

        `features` is a list of columns, or `"all"`: every column of dataset `data` (`NAME[:VERSION]`)
        but the target, time and id columns, or without `data`, of the first version's training data.
        Without `features` it refuses (`FeaturesNotChosenError`), listing the candidates of `data`, else
        of the newest dataset holding the target: nothing is guessed."""
        from pitstop import feature_choice
        from pitstop.losses import Loss, check_function

        try:
            task = Task(task)
        except ValueError:
            raise UsageError(
                f"must be regression, classification or multiclass, got {task!r}", field="task"
            ) from None
        chosen_loss = Loss.parse(loss, task)
        check_function(chosen_loss)
        ids = list(id_columns or [])
        snapshot = self.dataset(data) if data is not None else None
        if features is None and snapshot is None:  # only to list the candidates in the refusal
            snapshot = feature_choice.holding(self.datasets(), target)
        reserved = feature_choice.Reserved(target, time_column, tuple(ids))
        chosen = feature_choice.resolve(name, features, snapshot, reserved)
        with self.writing() as conn:
            return registry.create_model(
                conn,
                name=name,
                task=task,
                target=target,
                time_column=time_column,
                features=chosen,
                id_columns=ids,
                now=self.clock.now(),
                actor=actor or current_actor(),
                allow_pickle=allow_pickle,
                description=description,
                metadata=metadata,
                loss=str(chosen_loss),
            )

    def set_loss(self, model: str, loss: str, *, actor: str | None = None) -> ModelInfo:
        """Change the loss of a model that has no version yet (`registry.set_loss`); recorded."""
        from pitstop.losses import Loss, check_function

        with self.writing() as conn:
            info = registry.get_model(conn, model, for_update=True)
            chosen = Loss.parse(loss, info.task)
            check_function(chosen)
            return registry.set_loss(
                conn, info, str(chosen), now=self.clock.now(), actor=actor or current_actor()
            )

    def loss(self, model: str | ModelInfo) -> Loss:
        """The per-request loss `model` is scored by."""
        from pitstop.losses import Loss

        info = self.model(model) if isinstance(model, str) else model
        return Loss.parse(info.loss, info.task)

    def allow_pickle(
        self, model: str, allow: bool = True, *, reason: str, actor: str | None = None
    ) -> ModelInfo:
        """Allow (or, `allow=False`, refuse) pickled versions of `model`; recorded as an event."""
        if not reason.strip():
            raise UsageError("say why pickles are allowed or refused", field="reason")
        with self.writing() as conn:
            info = registry.get_model(conn, model, for_update=True)
            return registry.set_allow_pickle(
                conn, info, allow, now=self.clock.now(), actor=actor or current_actor(), reason=reason
            )

    def update_model(
        self,
        model: str,
        *,
        description: str | None = None,
        metadata: dict[str, str | None] | None = None,
        actor: str | None = None,
    ) -> ModelInfo:
        """Change the description (`""` clears it) and metadata (a None value removes the key); an event
        records before and after."""
        with self.writing() as conn:
            return model_lifecycle.update(
                conn,
                model,
                description=description,
                metadata=metadata,
                now=self.clock.now(),
                actor=actor or current_actor(),
            )

    def archive_model(self, model: str, *, reason: str, actor: str | None = None) -> ModelInfo:
        """Retire a model with no active rollout: hidden from `models()`, no new versions, rollouts or
        routes; its versions, events and predictions are kept, and it is still served. An event."""
        from pitstop.rollout.records import active_rollout

        if not reason.strip():
            raise UsageError("say why the model is archived", field="reason")
        with self.writing() as conn:
            info = registry.get_model(conn, model, for_update=True)
            running = active_rollout(conn, info.id)
            if running is not None:
                raise ConflictError(
                    f"rollout {running.state.id} of {model!r} is active ({running.state.phase}, challenger "
                    f"v{running.state.challenger_version}): end it first with `pitstop rollout abort "
                    f"{model} --reason …` (or wait for it), then archive the model"
                )
            return model_lifecycle.archive(
                conn, model, reason=reason.strip(), now=self.clock.now(), actor=actor or current_actor()
            )

    def unarchive_model(self, model: str, *, reason: str, actor: str | None = None) -> ModelInfo:
        """Undo `archive_model`: the model takes versions, rollouts and routes again. An event."""
        if not reason.strip():
            raise UsageError("say why the model is brought back", field="reason")
        with self.writing() as conn:
            return model_lifecycle.unarchive(
                conn, model, reason=reason.strip(), now=self.clock.now(), actor=actor or current_actor()
            )

    def models(self, *, include_archived: bool = False) -> list[ModelInfo]:
        """Every model by name; archived ones only with `include_archived`."""
        with self.reading() as conn:
            return registry.list_models(conn, include_archived=include_archived)

    def model(self, name: str) -> ModelInfo:
        return loading.model_info(self, name)

    def versions(self, model: str) -> list[VersionInfo]:
        with self.reading() as conn:
            return registry.list_versions(conn, registry.get_model(conn, model))

    def version(self, model: str, ref: str | int) -> VersionInfo:
        return loading.version_info(self, model, ref)

    def register(
        self,
        model: str,
        artifact: str | Path,
        *,
        train_data: str | None = None,
        train_data_ref: DataReference | None = None,
        params: dict[str, Any] | None = None,
        feature_pipeline_version: str | None = None,
        as_of: pd.Timestamp | None = None,
        code_commit: str | None = None,
        allow_pickle: bool = False,
        skip_check: str | None = None,
        actor: str | None = None,
    ) -> VersionInfo:
        """Register an externally trained model file as the next version of `model`, with its lineage;
        see `pitstop.registration.register`."""
        from pitstop import registration

        return registration.register(
            self,
            model,
            artifact,
            train_data=train_data,
            train_data_ref=train_data_ref,
            params=params,
            feature_pipeline_version=feature_pipeline_version,
            as_of=as_of,
            code_commit=code_commit,
            allow_pickle=allow_pickle,
            skip_check=skip_check,
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
        allow_pickle: bool = False,
        skip_check: str | None = None,
        actor: str | None = None,
    ) -> VersionInfo:
        """Train on the rows of `data` strictly before `as_of` and register the result as the next
        version; see `pitstop.registration.train`."""
        from pitstop import registration

        return registration.train(
            self,
            model,
            trainer=trainer,
            data=data,
            as_of=as_of,
            params=params,
            feature_pipeline_version=feature_pipeline_version,
            allow_pickle=allow_pickle,
            skip_check=skip_check,
            actor=actor,
        )

    def register_mlflow(
        self,
        model: str,
        uri: str,
        *,
        tracking_uri: str | None = None,
        train_data: str | None = None,
        allow_pickle: bool = False,
        skip_check: str | None = None,
        actor: str | None = None,
        alias: str | None = None,
    ) -> VersionInfo:
        """Import an MLflow model (`models:/NAME@ALIAS`, `models:/NAME/VERSION`, `runs:/RUN/PATH`) as
        the next version of `model`, with MLflow's lineage; the server is `tracking_uri`, else
        `MLFLOW_TRACKING_URI`, else `mlflow.tracking_uri`. See `pitstop.registration.register_mlflow`."""
        from pitstop import mlflow_source, registration

        return registration.register_mlflow(
            self,
            model,
            uri,
            tracking_uri=mlflow_source.tracking_uri(tracking_uri, self.config.mlflow.tracking_uri),
            train_data=train_data,
            allow_pickle=allow_pickle,
            skip_check=skip_check,
            actor=actor,
            alias=alias,
        )

    def reproduce(self, model: str, version: str | int) -> training.Reproduction:
        """Retrain from the recorded snapshot, cutoff, parameters, trainer; compare training predictions."""
        from pitstop import registration

        return registration.reproduce(self, model, version)

    def gate(
        self,
        model: str,
        version: str | int,
        *,
        test_set: str,
        actor: str | None = None,
        accept_review: str | None = None,
        policy: GatePolicy | None = None,
    ) -> GateResult:
        """Stage 2: evaluate the version and the current champion on the same test set (stored, recorded).

        `accept_review`, a reason, passes a version held only for review (`leakage.review`); recorded.
        `policy` is the gate's thresholds (default: `pitstop.yaml`'s `gate` section)."""
        from pitstop.gate.run import run_gate

        return run_gate(
            self, model, version, test_set, actor=actor, accept_review=accept_review, policy=policy
        )

    def verified_artifact(self, model: str, ref: str | int) -> tuple[VersionInfo, bytes]:
        """The version and its file's bytes, after checking the sha256 and, when a verify key is
        configured, the signature over the sha256, format and type allow-list."""
        version = self.version(model, ref)
        return version, loading.verified_artifact(self, version)

    def load(self, model: str, ref: str | int, *, allow_pickle: bool | None = None) -> Any:
        """The version's model object, verified (`verified_artifact`). A skops file loads only with the
        types its version was registered with; a pickle only when the model allows pickles (or
        `allow_pickle`, as `convert` does for the version it replaces)."""
        return loading.load_version(
            self, self.model(model), self.version(model, ref), allow_pickle=allow_pickle
        )

    def package_drift(self, model: str, ref: str | int) -> list[PackageDrift]:
        """The packages in the version's lineage whose installed major.minor version differs here."""
        from pitstop import package_drift

        return package_drift.of_lineage(self.version(model, ref).lineage)

    def sign(self, model: str, ref: str | int, *, actor: str | None = None) -> VersionInfo:
        """Sign a version with the configured signing key, after checking its file's sha256."""
        signer = self.keys.signer
        if signer is None:
            raise UsageError(
                f"no signing key: set {signing.SIGNING_KEY}_FILE (or {signing.SIGNING_KEY}) to an Ed25519 "
                "private key or an HMAC secret"
            )
        version = self.version(model, ref)
        data = self.artifacts.read(version.artifact_uri)
        actual = None if data is None else hashlib.sha256(data).hexdigest()
        if actual != version.sha256:
            where = self.artifacts.location(version.artifact_uri)
            raise ArtifactIntegrityError(model, version.version, version.sha256, actual, where)
        with self.writing() as conn:
            info = registry.get_model(conn, model, for_update=True)
            return registry.sign_version(
                conn, info, version.version, signer, now=self.clock.now(), actor=actor or current_actor()
            )

    def convert(
        self, model: str, ref: str | int, *, data: str | None = None, actor: str | None = None
    ) -> Conversion:
        """Store a pickled version with skops instead, once its predictions are identical (see
        `conversion.convert`)."""
        from pitstop.conversion import convert

        return convert(self, model, ref, data=data, actor=actor)

    def set_champion(
        self, model: str, version: str | int, *, reason: str, force: bool = False, actor: str | None = None
    ) -> dict[str, int]:
        """Bootstrap the first champion (or override one with `force`); returns the aliases.

        Once the model has a routing table, a new champion also gets a new table serving only it, in
        the same transaction and with the same reason, so running gateways serve it within their poll
        interval. Refused while a rollout is active: the rollout owns the champion and the routing.
        """
        from pitstop.routing.store import follow_champion

        if not reason.strip():
            raise UsageError("say why the champion is set by hand", field="reason")
        now, actor = self.clock.now(), actor or current_actor()
        with self.writing() as conn:
            info = registry.get_model(conn, model, for_update=True)
            info.refuse_if_archived("new champion (it changes the routing)")
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
        policy: policies.PolicyChoice = None,
    ) -> StoredRollout:
        """Take a gated challenger into shadow; the controller carries it through A/B test and ramp.

        `policy` is what the rollout decides by, to its end: default `pitstop.yaml`'s; a `Policy`; a
        policy file (a `Path`, or a string naming an existing file), whose keys override
        `pitstop.yaml`'s one by one; or a named policy (`add_policy`), `NAME` or `NAME@REVISION`. The
        rollout records where it came from (`policy_source`)."""
        from pitstop.rollout import actions

        return actions.start_rollout(
            self, model, version, reason=reason, skip_gate=skip_gate, actor=actor, salt=salt, policy=policy
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

    def rollout_policy(self, model: str, rollout_id: int | None = None) -> StoredRollout:
        """The rollout (default: the active or latest one) whose `policy` and `policy_source` say what it
        decides by and where that came from."""
        from pitstop.rollout.records import latest_rollout

        if rollout_id is not None:
            return self.rollout(model, rollout_id)
        with self.reading() as conn:
            stored = latest_rollout(conn, registry.get_model(conn, model).id)
        if stored is None:
            raise NotFoundError(f"model {model!r} has no rollout yet; start one with `pitstop rollout start`")
        return stored

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

    def resume(self, model: str, *, reason: str, actor: str | None = None) -> StoredRollout:
        """Clear the active rollout's hold; its phase or step starts a fresh evidence window."""
        from pitstop.rollout import actions

        return actions.resume(self, model, reason=reason, actor=actor)

    def approve(self, model: str, *, reason: str, actor: str | None = None) -> StoredRollout:
        """Approve leaving the current ramp step (its gate asks for a person's approval)."""
        from pitstop.rollout import actions

        return actions.approve(self, model, reason=reason, actor=actor)

    # -- routing by hand --------------------------------------------------------------------------

    def route(
        self,
        model: str,
        *,
        mode: ManualMode,
        challenger: str | int | None = None,
        share: float | None = None,
        reason: str,
        actor: str | None = None,
    ) -> RoutingTable:
        """Set a model's routing by hand: shadow a challenger, split users, or turn both off (`"off"`).
        See `pitstop.rollout.routes.route`."""
        from pitstop.rollout import routes

        return routes.route(
            self, model, mode=mode, challenger=challenger, share=share, reason=reason, actor=actor
        )

    def routing(self, model: str) -> RoutingTable | None:
        """The model's current routing table (None before any)."""
        from pitstop.routing.store import routing_of

        return routing_of(self, model)

    def gateways(self) -> list[Heartbeat]:
        """Every gateway's last heartbeat (what it serves per model), most recently seen first; live
        ones are those seen within `serving.gateway_timeout` (`Heartbeat.is_live`)."""
        from pitstop.store.gateways import heartbeats

        with self.reading() as conn:
            return heartbeats(conn)

    def prune_log(self, *, dry_run: bool = False) -> Pruning:
        """Remove prediction-log records older than `store.retention` (whole days on PostgreSQL),
        never those an open rollout's windows read; on a dry run only say what would go."""
        from pitstop.rollout.log_upkeep import prune_log

        return prune_log(self, self.clock.now(), dry_run=dry_run)

    def compare(self, model: str, *, policy: policies.PolicyChoice = None) -> ShadowComparison:
        """The live comparison of a shadow set by hand with the champion, judged by the shadow rules of
        `policy` (as `start_rollout` takes it; default `pitstop.yaml`'s): the evidence, the test and
        what a rollout's shadow phase would decide."""
        from pitstop.rollout import manual_shadow

        return manual_shadow.compare(self, model, policies.choose(self, policy))

    # -- named policies ---------------------------------------------------------------------------

    def add_policy(
        self,
        name: str,
        source: str | Path | Policy,
        *,
        description: str | None = None,
        actor: str | None = None,
    ) -> tuple[policies.NamedPolicy, bool]:
        """Keep a rollout policy in the store as the next revision of `name` (recorded as an event):
        from a policy file (its keys over `pitstop.yaml`'s as it is now, validated as `pitstop.yaml`
        is), or a `Policy`. The same policy, text and description as the latest revision add nothing
        (created=False)."""
        policies.validate_name(name)  # before the file: a typo in the name is the cheaper thing to fix
        if isinstance(source, Policy):
            policy, text = source, policies.policy_yaml(source)
        else:
            read = policies.read_file(Path(source), self.config.policy)
            policy, text = read.policy, read.text
        with self.writing() as conn:
            return policies.add_policy(
                conn,
                name,
                policy=policy,
                text=text,
                description=description,
                now=self.clock.now(),
                actor=actor or current_actor(),
            )

    def list_policies(self) -> list[policies.NamedPolicy]:
        """The latest revision of every named policy, by name."""
        with self.reading() as conn:
            return policies.list_policies(conn)

    def get_policy(self, name: str, revision: int | None = None) -> policies.NamedPolicy:
        """Revision `revision` of a named policy (default: its latest)."""
        with self.reading() as conn:
            return policies.get_policy(conn, name, revision)

    # -- datasets ---------------------------------------------------------------------------------

    def add_dataset(
        self,
        name: str,
        path: str | Path,
        *,
        time_column: str | None = None,
        categorical: list[str] | None = None,
        actor: str | None = None,
    ) -> tuple[ds.DatasetSnapshot, bool]:
        """Snapshot a CSV/Parquet file; identical content returns the existing snapshot (created=False).

        `categorical` columns load as pandas `category` every time (a Parquet file's own categorical
        columns always do)."""
        from pitstop import datasets as ds

        registry.validate_name("dataset", name)
        if time_column is not None and time_column in (categorical or []):
            raise UsageError(
                f"{time_column!r} is the time column; it cannot be categorical", field="categorical"
            )
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
        frame = ds.as_categorical(ds.read_table(data, fmt, str(source)), categorical or [], str(source))
        info = ds.describe_frame(frame, time_column, str(source))
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
        from pitstop import datasets as ds

        with self.reading() as conn:
            return ds.list_snapshots(conn, name)

    def dataset(self, ref: str) -> ds.DatasetSnapshot:
        return loading.snapshot(self, ref)

    def dataset_frame(self, ref: str) -> pd.DataFrame:
        """The snapshot's rows (verified against its sha256), time column parsed to UTC."""
        return loading.dataset_frame(self, ref)

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

    # -- notifications ----------------------------------------------------------------------------

    def send_notifications(self) -> PassReport:
        """One delivery pass: new notified events become deliveries to the configured receivers, and
        every due delivery is tried once (`pitstop notify send`; `serve` and `controller` do this in
        the background)."""
        from pitstop.notify.sender import Sender

        return Sender(self).send_due()

    def notification_log(self, model: str | None = None, *, limit: int = 50) -> list[Delivery]:
        """The delivery log, newest first: each event and receiver, its attempts, last answer and status."""
        from pitstop.notify.outbox import delivery_log

        if limit < 1:
            raise UsageError(f"must be at least 1, got {limit}", field="limit")
        with self.reading() as conn:
            info = registry.get_model(conn, model) if model else None
            return delivery_log(conn, info.id if info else None, limit)

    def notify_test(self, receiver: str | None = None, *, actor: str | None = None) -> list[Sent]:
        """Send a test notification to every configured receiver (or the one named) now, once each,
        and return each answer; nothing is stored."""
        from pitstop.notify.sender import Sender

        return Sender(self).test(receiver, actor or current_actor())


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
