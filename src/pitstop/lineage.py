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


def code_commit(cwd: Path | None = None) -> dict[str, str | bool]:
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
        return {"commit": "unknown", "dirty": False}
    return {"commit": commit, "dirty": bool(status.strip())}


def given_commit(commit: str, cwd: Path | None = None) -> dict[str, Any]:
    """The code commit the caller gives (`--code-commit`), for a model trained elsewhere; the folder's
    own checkout, when there is one and it differs, is kept beside it."""
    recorded: dict[str, Any] = {"commit": check_commit(commit), "dirty": False, "given": True}
    here = code_commit(cwd)
    if here["commit"] not in ("unknown", recorded["commit"]):
        recorded["folder"] = here
    return recorded


def environment() -> dict[str, object]:
    """The Python version and pitstop's (the packages the model needs are the door check's finding,
    lineage key `packages`)."""
    try:
        pitstop = metadata.version("pitstop")
    except metadata.PackageNotFoundError:
        pitstop = "not installed"
    return {"python": platform.python_version(), "pitstop": pitstop}


def build_lineage(
    model: ModelInfo,
    snapshot: DatasetSnapshot,
    rows: pd.DataFrame,
    time_column: str | None,
    features: list[str],
    params: dict[str, Any],
    feature_pipeline_version: str | None,
    as_of: pd.Timestamp | None,
) -> dict[str, Any]:
    """Everything needed to know, and later reproduce, where a version came from."""
    from pitstop.datasets import parse_times

    window: dict[str, Any] = {"start": None, "end": None, "rows": len(rows), "time_column": time_column}
    if time_column is not None and time_column in rows.columns:
        times = parse_times(rows[time_column], time_column, snapshot.ref)
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
        "feature_types": {c: str(rows[c].dtype) for c in features},
        "feature_pipeline_version": feature_pipeline_version,
        "code": code_commit(),
        "environment": environment(),
        "trainer": None,
    }


def reference_lineage(
    reference: DataReference,
    features: list[str],
    params: dict[str, Any],
    feature_pipeline_version: str | None,
    as_of: pd.Timestamp | None,
) -> dict[str, Any]:
    """The lineage of a version whose training data is named by reference (`data_refs`): no dataset
    snapshot, so no training window or feature types; the reference (location, hash) instead."""
    return {
        "datasets": [],
        "data_reference": reference.to_dict(),
        "training_window": {"start": None, "end": None, "rows": None, "time_column": None},
        "as_of": as_of.isoformat() if as_of is not None else None,
        "params": params,
        "features": features,
        "feature_types": {},
        "feature_pipeline_version": feature_pipeline_version,
        "code": code_commit(),
        "environment": environment(),
        "trainer": None,
    }
