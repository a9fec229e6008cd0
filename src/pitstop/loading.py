"""What a context's store points to, read and checked: a model's record, a version's verified file
and model object, a dataset snapshot's rows. The facade (`Workspace`) and the layers below it share
these."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from pitstop import registry, signing, user_code
from pitstop.errors import ArtifactIntegrityError, VersionLoadError, describe
from pitstop.registry import ModelInfo, VersionInfo

if TYPE_CHECKING:
    import pandas as pd

    from pitstop.context import Context
    from pitstop.datasets import DatasetSnapshot


def model_info(ctx: Context, name: str) -> ModelInfo:
    with ctx.reading() as conn:
        return registry.get_model(conn, name)


def version_info(ctx: Context, model: str, ref: str | int) -> VersionInfo:
    with ctx.reading() as conn:
        return registry.get_version(conn, registry.get_model(conn, model), ref)


def snapshot(ctx: Context, ref: str) -> DatasetSnapshot:
    from pitstop import datasets

    with ctx.reading() as conn:
        return datasets.get_snapshot(conn, ref)


def dataset_frame(ctx: Context, ref: str) -> pd.DataFrame:
    """The snapshot's rows (verified against its sha256), time column parsed to UTC."""
    from pitstop import datasets

    chosen = snapshot(ctx, ref)
    return datasets.frame_from_bytes(chosen, ctx.artifacts.read(chosen.uri))


def verified_artifact(ctx: Context, version: VersionInfo) -> bytes:
    """The version's file's bytes, after checking the sha256 and, when a verify key is configured,
    the signature over the sha256, format and type allow-list."""
    data = ctx.artifacts.read(version.artifact_uri)
    where = ctx.artifacts.location(version.artifact_uri)
    if data is None:
        raise ArtifactIntegrityError(version.model, version.version, version.sha256, None, where)
    actual = hashlib.sha256(data).hexdigest()
    if actual != version.sha256:
        raise ArtifactIntegrityError(version.model, version.version, version.sha256, actual, where)
    if ctx.keys.verifier is not None:
        who = f"{version.model} version {version.version}"
        signing.check(ctx.keys.verifier, version.signed_payload(), version.signature, who)
    return data


def load_version(
    ctx: Context, info: ModelInfo, version: VersionInfo, *, allow_pickle: bool | None = None
) -> Any:
    """The version's model object, verified (`verified_artifact`). A skops file loads only with the
    types its version was registered with; a pickle only when the model allows pickles (or
    `allow_pickle`, as a conversion does for the version it replaces)."""
    from pitstop import model_files, package_drift
    from pitstop.model_files import ModelFormat, PickleRefusedError, UntrustedTypesError

    data = verified_artifact(ctx, version)
    who = f"{info.name} version {version.version}"
    try:
        with user_code.current_folder_importable():  # its classes may live in the trainer's module
            loaded = model_files.load(
                data,
                ModelFormat(version.format),
                version.trusted_types,
                model=info.name,
                allow_pickle=info.allow_pickle if allow_pickle is None else allow_pickle,
                who=who,
                warn=allow_pickle is None,  # a caller that decides itself has warned already
            )
    except (UntrustedTypesError, PickleRefusedError):
        raise
    except Exception as error:  # loading imports the classes' modules: anything may fail
        hint = user_code.load_hint(error)
        raise VersionLoadError(info.name, version.version, describe(error), hint) from None
    package_drift.check(version.lineage, who)  # every load says so; it never refuses
    return loaded
