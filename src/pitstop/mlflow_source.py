"""A model read from an MLflow tracking server or Model Registry: `models:/NAME@ALIAS`,
`models:/NAME/VERSION` or `runs:/RUN_ID/PATH`, downloaded through MLflow's own client, with what
MLflow knows of where it came from (`MlflowOrigin`).

Only the scikit-learn flavor is imported, as an object pitstop stores like any other: a skops file
loads with skops's default types and those the logger listed (`skops_trusted_types` in MLmodel),
never with the types the file itself asks for; a pickle or cloudpickle file only when the model
allows pickles. An alias is resolved to its version number first, and that version is downloaded, so
an alias moved meanwhile cannot swap the files. Every file's sha256 is taken from the bytes that are
then loaded. MLflow loads inside the functions: importing it costs seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from pitstop.errors import UsageError, mention
from pitstop.records.mlflow_origin import MlflowDataset, MlflowOrigin

# MLflow's usage telemetry, off unless the user turns it on: its thread sets and unsets an environment
# variable while other threads iterate os.environ (requests reading proxies), which failed a gateway's
# MLflow calls with KeyError; and it would call out of a network that may allow no such thing. Set
# here, before pitstop first imports mlflow (every import of it is inside this module's functions or
# after this module's).
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities import Run
    from mlflow.entities.model_registry import ModelVersion

TRACKING_URI_VARIABLE = "MLFLOW_TRACKING_URI"
GIT_COMMIT_TAG = "mlflow.source.git.commit"
DATASET_CONTEXT_TAG = "mlflow.data.context"
PICKLE_FORMATS = ("pickle", "cloudpickle")
_MODELS = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")
_RUNS = re.compile(r"^runs:/(?P<run>[0-9a-zA-Z]+)/(?P<path>.+)$")


class MlflowUnavailableError(UsageError):
    """The MLflow server could not be reached, or answered an error."""


@dataclass(frozen=True)
class FetchedModel:
    """A downloaded MLflow model: the estimator, its origin, the input columns its signature names
    and its input example (None when it was logged without)."""

    estimator: Any
    origin: MlflowOrigin
    features: list[str] | None
    example: pd.DataFrame | None


def is_mlflow_uri(text: str) -> bool:
    """`models:/…` and `runs:/…` name MLflow models; anything else is a file.

    >>> is_mlflow_uri("models:/eta@challenger"), is_mlflow_uri("eta.skops")
    (True, False)
    """
    return text.startswith(("models:/", "runs:/"))


def tracking_uri(given: str | None, configured: str | None) -> str:
    """The MLflow server: `given`, else `MLFLOW_TRACKING_URI`, else the configured one."""
    chosen = given or os.environ.get(TRACKING_URI_VARIABLE) or configured
    if not chosen:
        raise UsageError(
            f"say which MLflow server holds the model: {mention('tracking_uri', 'URI')}, the "
            f"{TRACKING_URI_VARIABLE} environment variable or `mlflow.tracking_uri` in pitstop.yaml",
            field="tracking_uri",
        )
    return chosen


def client(uri: str) -> MlflowClient:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def fetch(uri: str, tracking: str, folder: Path, *, allow_pickle: bool) -> FetchedModel:
    """Download the model `uri` names from `tracking` into `folder` and load it."""
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    models, runs = _MODELS.match(uri), _RUNS.match(uri)
    if models is None and runs is None:
        raise UsageError(
            f"{uri!r} is not an MLflow model URI: write models:/NAME@ALIAS, models:/NAME/VERSION or "
            "runs:/RUN_ID/PATH",
            field="uri",
        )
    mlflow = client(tracking)
    try:
        version = _registered(mlflow, models) if models is not None else None
        run_id = version.run_id if version is not None else runs["run"] if runs else None
        run = mlflow.get_run(run_id) if run_id else None
        if version is not None:
            source = mlflow.get_model_version_download_uri(version.name, version.version)
        else:
            assert runs is not None and run is not None
            source = _run_model_location(mlflow, run, runs["path"])
        where = Path(download_artifacts(artifact_uri=source, dst_path=str(folder), tracking_uri=tracking))
    except MlflowException as error:
        raise MlflowUnavailableError(f"{uri}: MLflow at {tracking} answered: {error.message}") from None
    except OSError as error:  # a server that is down, a refused connection
        raise MlflowUnavailableError(f"{uri}: cannot reach MLflow at {tracking} ({error})") from None
    return _loaded(uri, tracking, where, version, run, models, allow_pickle=allow_pickle)


def _registered(mlflow: MlflowClient, found: re.Match[str]) -> ModelVersion:
    if found["alias"] is not None:
        return mlflow.get_model_version_by_alias(found["name"], found["alias"])
    return mlflow.get_model_version(found["name"], found["version"])


def _run_model_location(mlflow: MlflowClient, run: Run, path: str) -> str:
    """Where the model `path` of `run` lives: an MLflow 3 logged model of that name among the run's
    outputs, else (MLflow 2) the run's artifact folder `path`. Resolved here rather than by MLflow's
    `runs:/` and `models:/` resolvers, which open a client on the default tracking store, not ours."""
    for output in run.outputs.model_outputs if run.outputs is not None else []:
        logged = mlflow.get_logged_model(output.model_id)
        if logged.name == path:
            return str(logged.artifact_location)
    return f"{run.info.artifact_uri}/{path}"


def _loaded(
    uri: str,
    tracking: str,
    where: Path,
    version: ModelVersion | None,
    run: Run | None,
    models: re.Match[str] | None,
    *,
    allow_pickle: bool,
) -> FetchedModel:
    meta = _mlmodel(uri, where)
    flavors = meta.get("flavors") or {}
    sklearn = flavors.get("sklearn")
    if not isinstance(sklearn, dict):
        raise UsageError(
            f"{uri}: a model of flavor(s) {', '.join(sorted(flavors)) or 'none'}; pitstop imports "
            "scikit-learn models (the `sklearn` flavor) and runs others remotely: serve it with "
            "`mlflow models serve` and register a RemoteModel with protocol 'mlflow'",
            field="uri",
        )
    files = {
        str(path.relative_to(where)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(where.rglob("*"))
        if path.is_file()
    }
    data = (where / sklearn["pickled_model"]).read_bytes()
    if hashlib.sha256(data).hexdigest() != files[sklearn["pickled_model"]]:
        raise UsageError(f"{uri}: its model file changed while it was read; import it again", field="uri")
    fmt = sklearn.get("serialization_format")
    estimator = _estimator(uri, data, fmt, sklearn.get("skops_trusted_types"), allow_pickle)
    origin = MlflowOrigin(
        tracking_uri=tracking,
        uri=uri,
        flavor="sklearn",
        serialization_format=fmt,
        files=files,
        name=version.name if version is not None else None,
        version=str(version.version) if version is not None else None,
        alias=models["alias"] if models is not None else None,
        run_id=run.info.run_id if run is not None else None,
        params=dict(run.data.params) if run is not None else {},
        metrics=dict(run.data.metrics) if run is not None else {},
        datasets=_datasets(run),
        git_commit=run.data.tags.get(GIT_COMMIT_TAG) if run is not None else None,
        mlflow_version=meta.get("mlflow_version"),
    )
    return FetchedModel(estimator, origin, _signature_columns(meta), _example(where, meta))


def _mlmodel(uri: str, where: Path) -> dict[str, Any]:
    path = where / "MLmodel"
    if not path.is_file():
        raise UsageError(f"{uri}: no MLmodel file: it is not an MLflow model", field="uri")
    meta = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(meta, dict):
        raise UsageError(f"{uri}: its MLmodel file is not a mapping", field="uri")
    return meta


def _estimator(uri: str, data: bytes, fmt: str | None, trusted: list[str] | None, allow_pickle: bool) -> Any:
    import skops.io as sio
    from skops.io.exceptions import UntrustedTypesFoundException

    if fmt == "skops":
        try:
            return sio.loads(data, trusted=list(trusted or []))
        except UntrustedTypesFoundException:
            outside = sorted(set(sio.get_untrusted_types(data=data)) - set(trusted or []))
            raise UsageError(
                f"{uri}: its skops file needs type(s) the logger did not list as trusted: "
                f"{', '.join(outside)}",
                field="uri",
                hint="log it again with `skops_trusted_types=[…]` naming them, if you trust them",
            ) from None
    if fmt not in PICKLE_FORMATS:
        raise UsageError(f"{uri}: unknown scikit-learn serialization format {fmt!r}", field="uri")
    if not allow_pickle:
        raise UsageError(
            f"{uri}: a {fmt} file, which can run any code when loaded, and the model does not allow "
            f"pickles: log it with serialization_format='skops', or import it with "
            f"{mention('allow_pickle', True)} if you trust it",
            field="uri",
        )
    return pickle.loads(data)  # allowed above: the model's owner trusts its files


def _datasets(run: Run | None) -> list[MlflowDataset]:
    if run is None:
        return []
    found = []
    for given in run.inputs.dataset_inputs if run.inputs is not None else []:
        context = next((t.value for t in given.tags if t.key == DATASET_CONTEXT_TAG), None)
        data = given.dataset
        found.append(MlflowDataset(data.name, data.digest, data.source_type, data.source, context))
    return found


def _signature_columns(meta: dict[str, Any]) -> list[str] | None:
    """The input columns the model's signature names, in order; None without a column signature."""
    inputs = (meta.get("signature") or {}).get("inputs")
    columns = json.loads(inputs) if isinstance(inputs, str) else None
    if not isinstance(columns, list) or not all(isinstance(c, dict) and "name" in c for c in columns):
        return None
    return [str(column["name"]) for column in columns]


def _example(where: Path, meta: dict[str, Any]) -> pd.DataFrame | None:
    """The logged input example, when it is a data frame in MLflow's `split` orientation."""
    info = meta.get("saved_input_example_info") or {}
    path = where / str(info.get("artifact_path", ""))
    if info.get("type") != "dataframe" or info.get("pandas_orient") != "split" or not path.is_file():
        return None
    import pandas as pd

    data = json.loads(path.read_text(encoding="utf-8"))
    return pd.DataFrame(data.get("data") or [], columns=data.get("columns"))
