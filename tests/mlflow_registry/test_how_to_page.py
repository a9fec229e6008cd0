"""The commands of docs/how-to/mlflow.md, run as written against the real `mlflow server`."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

from mlflow_registry.conftest import NAME, MlflowServer, log_version
from pitstop.mlflow_source import client

PAGE = Path(__file__).resolve().parents[2] / "docs" / "how-to" / "mlflow.md"


def page_commands() -> list[list[str]]:
    """Each `pitstop …` line of the page's bash blocks, split as a shell would (without the `pitstop`)."""
    blocks = re.findall(r"^```bash\n(.*?)^```", PAGE.read_text(encoding="utf-8"), re.M | re.S)
    lines = [line for block in blocks for line in block.splitlines() if line.startswith("pitstop ")]
    return [shlex.split(os.path.expandvars(line))[1:] for line in lines]


def test_the_page_s_commands_run(
    workspace_dir: Path, mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch, cli
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    mlflow = client(mlflow_server.url)
    mlflow.set_registered_model_alias(NAME, "challenger", "1")
    commands = page_commands()
    assert [c[0] for c in commands] == ["models", "register", "register", "mlflow"]
    for command in commands:
        if command[0] == "mlflow":  # someone logged a new version and moved @challenger to it
            log_version(mlflow_server.url, 3.0)
            newest = max(int(v.version) for v in mlflow.search_model_versions(f"name='{NAME}'"))
            mlflow.set_registered_model_alias(NAME, "challenger", str(newest))
        args = [str(workspace_dir) if arg == "./ws" else arg for arg in command]
        done = cli(*args)
        assert done.exit_code == 0, f"pitstop {' '.join(command)}: {done.stderr}"
    assert "version 3 imported" in done.stdout
