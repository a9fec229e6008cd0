"""Facts about where a model version came from: code commit, environment, creator."""

from __future__ import annotations

import getpass
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

KEY_PACKAGES = ("pitstop", "numpy", "pandas", "scikit-learn", "scipy", "joblib")


def current_actor() -> str:
    """Who is acting: `PITSTOP_ACTOR`, else the login name."""
    try:
        return os.environ.get("PITSTOP_ACTOR") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def code_commit(cwd: Path | None = None) -> dict[str, str | bool]:
    """The git commit of the working directory (and whether it had uncommitted changes), or unknown."""
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


def environment() -> dict[str, object]:
    """Python and key package versions."""
    packages: dict[str, str] = {}
    for name in KEY_PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = "not installed"
    return {"python": platform.python_version(), "packages": packages}
