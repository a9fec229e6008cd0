"""`pitstop models convert`: store a pickled version with skops, the same model in a safe file.

The pickle is loaded once more (after its sha256 and, with a verify key, its signature are checked:
the person converting vouches for that one file), written with skops, read back with the allow-list
its types give, and both objects predict on a dataset: the gate's last test set, else `data`, else
the version's training data. Only identical predictions (NaN where NaN) replace the version's file,
allow-list and format in one transaction, with an event naming both sha256. The old file stays in
the artifact store: files are content-addressed and may be shared, and the event names it.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pitstop import loading, model_files, model_input, registry, training, user_code
from pitstop.errors import ConflictError, UsageError, describe, mention
from pitstop.lineage import current_actor
from pitstop.model_files import ModelFormat
from pitstop.scoring import checked_predictions

if TYPE_CHECKING:
    from pitstop.context import Context


@dataclass(frozen=True)
class Conversion:
    model: str
    version: int
    from_sha256: str
    to_sha256: str
    trusted_types: list[str]
    checked_on: str  # the dataset both objects predicted on
    rows: int
    signed: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def convert(
    ws: Context, model: str, ref: str | int, *, data: str | None = None, actor: str | None = None
) -> Conversion:
    info = loading.model_info(ws, model)
    version = loading.version_info(ws, model, ref)
    who = f"{model} version {version.version}"
    if version.format != ModelFormat.JOBLIB:
        raise UsageError(f"{who} is already stored with {version.format}: nothing to convert")
    if version.signature is not None and ws.keys.signer is None:
        raise UsageError(f"{who} is signed: converting it needs the signing key to sign the new file")
    original = loading.load_version(ws, info, version, allow_pickle=True)
    with tempfile.TemporaryDirectory(prefix="pitstop-convert-") as folder:
        try:
            with user_code.current_folder_importable():
                saved = model_files.save_skops(original, Path(folder))
                converted = model_files.load(
                    saved.path.read_bytes(),
                    saved.format,
                    saved.trusted_types,
                    model=model,
                    allow_pickle=False,
                    who=f"{who} converted",
                )
        except Exception as error:  # skops refuses what it cannot store in many ways
            raise UsageError(
                f"cannot convert {who}: skops cannot store {training.returned(original)} "
                f"({describe(error)}); it stays a pickle"
            ) from None
        on, rows = _check_same_predictions(ws, info, version, original, converted, data)
        uri, sha256, size = ws.artifacts.put(saved.path, "models", saved.format.suffix)
    now, actor = ws.clock.now(), actor or current_actor()
    with ws.writing() as conn:
        locked = registry.get_model(conn, model, for_update=True)
        if registry.get_version(conn, locked, version.version).sha256 != version.sha256:
            raise ConflictError(f"{who} changed while it was being converted; convert it again")
        registry.replace_artifact(
            conn,
            locked,
            version,
            artifact_uri=uri,
            sha256=sha256,
            size_bytes=size,
            fmt=saved.format.value,
            trusted_types=saved.trusted_types,
            now=now,
            actor=actor,
            data={"checked_on": on, "rows": rows, "trusted_types": saved.trusted_types},
        )
        if ws.keys.signer is not None:
            registry.sign_version(conn, locked, version.version, ws.keys.signer, now=now, actor=actor)
    return Conversion(
        model,
        version.version,
        version.sha256,
        sha256,
        list(saved.trusted_types or []),
        on,
        rows,
        ws.keys.signer is not None,
    )


def _check_same_predictions(
    ws: Context,
    info: registry.ModelInfo,
    version: registry.VersionInfo,
    original: Any,
    converted: Any,
    data: str | None,
) -> tuple[str, int]:
    """Both objects predict on the chosen dataset: identical, or a UsageError. Returns its ref and rows."""
    ref = data or _gate_test_set(version) or _training_data(version)
    snapshot = loading.snapshot(ws, ref)
    frame = loading.dataset_frame(ws, snapshot.ref)
    features = info.features or version.lineage.features
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise UsageError(
            f"dataset {snapshot.ref} lacks feature(s) {', '.join(missing)}: give {mention('data')} with them"
        )
    X = frame[features]
    who, on = f"{info.name} version {version.version}", f"dataset {snapshot.ref}"
    signature = model_input.from_lineage(features, version.lineage, original)
    before = checked_predictions(info.task, original, X, who, on, signature)
    after = checked_predictions(info.task, converted, X, f"{who} converted", on, signature)
    differ = int((~np.isclose(before, after, rtol=0, atol=0, equal_nan=True)).sum())
    if differ:
        raise UsageError(
            f"cannot convert {who}: stored with skops it predicts differently on {differ} of {len(X)} "
            f"rows of {on}; it stays a pickle"
        )
    return snapshot.ref, len(X)


def _gate_test_set(version: registry.VersionInfo) -> str | None:
    return None if version.gate_result is None else version.gate_result.test_set.ref


def _training_data(version: registry.VersionInfo) -> str:
    source = version.lineage.training_dataset
    if source is None:  # its training data is a reference (`data_refs`), not a dataset pitstop holds
        raise UsageError(
            f"{version.model} version {version.version} names its training data by reference and has "
            f"no gate result: give {mention('data', 'NAME')}, a dataset with its features, to compare "
            "predictions on"
        )
    return source.ref
