"""The Python API: everything the CLI does, importable (`from pitstop import Workspace`)."""

from __future__ import annotations

import dataclasses
import hashlib
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from pitstop import loading, model_lifecycle, registry, signing, user_code
from pitstop.clock import Clock
from pitstop.config import CONFIG_FILE, render_default_config
from pitstop.context import Context, resolve_workspace_path
from pitstop.errors import (
    ArtifactIntegrityError,
    ConflictError,
    UsageError,
    describe,
    describe_os_error,
)
from pitstop.events import Event, list_events
from pitstop.lineage import build_lineage, current_actor, given_commit, reference_lineage
from pitstop.records.lineage import CodeCommit, DoorCheckRecord, Lineage
from pitstop.registry import Alias, ModelInfo, Task, VersionInfo

if TYPE_CHECKING:
    import pandas as pd

    from pitstop import datasets as ds
    from pitstop import feature_choice, model_input, training
    from pitstop.conversion import Conversion
    from pitstop.data_refs import DataReference
    from pitstop.losses import Loss
    from pitstop.package_drift import PackageDrift
    from pitstop.records.gate_result import GateResult
    from pitstop.rollout.actions import RolloutStatus
    from pitstop.rollout.records import StoredRollout


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
        """Register an externally trained model file (skops, or joblib read here) as the next version of
        `model`, with its lineage. It is stored with skops; as a pickle only when skops cannot store it
        and the model allows pickles, or `allow_pickle` allows them for it from this version on.

        The training data is a registered dataset (`train_data`, NAME[:VERSION]) or a reference
        (`train_data_ref`, from `data_refs.by_uri` or `data_refs.from_dvc`), not both. `code_commit`
        records the commit the model was trained from (7-40 hex digits) instead of this folder's.

        Before anything is stored the file is loaded in a fresh process and predicts a sample of the
        training rows (`door_check`); a model that cannot is refused with `ArtifactRefusedError`.
        `skip_check`, a reason recorded in the lineage, skips that for a model that cannot run here."""
        if (train_data is None) == (train_data_ref is None):
            raise UsageError(
                "give the training data once: --train-data NAME (a registered dataset), or by reference "
                "--train-data-uri URI with --train-data-sha256 HEX, or --dvc-file FILE"
            )
        code = given_commit(code_commit) if code_commit is not None else None
        artifact_path = Path(artifact)
        info = self.model(model)
        info.refuse_if_archived("new versions")
        estimator = _load_artifact_file(artifact_path)
        if train_data_ref is not None:
            return self._register_referenced(
                info,
                estimator,
                str(artifact_path),
                train_data_ref,
                params=params or {},
                feature_pipeline_version=feature_pipeline_version,
                as_of=as_of,
                code=code,
                skip_check=skip_check,
                allow_pickle=allow_pickle,
                actor=actor,
            )
        assert train_data is not None
        snapshot = self.dataset(train_data)
        return self._register_estimator(
            info,
            estimator,
            str(artifact_path),
            snapshot=snapshot,
            frame=self.dataset_frame(snapshot.ref),
            params=params or {},
            feature_pipeline_version=feature_pipeline_version,
            as_of=as_of,
            trainer=None,
            allow_pickle=allow_pickle,
            skip_check=skip_check,
            actor=actor,
            code=code,
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
        """Train on the rows of `data` strictly before `as_of`; register the result as the next version
        (stored with skops; as a pickle only as `register` says; checked at the door as it says)."""
        from pitstop import training

        info = self.model(model)
        info.refuse_if_archived("new versions")  # before training, not after
        snapshot = self.dataset(data)
        frame = self.dataset_frame(snapshot.ref)
        time_column = training.time_column_of(info, snapshot, frame.columns)
        features = training.features_for(info, snapshot, frame.columns)
        rows = training.rows_before(frame, time_column, as_of, _data_source(info, snapshot))
        X, y = training.training_frame(info, rows, features, snapshot.ref)
        estimator = training.fit(trainer, X, y, params or {}, info.task)
        return self._register_estimator(
            info,
            estimator,
            f"trainer {trainer}",
            snapshot=snapshot,
            frame=frame,
            params=params or {},
            feature_pipeline_version=feature_pipeline_version,
            as_of=as_of,
            trainer=trainer,
            allow_pickle=allow_pickle,
            skip_check=skip_check,
            actor=actor,
        )

    def reproduce(self, model: str, version: str | int) -> training.Reproduction:
        """Retrain from the recorded snapshot, cutoff, parameters, trainer; compare training predictions."""
        import pandas as pd

        from pitstop import model_input, training
        from pitstop.scoring import checked_predictions

        info = self.model(model)
        recorded = self.version(model, version)
        lineage = recorded.lineage
        trainer = lineage.trainer
        source = lineage.training_dataset
        if not trainer or source is None:
            raise UsageError(
                f"{model} version {recorded.version} was registered from an artifact, not trained by "
                "pitstop: there is no recorded trainer to rerun"
            )
        snapshot = self.dataset(source.ref)
        as_of = pd.Timestamp(lineage.as_of) if lineage.as_of else None
        frame = self.dataset_frame(snapshot.ref)
        time_column = training.time_column_of(info, snapshot, frame.columns)
        rows = training.rows_before(frame, time_column, as_of, _data_source(info, snapshot))
        X, y = training.training_frame(info, rows, lineage.features, snapshot.ref)
        role = f"the trainer {trainer!r} recorded for {model} version {recorded.version}"
        retrained = training.fit(trainer, X, y, lineage.params, info.task, role)
        on = f"its training data {snapshot.ref}"
        who = f"{model} version {recorded.version}"
        loaded = self.load(model, recorded.version)
        signature = model_input.from_lineage(lineage.features, lineage, loaded)
        original = checked_predictions(info.task, loaded, X, who, on, signature)
        again = checked_predictions(info.task, retrained, X, f"{who} retrained", on, signature)
        return training.Reproduction.compare(model, recorded.version, trainer, original, again)

    def gate(
        self,
        model: str,
        version: str | int,
        *,
        test_set: str,
        actor: str | None = None,
        accept_review: str | None = None,
    ) -> GateResult:
        """Stage 2: evaluate the version and the current champion on the same test set (stored, recorded).

        `accept_review`, a reason, passes a version held only for review (`leakage.review`); recorded."""
        from pitstop.gate.run import run_gate

        return run_gate(self, model, version, test_set, actor=actor, accept_review=accept_review)

    def _register_estimator(
        self,
        info: ModelInfo,
        estimator: Any,
        source: str,
        *,
        snapshot: ds.DatasetSnapshot,
        frame: pd.DataFrame,
        params: dict[str, Any],
        feature_pipeline_version: str | None,
        as_of: pd.Timestamp | None,
        trainer: str | None,
        allow_pickle: bool,
        skip_check: str | None,
        actor: str | None,
        code: CodeCommit | None = None,
    ) -> VersionInfo:
        """Store and record the version, once checked at the door (unless `skip_check` says why not); a
        pickle only if the model allows them or `allow_pickle` does (then, in the same transaction,
        the model allows pickles from now on: an event). `code` replaces the folder's commit
        (`--code-commit`)."""
        # door_check uses serving's process context, and serving imports this module
        from pitstop import door_check, training
        from pitstop.scoring import check_classes, check_estimator, class_values

        check_estimator(estimator, info.task, source)
        time_column = training.time_column_of(info, snapshot, frame.columns)
        features = training.features_for(info, snapshot, frame.columns)
        rows = training.rows_before(frame, time_column, as_of, _data_source(info, snapshot))
        X, y = training.training_frame(info, rows, features, snapshot.ref)  # every feature, the target
        classes = info.classes
        if info.task is Task.MULTICLASS:
            classes = classes or class_values(y, snapshot.ref)
            check_classes(estimator, classes, source)
        lineage = build_lineage(
            info, snapshot, rows, time_column, features, params, feature_pipeline_version, as_of
        )
        lineage = dataclasses.replace(lineage, trainer=trainer, code=code or lineage.code)
        signature = door_check.signature_for(estimator, X, features, info.task)
        return self._store_version(
            info,
            estimator,
            source,
            lineage,
            signature,
            X,
            classes=classes,
            skip_check=skip_check,
            allow_pickle=allow_pickle,
            actor=actor,
        )

    def _register_referenced(
        self,
        info: ModelInfo,
        estimator: Any,
        source: str,
        reference: DataReference,
        *,
        params: dict[str, Any],
        feature_pipeline_version: str | None,
        as_of: pd.Timestamp | None,
        code: CodeCommit | None,
        skip_check: str | None,
        allow_pickle: bool,
        actor: str | None,
    ) -> VersionInfo:
        """Store and record a version whose training data is named by reference: the model's declared
        features are its features (no data here to take them from). The door check tries the rows of
        the referenced file when it is a local CSV or Parquet file, else it is skipped, saying why."""
        import pandas as pd

        from pitstop import data_refs, door_check, model_input
        from pitstop.scoring import check_estimator

        check_estimator(estimator, info.task, source)
        if info.features is None:
            raise UsageError(
                f"model {info.name!r} has no feature list yet (created with --features all, which its "
                "first version's training data fixes, and a reference holds no columns pitstop can "
                "read): register its first version with --train-data NAME, or create a model with a "
                "--features list"
            )
        lineage = reference_lineage(reference, info.features, params, feature_pipeline_version, as_of)
        lineage = dataclasses.replace(lineage, code=code or lineage.code)
        rows = data_refs.readable_rows(reference, info.features)
        if rows is None:
            signature = model_input.from_lineage(info.features, lineage, estimator)
            skip_check = skip_check or "the training data is a reference whose rows cannot be read here"
            rows = pd.DataFrame(columns=info.features)
        else:
            signature = door_check.signature_for(estimator, rows, info.features, info.task)
        return self._store_version(
            info,
            estimator,
            source,
            lineage,
            signature,
            rows,
            classes=info.classes or _fitted_classes(estimator, info.task),
            skip_check=skip_check,
            allow_pickle=allow_pickle,
            actor=actor,
        )

    def _store_version(
        self,
        info: ModelInfo,
        estimator: Any,
        source: str,
        lineage: Lineage,
        signature: model_input.InputSignature,
        rows: pd.DataFrame,
        *,
        classes: list[Any] | None,
        skip_check: str | None,
        allow_pickle: bool,
        actor: str | None,
    ) -> VersionInfo:
        """Check the model at the door (unless `skip_check` says why not), write its file and record the
        version (fixing the model's features, and a classifier's classes, at its first)."""
        # door_check uses serving's process context, and serving imports this module
        from pitstop import door_check, training
        from pitstop.model_files import ModelFormat

        if skip_check is not None and not skip_check.strip():
            raise UsageError("say why the model cannot be tried here; it is recorded", field="skip_check")
        features = list(lineage.features)
        lineage = dataclasses.replace(lineage, input_signature=signature.to_dict())
        with tempfile.TemporaryDirectory(prefix="pitstop-model-") as folder:
            pickle_ok = info.allow_pickle or allow_pickle
            saved = training.save(estimator, Path(folder), source, allow_pickle=pickle_ok)
            if skip_check is None:
                admitted = door_check.check(
                    saved,
                    estimator,
                    source=source,
                    model=info.name,
                    task=info.task,
                    signature=signature,
                    rows=rows,
                    allow_pickle=pickle_ok,
                )
                tried = DoorCheckRecord(rows=admitted.rows)
                lineage = dataclasses.replace(lineage, packages=admitted.packages, door_check=tried)
            else:  # not loaded anywhere: the packages of the classes the object is made of
                packages = door_check.packages_of(door_check.modules_of(estimator))
                skipped = DoorCheckRecord(skipped=skip_check.strip())
                lineage = dataclasses.replace(lineage, packages=packages, door_check=skipped)
            uri, sha256, size = self.artifacts.put(saved.path, "models", saved.format.suffix)
        now, actor = self.clock.now(), actor or current_actor()
        with self.writing() as conn:
            current = registry.get_model(conn, info.name, for_update=True)
            if current.features is None:
                current = registry.set_features(conn, current, features)
            if current.classes is None and classes is not None:
                current = registry.set_classes(conn, current, classes)
            if saved.format is ModelFormat.JOBLIB and not current.allow_pickle:
                if not allow_pickle:  # refused since it was read above
                    raise ConflictError(f"model {info.name!r} stopped allowing pickles; register again")
                reason = "--allow-pickle at registration: skops cannot store this version"
                current = registry.set_allow_pickle(conn, current, True, now=now, actor=actor, reason=reason)
            return registry.add_version(
                conn,
                current,
                artifact_uri=uri,
                sha256=sha256,
                size_bytes=size,
                lineage=lineage,
                now=now,
                actor=actor,
                fmt=saved.format.value,
                trusted_types=saved.trusted_types,
                signer=self.keys.signer,
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

    def resume(self, model: str, *, reason: str, actor: str | None = None) -> StoredRollout:
        """Clear the active rollout's hold; its phase or step starts a fresh evidence window."""
        from pitstop.rollout import actions

        return actions.resume(self, model, reason=reason, actor=actor)

    def approve(self, model: str, *, reason: str, actor: str | None = None) -> StoredRollout:
        """Approve leaving the current ramp step (its gate asks for a person's approval)."""
        from pitstop.rollout import actions

        return actions.approve(self, model, reason=reason, actor=actor)

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


def _fitted_classes(estimator: Any, task: Task) -> list[Any] | None:
    """A multiclass model's classes as it was fitted (no training rows to read them from)."""
    fitted = getattr(estimator, "classes_", None)
    return None if task is not Task.MULTICLASS or fitted is None else list(fitted)


def _load_artifact_file(path: Path) -> Any:
    from pitstop import model_files

    if not path.is_file():
        raise UsageError(f"{path}: no such artifact file")
    try:
        with user_code.current_folder_importable():
            return model_files.read_file(path)[0]
    except Exception as error:  # any unpickling failure means the same thing to the user
        how = "skops" if model_files.is_skops_file(path) else "joblib"
        raise UsageError(
            f"{path}: cannot load with {how} ({describe(error)})", hint=user_code.load_hint(error)
        ) from None
