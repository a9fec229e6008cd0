"""Stage 1: a new version from a model file (`register`) or a trainer (`train`), checked at the door,
stored with its lineage; and `reproduce`, which retrains a version from what its lineage recorded.

The model-file, training and door-check modules load inside the functions that use them: pandas,
scikit-learn and the door check's process pool cost a command that never registers anything.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pitstop import data_refs, loading, registry, user_code
from pitstop.errors import AlreadyImportedError, ConflictError, UsageError, describe, mention
from pitstop.lineage import build_lineage, current_actor, environment, given_commit, reference_lineage
from pitstop.records.lineage import CodeCommit, DoorCheckRecord, Lineage
from pitstop.records.mlflow_origin import MlflowOrigin
from pitstop.registry import ModelInfo, Task, VersionInfo

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy import Connection

    from pitstop import datasets as ds
    from pitstop import model_input, training
    from pitstop.context import Context
    from pitstop.data_refs import DataReference
    from pitstop.mlflow_source import FetchedModel


def register(
    ctx: Context,
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
            "give the training data once: a registered dataset (`train_data`) or a reference "
            "(`train_data_ref`, from `data_refs.by_uri` or `data_refs.from_dvc`)"
        )
    code = given_commit(code_commit) if code_commit is not None else None
    artifact_path = Path(artifact)
    info = loading.model_info(ctx, model)
    info.refuse_if_archived("new versions")
    estimator = _load_artifact_file(artifact_path)
    if train_data_ref is not None:
        return _register_referenced(
            ctx,
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
    snapshot = loading.snapshot(ctx, train_data)
    return _register_estimator(
        ctx,
        info,
        estimator,
        str(artifact_path),
        snapshot=snapshot,
        frame=loading.dataset_frame(ctx, snapshot.ref),
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
    ctx: Context,
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

    info = loading.model_info(ctx, model)
    info.refuse_if_archived("new versions")  # before training, not after
    snapshot = loading.snapshot(ctx, data)
    frame = loading.dataset_frame(ctx, snapshot.ref)
    time_column = training.time_column_of(info, snapshot, frame.columns)
    features = training.features_for(info, snapshot, frame.columns)
    rows = training.rows_before(frame, time_column, as_of, _data_source(info, snapshot))
    X, y = training.training_frame(info, rows, features, snapshot.ref)
    estimator = training.fit(trainer, X, y, params or {}, info.task)
    return _register_estimator(
        ctx,
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


def register_mlflow(
    ctx: Context,
    model: str,
    uri: str,
    *,
    tracking_uri: str,
    train_data: str | None = None,
    allow_pickle: bool = False,
    skip_check: str | None = None,
    actor: str | None = None,
    alias: str | None = None,
) -> VersionInfo:
    """Import the MLflow model `uri` names (`models:/NAME@ALIAS`, `models:/NAME/VERSION`,
    `runs:/RUN_ID/PATH`) from the server at `tracking_uri` as the next version of `model`, with
    MLflow's lineage (`MlflowOrigin`): the run's parameters become the version's, its git commit tag
    the version's commit. Stored with skops, as `register` stores a file.

    With `train_data` (a registered dataset) the version is trained-on-that-data as for `register`;
    without, its features are the model's (or, for a first version, the MLflow signature's columns)
    and the door check tries the MLflow input example, or is skipped saying there is none. `alias`
    records the alias that named `models:/NAME/VERSION` when the caller resolved it (`mlflow_sync`)."""
    from pitstop import mlflow_source

    info = loading.model_info(ctx, model)
    info.refuse_if_archived("new versions")
    with tempfile.TemporaryDirectory(prefix="pitstop-mlflow-") as folder:
        pickle_ok = info.allow_pickle or allow_pickle
        fetched = mlflow_source.fetch(uri, tracking_uri, Path(folder), allow_pickle=pickle_ok)
    if alias is not None:
        fetched = dataclasses.replace(fetched, origin=dataclasses.replace(fetched.origin, alias=alias))
    commit = fetched.origin.git_commit
    code = given_commit(commit) if commit and data_refs.COMMIT.match(commit) else None
    if train_data is None:
        return _register_fetched(ctx, info, fetched, code, skip_check, allow_pickle, actor)
    snapshot = loading.snapshot(ctx, train_data)
    return _register_estimator(
        ctx,
        info,
        fetched.estimator,
        uri,
        snapshot=snapshot,
        frame=loading.dataset_frame(ctx, snapshot.ref),
        params=dict(fetched.origin.params),
        feature_pipeline_version=None,
        as_of=None,
        trainer=None,
        allow_pickle=allow_pickle,
        skip_check=skip_check,
        actor=actor,
        code=code,
        mlflow=fetched.origin,
    )


def reproduce(ctx: Context, model: str, version: str | int) -> training.Reproduction:
    """Retrain from the recorded snapshot, cutoff, parameters, trainer; compare training predictions."""
    import pandas as pd

    from pitstop import model_input, training
    from pitstop.scoring import checked_predictions

    info = loading.model_info(ctx, model)
    recorded = loading.version_info(ctx, model, version)
    lineage = recorded.lineage
    trainer = lineage.trainer
    source = lineage.training_dataset
    if not trainer or source is None:
        raise UsageError(
            f"{model} version {recorded.version} was registered from an artifact, not trained by "
            "pitstop: there is no recorded trainer to rerun"
        )
    snapshot = loading.snapshot(ctx, source.ref)
    as_of = pd.Timestamp(lineage.as_of) if lineage.as_of else None
    frame = loading.dataset_frame(ctx, snapshot.ref)
    time_column = training.time_column_of(info, snapshot, frame.columns)
    rows = training.rows_before(frame, time_column, as_of, _data_source(info, snapshot))
    X, y = training.training_frame(info, rows, lineage.features, snapshot.ref)
    role = f"the trainer {trainer!r} recorded for {model} version {recorded.version}"
    retrained = training.fit(trainer, X, y, lineage.params, info.task, role)
    on = f"its training data {snapshot.ref}"
    who = f"{model} version {recorded.version}"
    loaded = loading.load_version(ctx, info, recorded)
    signature = model_input.from_lineage(lineage.features, lineage, loaded)
    original = checked_predictions(info.task, loaded, X, who, on, signature)
    again = checked_predictions(info.task, retrained, X, f"{who} retrained", on, signature)
    return training.Reproduction.compare(model, recorded.version, trainer, original, again)


def _register_estimator(
    ctx: Context,
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
    mlflow: MlflowOrigin | None = None,
) -> VersionInfo:
    """Store and record the version, once checked at the door (unless `skip_check` says why not); a
    pickle only if the model allows them or `allow_pickle` does (then, in the same transaction,
    the model allows pickles from now on: an event). `code` replaces the folder's commit
    (`--code-commit`); `mlflow` is the MLflow model it was imported from."""
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
    lineage = dataclasses.replace(lineage, trainer=trainer, code=code or lineage.code, mlflow=mlflow)
    signature = door_check.signature_for(estimator, X, features, info.task)
    return _store_version(
        ctx,
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
    ctx: Context,
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
            f"model {info.name!r} has no feature list yet (created with "
            f"{mention('features', 'all')}, which its first version's training data fixes, and a "
            "reference holds no columns pitstop can read): register its first version with "
            f"{mention('train_data', 'NAME')}, or create a model with a list of features"
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
    return _store_version(
        ctx,
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


def _register_fetched(
    ctx: Context,
    info: ModelInfo,
    fetched: FetchedModel,
    code: CodeCommit | None,
    skip_check: str | None,
    allow_pickle: bool,
    actor: str | None,
) -> VersionInfo:
    """Store and record an MLflow model imported without a registered dataset: the MLflow run names
    its data (`MlflowOrigin.datasets`); the door check tries the logged input example."""
    import pandas as pd

    from pitstop import door_check, model_input
    from pitstop.scoring import check_estimator

    uri = fetched.origin.uri
    check_estimator(fetched.estimator, info.task, uri)
    features = info.features or fetched.features
    if features is None:
        raise UsageError(
            f"{uri}: the MLflow model has no column signature and model {info.name!r} no feature list "
            "yet: log the model with a signature (or an input example), or create the model with a "
            "list of features",
            field="uri",
        )
    features = list(features)
    lineage = Lineage(
        features=features,
        params=dict(fetched.origin.params),
        code=code or CodeCommit(),
        environment=environment(),
        mlflow=fetched.origin,
    )
    example = fetched.example
    if example is not None and not example.empty and set(features) <= set(example.columns):
        rows = example[features]
        signature = door_check.signature_for(fetched.estimator, rows, features, info.task)
    else:
        rows = pd.DataFrame(columns=features)
        signature = model_input.from_lineage(features, lineage, fetched.estimator)
        skip_check = skip_check or "the MLflow model has no input example holding its features"
    return _store_version(
        ctx,
        info,
        fetched.estimator,
        uri,
        lineage,
        signature,
        rows,
        classes=info.classes or _fitted_classes(fetched.estimator, info.task),
        skip_check=skip_check,
        allow_pickle=allow_pickle,
        actor=actor,
    )


def _store_version(
    ctx: Context,
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
        uri, sha256, size = ctx.artifacts.put(saved.path, "models", saved.format.suffix)
    now, actor = ctx.clock.now(), actor or current_actor()
    with ctx.writing() as conn:
        current = registry.get_model(conn, info.name, for_update=True)
        _refuse_if_imported(conn, current, lineage)  # under the model's lock: two imports cannot both pass
        if current.features is None:
            current = registry.set_features(conn, current, features)
        if current.classes is None and classes is not None:
            current = registry.set_classes(conn, current, classes)
        if saved.format is ModelFormat.JOBLIB and not current.allow_pickle:
            if not allow_pickle:  # refused since it was read above
                raise ConflictError(f"model {info.name!r} stopped allowing pickles; register again")
            reason = "pickles allowed at registration: skops cannot store this version"
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
            signer=ctx.keys.signer,
        )


def _refuse_if_imported(conn: Connection, model: ModelInfo, lineage: Lineage) -> None:
    """AlreadyImportedError when `lineage` comes from an MLflow model version `model` already has."""
    origin = lineage.mlflow
    if origin is None or origin.name is None or origin.version is None:
        return
    known = registry.imported_from_mlflow(conn, model, origin.name, origin.version)
    if known is not None:
        raise AlreadyImportedError(
            f"MLflow {origin.name} version {origin.version} is already version {known.version} of "
            f"{model.name!r}",
            known.version,
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
