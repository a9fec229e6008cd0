"""Models, their immutable versions and the movable aliases `champion`, `challenger`, `previous`.

Functions here take an open connection, so the caller decides the transaction: a command is one
transaction, and an alias move is recorded as an event in the same transaction as the move itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.exc import IntegrityError

from pitstop import model_metadata, signing
from pitstop.errors import AlreadyExistsError, ConflictError, NotFoundError, UsageError, mention
from pitstop.events import EventKind, record_event
from pitstop.records.gate_result import GateResult
from pitstop.records.lineage import Lineage
from pitstop.rules import Rule
from pitstop.store.tables import aliases, model_versions, models

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")


class Task(StrEnum):
    REGRESSION = "regression"
    CLASSIFICATION = "classification"  # binary
    MULTICLASS = "multiclass"


class Alias(StrEnum):
    CHAMPION = "champion"
    CHALLENGER = "challenger"
    PREVIOUS = "previous"


# An alias move's event names the alias that moved as its rule.
MOVE_RULES = {
    Alias.CHAMPION: Rule.ALIAS_CHAMPION,
    Alias.CHALLENGER: Rule.ALIAS_CHALLENGER,
    Alias.PREVIOUS: Rule.ALIAS_PREVIOUS,
}


@dataclass(frozen=True)
class ModelInfo:
    id: int
    name: str
    task: Task
    target: str
    time_column: str | None
    features: list[str] | None
    id_columns: list[str]
    created_at: datetime
    created_by: str
    aliases: dict[str, int] = field(default_factory=dict)
    allow_pickle: bool = False  # its versions may be pickles (joblib), which can run any code
    description: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    archived: Archived | None = None  # set while the model is retired

    def refuse_if_archived(self, doing: str) -> None:
        """An archived model takes no new versions, rollouts or routes: `doing` names the refused act."""
        if self.archived is not None:
            raise ModelArchivedError(self.name, self.archived, doing)

    loss: str | None = None  # the per-request loss's spec (`losses.Loss`); None: the task's default
    classes: list[Any] | None = None  # a classifier's classes, in probability order, fixed at version 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "task": self.task.value,
            "target": self.target,
            "time_column": self.time_column,
            "features": self.features,
            "id_columns": self.id_columns,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "aliases": self.aliases,
            "allow_pickle": self.allow_pickle,
            "description": self.description,
            "metadata": self.metadata,
            "archived": self.archived.to_dict() if self.archived else None,
            "loss": self.loss,
            "classes": self.classes,
        }


@dataclass(frozen=True)
class Archived:
    """When, by whom and why a model was archived."""

    at: datetime
    by: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "by": self.by, "reason": self.reason}


class ModelArchivedError(ConflictError):
    """A new version, rollout or route asked of an archived model."""

    def __init__(self, model: str, archived: Archived, doing: str) -> None:
        self.model, self.archived = model, archived
        super().__init__(
            f"model {model!r} is archived ({archived.at:%Y-%m-%dT%H:%M:%SZ} by {archived.by}: "
            f"{archived.reason}), so it takes no {doing}; unarchive it first with "
            f"`pitstop models unarchive {model} --reason …`"
        )


@dataclass(frozen=True)
class VersionInfo:
    model: str
    version: int
    artifact_uri: str
    sha256: str
    size_bytes: int
    lineage: Lineage
    gate_result: GateResult | None
    created_at: datetime
    created_by: str
    aliases: list[str] = field(default_factory=list)
    format: str = "skops"  # how the artifact loads: skops (allow-listed types) or joblib (pickle)
    trusted_types: list[str] | None = None  # the skops allow-list fixed at registration
    signature: dict[str, Any] | None = None  # {scheme, key_id, value}, made with a key the store lacks

    def signed_payload(self) -> bytes:
        """What a signature of this version covers."""
        return signing.payload(self.model, self.version, self.sha256, self.format, self.trusted_types)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "aliases": self.aliases,
            "artifact_uri": self.artifact_uri,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "format": self.format,
            "trusted_types": self.trusted_types,
            "signature": self.signature,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "lineage": self.lineage.to_json(),
            "gate_result": None if self.gate_result is None else self.gate_result.to_json(),
        }


def validate_name(kind: str, name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise UsageError(
            f"invalid {kind} name {name!r}: use 1-100 lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def create_model(
    conn: Connection,
    *,
    name: str,
    task: Task,
    target: str,
    time_column: str | None,
    features: list[str] | None,
    id_columns: list[str],
    now: datetime,
    actor: str,
    allow_pickle: bool = False,
    description: str | None = None,
    metadata: dict[str, str] | None = None,
    loss: str | None = None,
) -> ModelInfo:
    """Record a model's schema (whether its versions may be pickles, and its loss's spec, already
    checked). Feature columns and a classifier's classes may be left for the first version to fix."""
    validate_name("model", name)
    if features is not None:
        _check_feature_columns(features, target, time_column, id_columns)
    description = model_metadata.check_description(description)
    metadata = model_metadata.check(metadata or {})
    try:
        with conn.begin_nested():
            result = conn.execute(
                models.insert().values(
                    name=name,
                    task=task.value,
                    target=target,
                    time_column=time_column,
                    features=features,
                    id_columns=id_columns,
                    created_at=now,
                    created_by=actor,
                    allow_pickle=allow_pickle,
                    description=description,
                    metadata=metadata,
                    loss=loss,
                )
            )
    except IntegrityError:
        raise AlreadyExistsError(f"model {name!r} already exists; pick another name") from None
    assert result.inserted_primary_key is not None
    model_id = int(result.inserted_primary_key[0])
    record_event(
        conn,
        time=now,
        model_id=model_id,
        kind=EventKind.MODEL_CREATED,
        actor=actor,
        to_state=name,
        data={
            "task": task.value,
            "target": target,
            "features": features,
            "allow_pickle": allow_pickle,
            "loss": loss,
        },
    )
    return get_model(conn, name)


def _check_feature_columns(features: list[str], target: str, time_column: str | None, ids: list[str]) -> None:
    if not features:
        raise UsageError("give at least one feature column", field="features")
    if len(set(features)) != len(features):
        raise UsageError(f"a column is listed twice in {features}", field="features")
    reserved = {target, time_column, *ids} - {None}
    leaking = sorted(set(features) & reserved)
    if leaking:
        raise UsageError(
            f"{', '.join(leaking)} is the target, time or an id column and must not be a feature",
            field="features",
        )


def set_features(conn: Connection, model: ModelInfo, features: list[str]) -> ModelInfo:
    """Fix the feature columns of a model that was created without them (at its first version)."""
    _check_feature_columns(features, model.target, model.time_column, model.id_columns)
    conn.execute(models.update().where(models.c.id == model.id).values(features=features))
    return get_model(conn, model.name)


def set_classes(conn: Connection, model: ModelInfo, classes: list[Any]) -> ModelInfo:
    """Fix a classifier's classes (at its first version): labels and probabilities follow this order."""
    conn.execute(models.update().where(models.c.id == model.id).values(classes=classes))
    return get_model(conn, model.name)


def set_loss(conn: Connection, model: ModelInfo, loss: str, *, now: datetime, actor: str) -> ModelInfo:
    """Change a model's loss (already checked) while it has no version: once one is scored, its gate
    results, and any rollout's evidence, mean the loss they were computed with."""
    current = get_model(conn, model.name, for_update=True)
    versions = conn.execute(
        select(func.count()).select_from(model_versions).where(model_versions.c.model_id == model.id)
    ).scalar()
    if versions:
        raise ConflictError(
            f"model {model.name!r} has versions; its loss ({current.loss or 'the default'}) is fixed: "
            "create a new model for another loss"
        )
    conn.execute(models.update().where(models.c.id == model.id).values(loss=loss))
    record_event(
        conn,
        time=now,
        model_id=model.id,
        kind=EventKind.LOSS_CHANGED,
        actor=actor,
        from_state=current.loss,
        to_state=loss,
    )
    return get_model(conn, model.name)


def get_model(conn: Connection, name: str, *, for_update: bool = False) -> ModelInfo:
    query = select(models).where(models.c.name == name)
    if for_update:
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        known = ", ".join(conn.execute(select(models.c.name).order_by(models.c.name)).scalars()) or "none yet"
        raise NotFoundError(
            f"unknown model {name!r} (known: {known}); create it with `pitstop models create`"
        )
    return _model_from_row(row, current_aliases(conn, row.id))


def list_models(conn: Connection, *, include_archived: bool = True) -> list[ModelInfo]:
    """Every model by name; archived ones unless not `include_archived` (they are still served)."""
    query = select(models).order_by(models.c.name)
    if not include_archived:
        query = query.where(models.c.archived_at.is_(None))
    rows = conn.execute(query).all()
    return [_model_from_row(row, current_aliases(conn, row.id)) for row in rows]


def _model_from_row(row: Any, alias_map: dict[str, int]) -> ModelInfo:
    return ModelInfo(
        id=row.id,
        name=row.name,
        task=Task(row.task),
        target=row.target,
        time_column=row.time_column,
        features=row.features,
        id_columns=list(row.id_columns or []),
        created_at=row.created_at,
        created_by=row.created_by,
        aliases=alias_map,
        allow_pickle=bool(row.allow_pickle),
        description=row.description,
        metadata=dict(row.metadata or {}),
        archived=None
        if row.archived_at is None
        else Archived(row.archived_at, row.archived_by or "unknown", row.archive_reason or ""),
        loss=row.loss,
        classes=row.classes,
    )


def current_aliases(conn: Connection, model_id: int) -> dict[str, int]:
    rows = conn.execute(select(aliases.c.alias, aliases.c.version).where(aliases.c.model_id == model_id))
    return {row.alias: row.version for row in rows}


def add_version(
    conn: Connection,
    model: ModelInfo,
    *,
    artifact_uri: str,
    sha256: str,
    size_bytes: int,
    lineage: Lineage,
    now: datetime,
    actor: str,
    fmt: str,
    trusted_types: list[str] | None,
    signer: signing.Signer | None = None,
    signature: dict[str, Any] | None = None,
    number: int | None = None,
) -> VersionInfo:
    """Register the next version number of `model` (or `number`, when copying a version from another
    store); the model row is locked so numbers never collide, and an archived model refuses it.
    `signer` signs the new version; a copied version keeps its `signature` instead."""
    get_model(conn, model.name, for_update=True).refuse_if_archived("new versions")
    latest = conn.execute(
        select(func.max(model_versions.c.version)).where(model_versions.c.model_id == model.id)
    ).scalar()
    if number is None:
        number = (latest or 0) + 1
    elif latest is not None and number <= latest:
        raise ConflictError(f"model {model.name!r} already has versions up to {latest}; cannot add {number}")
    conn.execute(
        model_versions.insert().values(
            model_id=model.id,
            version=number,
            artifact_uri=artifact_uri,
            sha256=sha256,
            size_bytes=size_bytes,
            lineage=lineage.to_json(),
            created_at=now,
            created_by=actor,
            format=fmt,
            trusted_types=trusted_types,
            signature=signature,
        )
    )
    record_event(
        conn,
        time=now,
        model_id=model.id,
        kind=EventKind.VERSION_REGISTERED,
        actor=actor,
        to_state=str(number),
        data={
            "sha256": sha256,
            "datasets": [d.to_json() for d in lineage.datasets],
            "format": fmt,
            "trusted_types": trusted_types,
        },
    )
    if signer is not None:
        sign_version(conn, model, number, signer, now=now, actor=actor)
    return get_version(conn, model, number)


def sign_version(
    conn: Connection, model: ModelInfo, ref: str | int, signer: signing.Signer, *, now: datetime, actor: str
) -> VersionInfo:
    """Sign the version's sha256, format and allow-list as recorded (the caller checked the file)."""
    version = get_version(conn, model, ref)
    signature = signing.sign(signer, version.signed_payload())
    _update_version(conn, model, version.version, signature=signature)
    record_event(
        conn,
        time=now,
        model_id=model.id,
        kind=EventKind.VERSION_SIGNED,
        actor=actor,
        to_state=str(version.version),
        data={"scheme": signer.scheme, "key_id": signer.key_id, "sha256": version.sha256},
    )
    return get_version(conn, model, version.version)


def replace_artifact(
    conn: Connection,
    model: ModelInfo,
    version: VersionInfo,
    *,
    artifact_uri: str,
    sha256: str,
    size_bytes: int,
    fmt: str,
    trusted_types: list[str] | None,
    now: datetime,
    actor: str,
    data: dict[str, Any],
) -> VersionInfo:
    """Store the same model in another file format (`pitstop models convert`); its old signature no
    longer covers it and is dropped (the caller signs again when it can)."""
    _update_version(
        conn,
        model,
        version.version,
        artifact_uri=artifact_uri,
        sha256=sha256,
        size_bytes=size_bytes,
        format=fmt,
        trusted_types=trusted_types,
        signature=None,
    )
    record_event(
        conn,
        time=now,
        model_id=model.id,
        kind=EventKind.VERSION_CONVERTED,
        actor=actor,
        from_state=version.format,
        to_state=fmt,
        data={"version": version.version, "from_sha256": version.sha256, "to_sha256": sha256, **data},
    )
    return get_version(conn, model, version.version)


def _update_version(conn: Connection, model: ModelInfo, number: int, **values: Any) -> None:
    conn.execute(
        model_versions.update()
        .where(model_versions.c.model_id == model.id, model_versions.c.version == number)
        .values(**values)
    )


def set_allow_pickle(
    conn: Connection, model: ModelInfo, allow: bool, *, now: datetime, actor: str, reason: str
) -> ModelInfo:
    """Allow (or refuse) pickled versions of `model`; a change is an event."""
    current = get_model(conn, model.name, for_update=True)
    if current.allow_pickle == allow:
        return current
    conn.execute(models.update().where(models.c.id == model.id).values(allow_pickle=allow))
    record_event(
        conn,
        time=now,
        model_id=model.id,
        kind=EventKind.PICKLE_POLICY,
        actor=actor,
        from_state="allowed" if current.allow_pickle else "refused",
        to_state="allowed" if allow else "refused",
        reason=reason,
    )
    return get_model(conn, model.name)


def resolve_version(conn: Connection, model: ModelInfo, ref: str | int) -> int:
    """A version number from `3`, `"3"`, `"v3"` or an alias name such as `"champion"`."""
    text = str(ref).strip().lower().removeprefix("v")
    if text.isdigit():
        return int(text)
    alias_map = current_aliases(conn, model.id)
    if text in alias_map:
        return alias_map[text]
    if text in {a.value for a in Alias}:
        raise NotFoundError(f"model {model.name!r} has no {text} yet")
    raise UsageError(f"version must be a number or one of champion, challenger, previous; got {ref!r}")


def get_version(conn: Connection, model: ModelInfo, ref: str | int) -> VersionInfo:
    number = resolve_version(conn, model, ref)
    row = conn.execute(
        select(model_versions).where(
            model_versions.c.model_id == model.id, model_versions.c.version == number
        )
    ).first()
    if row is None:
        latest = conn.execute(
            select(func.max(model_versions.c.version)).where(model_versions.c.model_id == model.id)
        ).scalar()
        have = f"versions 1..{latest}" if latest else "no versions yet"
        raise NotFoundError(f"model {model.name!r} has no version {number} ({have})")
    return _version_from_row(model, row, current_aliases(conn, model.id))


def list_versions(conn: Connection, model: ModelInfo) -> list[VersionInfo]:
    rows = conn.execute(
        select(model_versions).where(model_versions.c.model_id == model.id).order_by(model_versions.c.version)
    ).all()
    alias_map = current_aliases(conn, model.id)
    return [_version_from_row(model, row, alias_map) for row in rows]


def imported_from_mlflow(conn: Connection, model: ModelInfo, name: str, version: str) -> VersionInfo | None:
    """The version of `model` imported from MLflow model `name` version `version`, if any."""
    for info in list_versions(conn, model):
        origin = info.lineage.mlflow
        if origin is not None and (origin.name, origin.version) == (name, version):
            return info
    return None


def _version_from_row(model: ModelInfo, row: Any, alias_map: dict[str, int]) -> VersionInfo:
    return VersionInfo(
        model=model.name,
        version=row.version,
        artifact_uri=row.artifact_uri,
        sha256=row.sha256,
        size_bytes=row.size_bytes,
        lineage=Lineage.from_json(row.lineage),
        gate_result=None if row.gate_result is None else GateResult.from_json(row.gate_result),
        created_at=row.created_at,
        created_by=row.created_by,
        aliases=sorted(alias for alias, version in alias_map.items() if version == row.version),
        format=row.format,
        trusted_types=row.trusted_types,
        signature=row.signature,
    )


def store_gate_result(conn: Connection, model: ModelInfo, version: int, result: GateResult) -> None:
    _update_version(conn, model, version, gate_result=result.to_json())


def move_aliases(
    conn: Connection,
    model: ModelInfo,
    moves: dict[Alias, int | None],
    *,
    now: datetime,
    actor: str,
    reason: str,
    rollout_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> dict[str, int]:
    """Move several aliases at once (None removes one), each move an event, all in the caller's transaction.

    The model row is locked first, so concurrent movers queue instead of interleaving.
    """
    get_model(conn, model.name, for_update=True)
    before = current_aliases(conn, model.id)
    for alias, version in moves.items():
        if version is not None:
            get_version(conn, model, version)
        old = before.get(alias.value)
        if old == version:
            continue
        condition = (aliases.c.model_id == model.id) & (aliases.c.alias == alias.value)
        if version is None:
            conn.execute(aliases.delete().where(condition))
        elif old is None:
            conn.execute(
                aliases.insert().values(model_id=model.id, alias=alias.value, version=version, updated_at=now)
            )
        else:
            conn.execute(aliases.update().where(condition).values(version=version, updated_at=now))
        record_event(
            conn,
            time=now,
            model_id=model.id,
            kind=EventKind.ALIAS_MOVED,
            actor=actor,
            from_state=None if old is None else str(old),
            to_state=None if version is None else str(version),
            rule=MOVE_RULES[alias],
            reason=reason,
            rollout_id=rollout_id,
            data=data or {},
        )
    return current_aliases(conn, model.id)


def set_champion(
    conn: Connection, model: ModelInfo, version: int, *, force: bool, now: datetime, actor: str, reason: str
) -> dict[str, int]:
    """Bootstrap (or, with force, override) the champion; the replaced one becomes `previous`."""
    current = current_aliases(conn, model.id).get(Alias.CHAMPION.value)
    if current is not None and current != version and not force:
        raise ConflictError(
            f"model {model.name!r} already has champion version {current}; champions change through rollouts "
            f"(`pitstop rollout start`), or pass {mention('force', True)} to override in an emergency"
        )
    moves: dict[Alias, int | None] = {Alias.CHAMPION: version}
    if current is not None and current != version:
        moves[Alias.PREVIOUS] = current
    return move_aliases(
        conn,
        model,
        moves,
        now=now,
        actor=actor,
        reason=reason,
        data={"forced": bool(force and current is not None)},
    )
