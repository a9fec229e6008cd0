"""Fast start: `pitstop --help` and `pitstop models list` load no library they do not use.

Each runs in a fresh interpreter (this process has imported everything already) through the real
entry point; the test reads which top-level packages it loaded. No timing: bench/RESULTS.md has those.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import pitstop

# Statistics, data frames, model files, the report's charts, the HTTP gateway and the migrations.
HEAVY = {
    "numpy",
    "scipy",
    "pandas",
    "pyarrow",
    "sklearn",
    "skops",
    "joblib",
    "plotly",
    "fastapi",
    "starlette",
    "uvicorn",
    "alembic",
    "fsspec",
}
# The store too: help reads no workspace.
HEAVY_FOR_HELP = HEAVY | {"sqlalchemy"}
HELPS = [["--help"], ["models", "--help"], ["rollout", "--help"], ["plan", "--help"]]

RUN = """
import json, sys
from pitstop.cli import main
out, args = sys.argv[1], sys.argv[2:]
try:
    main(args)
    code = 0
except SystemExit as done:
    code = done.code or 0
with open(out, "w") as f:
    json.dump({"code": code, "modules": sorted(sys.modules)}, f)
"""


def _loaded(tmp_path: Path, *args: str) -> set[str]:
    """The top-level packages loaded by `pitstop ARGS…` in a new interpreter; it must succeed."""
    return {name.split(".")[0] for name in _modules(tmp_path, *args)}


def _modules(tmp_path: Path, *args: str) -> set[str]:
    """The modules loaded by `pitstop ARGS…` in a new interpreter; it must succeed."""
    out = tmp_path / "modules.json"
    src = str(Path(pitstop.__file__).parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", RUN, str(out), *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["code"] == 0, done.stderr
    return set(result["modules"])


@pytest.mark.parametrize("args", HELPS)
def test_help_loads_no_heavy_library(tmp_path: Path, args: list[str]) -> None:
    assert _loaded(tmp_path, *args) & HEAVY_FOR_HELP == set()


def test_models_list_loads_only_the_store(tmp_path: Path, workspace_dir: Path) -> None:
    loaded = _loaded(tmp_path, "models", "list", "-w", str(workspace_dir))
    assert "sqlalchemy" in loaded  # it did read the store
    assert loaded & HEAVY == set()


def test_models_list_builds_only_its_own_commands(tmp_path: Path, workspace_dir: Path) -> None:
    loaded = _modules(tmp_path, "models", "list", "-w", str(workspace_dir))
    commands = {name for name in loaded if name.startswith("pitstop.cli.")}
    assert commands == {"pitstop.cli.common", "pitstop.cli.models", "pitstop.cli.train"}
