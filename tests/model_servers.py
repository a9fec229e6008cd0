"""Real model servers on loopback, as remote peers of a gateway: MLServer (Open Inference Protocol, its
scikit-learn runtime) and KServe's model server (V1 `:predict`). Each runs from its own virtualenv
under `.venv-peers/` (`make install-peers`): they pin web-framework versions that clash with ours.
Without one the tests that need it skip, or fail where peers are required (`PITSTOP_REQUIRE_PEERS=1`,
as in CI)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest

from serving.conftest import process_answering

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / ".venv-peers"
KSERVE_MODEL = ROOT / "tests" / "peers" / "kserve_model.py"
HOW_TO = ROOT / "docs" / "how-to" / "remote-models.md"
START_TIMEOUT = 90.0  # seconds for a peer to answer ready: MLServer imports much, on a busy machine


def peer_program(venv: str, program: str) -> Path:
    """`.venv-peers/{venv}/bin/{program}`; skips without it, fails where peers are required."""
    path = PEERS / venv / "bin" / program
    if not path.exists():
        message = f"needs the {venv} peer at {path}: run `make install-peers`"
        if os.environ.get("PITSTOP_REQUIRE_PEERS") == "1":  # CI: a missing peer is a failure, not a skip
            pytest.fail(message)
        pytest.skip(message)
    return path


def documented_json(name: str) -> dict[str, Any]:
    """The JSON block after `<!-- tested: {name} -->` in docs/how-to/remote-models.md: the tests serve
    what the page tells a reader to write."""
    marker = f"<!-- tested: {name} -->"
    text = HOW_TO.read_text(encoding="utf-8")
    assert marker in text, f"{HOW_TO} lost its {marker}"
    block = re.search(r"```json\n(.*?)\n```", text.split(marker, 1)[1], re.S)
    assert block is not None, f"{HOW_TO}: no JSON block after {marker}"
    return dict(json.loads(block.group(1)))


@contextmanager
def mlserver(
    folder: Path, model: Path, models: list[dict[str, Any]], port: int, grpc_port: int
) -> Iterator[str]:
    """`mlserver start` serving `model` (a joblib file) under each of `models` (model-settings), HTTP
    on `port`; no metrics server, no worker processes. Yields its base URL."""
    program = peer_program("mlserver", "mlserver")
    for settings in models:
        home = folder / settings["name"]
        home.mkdir(parents=True)
        (home / "model.joblib").write_bytes(model.read_bytes())
        (home / "model-settings.json").write_text(json.dumps(settings))
    server = {
        "host": "127.0.0.1",
        "http_port": port,
        "grpc_port": grpc_port,
        "metrics_endpoint": None,
        "parallel_workers": 0,
    }
    (folder / "settings.json").write_text(json.dumps(server))
    url = f"http://127.0.0.1:{port}"
    with _running([str(program), "start", str(folder)], folder, f"{url}/v2/health/ready"):
        yield url


@contextmanager
def kserve(folder: Path, model: Path, name: str, port: int, grpc_port: int) -> Iterator[str]:
    """KServe's `ModelServer` serving `model` (a joblib file) as `name` over V1, HTTP on `port`."""
    python = peer_program("kserve", "python")
    command = [
        str(python),
        str(KSERVE_MODEL),
        "--model_name",
        name,
        "--model_path",
        str(model),
        "--http_port",
        str(port),
        "--grpc_port",
        str(grpc_port),
        "--workers",
        "1",
    ]
    url = f"http://127.0.0.1:{port}"
    with _running(command, folder, f"{url}/v1/models/{name}"):
        yield url


def _running(command: list[str], folder: Path, ready_url: str) -> AbstractContextManager[object]:
    """`command` started in `folder` (its output in `folder/server.log`) until `ready_url` answers."""
    return process_answering(
        command, log=folder / "server.log", ready_url=ready_url, cwd=folder, timeout=START_TIMEOUT
    )
