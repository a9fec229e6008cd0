"""Where a model version came from: data, window, parameters, code commit, environment, creator."""

from __future__ import annotations

import getpass
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pitstop.data_refs import check_commit
from pitstop.records.lineage import CodeCommit, DatasetUse, Environment, Lineage, TrainingWindow

if TYPE_CHECKING:  # `current_actor` is used by every write; pandas loads only to build a lineage
    import pandas as pd

    from pitstop.data_refs import DataReference
    from pitstop.datasets import DatasetSnapshot
    from pitstop.registry import ModelInfo


def current_actor() -> str:
    """Who is acting: `PITSTOP_ACTOR`, else the login name."""
    try:
        return os.environ.get("PITSTOP_ACTOR") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def code_commit(cwd: Path | None = None) -> CodeCommit:
    """The git commit of the working directory and whether tracked files differ from it, or unknown.

    Untracked files do not make it dirty: data files and a workspace's `.pitstop` folder inside the
    repository would otherwise mark every version dirty, hiding the changes that matter."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return CodeCommit()
    return CodeCommit(commit, dirty=bool(status.strip()))


def given_commit(commit: str, cwd: Path | None = None) -> CodeCommit:
    """The code commit the caller gives (`--code-commit`), for a model trained elsewhere; the folder's
    own checkout, when there is one and it differs, is kept beside it."""
    given, here = check_commit(commit), code_commit(cwd)
    return CodeCommit(given, given=True, folder=None if here.commit in ("unknown", given) else here)


def environment() -> Environment:
    """The Python version and pitstop's (the packages the model needs are the door check's finding,
    lineage key `packages`)."""
    try:
        pitstop = metadata.version("pitstop")
    except metadata.PackageNotFoundError:
        pitstop = "not installed"
    return Environment(platform.python_version(), pitstop)


def build_lineage(
    model: ModelInfo,
    snapshot: DatasetSnapshot,
    rows: pd.DataFrame,
    time_column: str | None,
    features: list[str],
    params: dict[str, Any],
    feature_pipeline_version: str | None,
    as_of: pd.Timestamp | None,
) -> Lineage:
    """Everything needed to know, and later reproduce, where a version came from."""
    from pitstop.datasets import parse_times

    window = TrainingWindow(rows=len(rows), time_column=time_column)
    if time_column is not None and time_column in rows.columns:
        times = parse_times(rows[time_column], time_column, snapshot.ref)
        window = TrainingWindow(times.min().isoformat(), times.max().isoformat(), len(rows), time_column)
    return Lineage(
        features=features,
        datasets=[DatasetUse("train", snapshot.name, snapshot.version, snapshot.sha256, snapshot.rows)],
        training_window=window,
        as_of=as_of.isoformat() if as_of is not None else None,
        params=params,
        feature_types={c: str(rows[c].dtype) for c in features},
        feature_pipeline_version=feature_pipeline_version,
        code=code_commit(),
        environment=environment(),
    )


def reference_lineage(
    reference: DataReference,
    features: list[str],
    params: dict[str, Any],
    feature_pipeline_version: str | None,
    as_of: pd.Timestamp | None,
) -> Lineage:
    """The lineage of a version whose training data is named by reference (`data_refs`): no dataset
    snapshot, so no training window or feature types; the reference (location, hash) instead."""
    return Lineage(
        features=features,
        data_reference=reference,
        as_of=as_of.isoformat() if as_of is not None else None,
        params=params,
        feature_pipeline_version=feature_pipeline_version,
        code=code_commit(),
        environment=environment(),
    )
