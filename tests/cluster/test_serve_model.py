"""`pitstop serve-model`, way B's runner: one registered version alone over the Open Inference
Protocol, started as the runner image starts it (a real uvicorn on loopback), called as the gateway in
front calls it, through a `RemoteModel(protocol="oip")`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from pitstop.serving.errors import RemoteModelError
from pitstop.serving.remote import RemoteModel
from pitstop.store.tables import predictions
from serving.conftest import MODEL, Served, free_port, process_answering, served

ROWS = [{"a": 2.0, "b": 1.0}, {"a": -1.0, "b": 0.5}]
__all__ = ["served"]  # the fixture


def test_serve_model_serves_its_version_to_a_remote_model_and_records_nothing(
    served: Served, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "pitstop", "serve-model", MODEL, "2", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workspace", str(served.ws.path), "--log-level", "warning"]
    log = tmp_path / "serve-model.log"
    with process_answering(command, env=dict(os.environ), log=log, ready_url=f"{url}/v2/health/ready"):
        remote = RemoteModel(url, protocol="oip", model_name=MODEL, model_version="2")
        version = served.register(remote, "runner", skip_check="remote: the runner checked below")
        loaded = served.ws.load(MODEL, version)
        loaded.check_ready(["a", "b"])
        frame = pd.DataFrame(ROWS)
        expected = served.ws.load(MODEL, 2).predict(frame)
        assert list(loaded.predict(frame)) == pytest.approx(list(expected))

        other = served.register(
            RemoteModel(url, protocol="oip", model_name=MODEL, model_version="1"), "v1", skip_check="x"
        )
        with pytest.raises(RemoteModelError, match=r"answered 404"):
            served.ws.load(MODEL, other).check_ready(["a", "b"])  # the runner serves version 2 only
    with served.ws.reading() as conn:
        recorded = conn.scalar(sa.select(sa.func.count()).select_from(predictions))
    assert recorded == 0, "the gateway in front records predictions, never the runner"


def test_serve_model_refuses_a_version_that_is_not_registered(served: Served, cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("serve-model", MODEL, "9", "--workspace", str(served.ws.path))
    assert result.exit_code != 0
    assert "9" in result.stderr
