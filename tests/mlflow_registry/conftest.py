"""A real `mlflow server` (SQLite backend, local artifact root) on loopback for every MLflow test, and
a registered model `eta` logged into it: version 1 (a + 10 b) and version 2 (2 a + 10 b), both
scikit-learn models saved with skops, from one run each with parameters, a metric, a dataset input and
a git commit tag."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from pitstop.workspace import Workspace
from serving.conftest import free_port, process_answering

NAME = "eta"  # the MLflow registered model
MODEL = "delivery-eta"  # the pitstop model it is imported into
COMMIT = "0123456789abcdef0123456789abcdef01234567"
FRAME = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 2.0, 1.0]})


@dataclass(frozen=True)
class MlflowServer:
    url: str
    runs: list[str]  # the run id of version 1, of version 2
    folder: Path


@pytest.fixture(scope="package")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    mlflow = Path(sys.executable).with_name("mlflow")
    command = [
        str(mlflow), "server", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
        "--default-artifact-root", str(folder / "artifacts"), "--host", "127.0.0.1",
        "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    env = {  # it runs `uvicorn` by name: this environment's, as an activated venv would find it
        **os.environ,
        "PATH": f"{mlflow.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",  # its webhooks may call pitstop on loopback,
        "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "https,http",  # which serves plain HTTP
        "MLFLOW_WEBHOOK_CACHE_TTL": "1",  # a webhook created by a test is called at once, not in a minute
    }
    url = f"http://127.0.0.1:{port}"
    log = folder / "server.log"  # its start migrates a fresh database: a minute on a busy machine
    with process_answering(command, env=env, log=log, ready_url=f"{url}/health", timeout=300):
        runs = [log_version(url, coefficient) for coefficient in (1.0, 2.0)]
        yield MlflowServer(url, runs, folder)


@pytest.fixture
def ws(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """The test's workspace with the model `delivery-eta` and no tracking URI from the environment."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    workspace.create_model(MODEL, task="regression", target="y", features=["a", "b"])
    return workspace


def log_version(url: str, coefficient: float) -> str:
    """Log `coefficient` a + 10 b as the next version of `eta`; its run id."""
    import mlflow
    from sklearn.linear_model import LinearRegression

    target = coefficient * FRAME["a"] + 10 * FRAME["b"]
    with warnings.catch_warnings():  # MLflow's own notes on type hints, environments and runs
        warnings.simplefilter("ignore")
        mlflow.set_tracking_uri(url)
        try:
            with mlflow.start_run() as run:
                mlflow.log_params({"fit_intercept": "True", "coefficient": str(coefficient)})
                mlflow.log_metric("mae", 0.01 * coefficient)
                data = FRAME.assign(y=target)
                dataset = mlflow.data.from_pandas(data, source="s3://bucket/eta/train.parquet", name="train")
                mlflow.log_input(dataset, context="training")
                mlflow.set_tag("mlflow.source.git.commit", COMMIT)
                mlflow.sklearn.log_model(
                    LinearRegression().fit(FRAME, target),
                    name="model",
                    serialization_format="skops",
                    input_example=FRAME.head(2),
                    pip_requirements=["scikit-learn"],
                    registered_model_name=NAME,
                )
        finally:
            mlflow.set_tracking_uri(None)
    return str(run.info.run_id)
