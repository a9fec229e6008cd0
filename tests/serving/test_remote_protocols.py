"""Remote models in the protocols model servers speak, against real servers on loopback: another
pitstop gateway's Open Inference Protocol endpoints and a real `mlflow models serve` (local env)."""

from __future__ import annotations

import asyncio
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from pitstop.errors import UsageError
from pitstop.http.app import create_app
from pitstop.rollout.routes import route
from pitstop.serving import Gateway, Instance
from pitstop.serving.errors import RemoteModelError
from pitstop.serving.remote import RemoteModel
from pitstop.serving.remote_protocols import Endpoint, RemoteAnswerError
from pitstop.store.tables import predictions
from serving.conftest import MODEL, ROW, Served, free_port, process_answering, running, settings

ROWS = [{"a": 2.0, "b": 1.0}, {"a": -1.0, "b": 0.5}]


def shadow_records(served: Served, remote: int) -> list[tuple[str, float | None, str | None]]:
    """Serve ROWS through a gateway whose shadow is the remote version; its shadow records."""

    async def main() -> None:
        gateway = Gateway(served.ws, poll=False, settings=settings())
        await gateway.start()
        try:
            await gateway.predict(MODEL, [Instance(row, request_id=f"r{i}") for i, row in enumerate(ROWS)])
            await gateway.drain()
        finally:
            await gateway.stop()

    route(served.ws, MODEL, mode="shadow", challenger=remote, reason="remote shadow")
    asyncio.run(main())
    with served.ws.reading() as conn:
        query = sa.select(predictions.c.request_id, predictions.c.prediction, predictions.c.error).where(
            predictions.c.role == "shadow", predictions.c.version == remote
        )
        return sorted((r.request_id, r.prediction, r.error) for r in conn.execute(query))


def test_an_oip_remote_is_checked_then_called_with_its_id_name_and_version(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    # the remote: another pitstop gateway serving the same workspace's champion (v1) over /v2; it
    # does not follow routing (poll=False), or it would shadow the remote version to itself
    with running(create_app(Gateway(served.ws, poll=False, settings=settings()))) as url:
        expected = served.expected(ROWS)
        good = served.register(
            RemoteModel(url, protocol="oip", model_name=MODEL), "oip", skip_check="remote: checked below"
        )
        records = shadow_records(served, good)
        assert [r[0] for r in records] == ["r0", "r1"]
        assert [r[1] for r in records] == pytest.approx(expected) and all(r[2] is None for r in records)
        offline = served.ws.load(MODEL, good).predict(pd.DataFrame(ROWS))
        assert list(offline) == pytest.approx(expected)

        # an answer from another version is that arm's error, never a prediction
        other = served.register(
            RemoteModel(url, protocol="oip", model_name=MODEL, model_version="2"), "v2", skip_check="x"
        )
        with pytest.raises(RemoteModelError, match=r"answered 404: not ready"):
            served.ws.load(MODEL, other).check_ready(["a", "b"])  # v2 is not loaded by that gateway

        # a model the server does not have is never routed to: its load fails, reported
        missing = served.register(
            RemoteModel(url, protocol="oip", model_name="nope"), "nope", skip_check="remote: missing"
        )
        assert shadow_records(served, missing) == []
        assert (
            f"shadow v{missing} not loaded: RemoteModelError: {url}/v2/models/nope/ready answered 404"
            in caplog.text
        )


def test_answers_that_are_not_this_call_s_are_refused() -> None:
    endpoint = Endpoint("oip", "http://h", model_name="eta", model_version="3")
    answer = {
        "id": "c1",
        "model_name": "eta",
        "model_version": "3",
        "outputs": [{"name": "predict", "data": [1, 2]}],
    }
    assert endpoint.read_answer(answer, 2, "c1") == [1.0, 2.0]
    for wrong, why in (
        ({**answer, "id": "c0"}, "not this call"),
        ({**answer, "model_name": "eta2"}, "answered by model"),
        ({**answer, "model_version": "4"}, "answered by version"),
        ({**answer, "outputs": [{"name": "predict", "data": [1]}]}, "1 predictions for 2 rows"),
        ({**answer, "outputs": [{"name": "predict", "data": ["x", 2]}]}, "not a number"),
    ):
        with pytest.raises(RemoteAnswerError, match=why):
            endpoint.read_answer(wrong, 2, "c1")
    assert endpoint.request([ROW], ["a", "b"], "c1")["inputs"][1] == {
        "name": "b",
        "shape": [1],
        "datatype": "FP64",
        "data": [ROW["b"]],
    }
    with pytest.raises(UsageError, match="needs the remote's model_name"):
        RemoteModel("http://h", protocol="oip")
    kserve = Endpoint("kserve-v1", "http://h/", model_name="eta")
    assert kserve.predict_url() == "http://h/v1/models/eta:predict"
    assert kserve.request([ROW], ["b", "a"], "c")["instances"] == [[ROW["b"], ROW["a"]]]


@pytest.fixture(scope="module")
def mlflow_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scikit-learn model saved in MLflow's format (a + 10 b, exactly)."""
    mlflow_sklearn = pytest.importorskip("mlflow.sklearn")
    from sklearn.linear_model import LinearRegression

    frame = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 2.0, 1.0]})
    fitted = LinearRegression().fit(frame, frame["a"] + 10 * frame["b"])
    path = tmp_path_factory.mktemp("mlflow") / "model"
    with warnings.catch_warnings():  # MLflow's own notes on type hints and environments
        warnings.simplefilter("ignore")
        mlflow_sklearn.save_model(
            fitted, str(path), serialization_format="skops", input_example=frame.head(2)
        )
    return path


@pytest.fixture(scope="module")
def mlflow_server(mlflow_model: Path) -> Iterator[str]:
    """`mlflow models serve` on loopback (local env manager: this interpreter, nothing downloaded)."""
    port = free_port()
    mlflow = Path(sys.executable).with_name("mlflow")
    command = [str(mlflow), "models", "serve", "-m", str(mlflow_model), "-p", str(port), "-h", "127.0.0.1"]
    env = {  # it runs `uvicorn` by name: this environment's, as an activated venv would find it
        **os.environ,
        "PATH": f"{mlflow.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_TRACKING_URI": f"file://{mlflow_model.parent / 'runs'}",
    }
    url = f"http://127.0.0.1:{port}"
    log = mlflow_model.parent / "serve.log"
    with process_answering([*command, "--env-manager", "local"], env=env, log=log, ready_url=f"{url}/ping"):
        yield url


def test_an_mlflow_scoring_server_serves_a_shadow(served: Served, mlflow_server: str) -> None:
    version = served.register(RemoteModel(mlflow_server, protocol="mlflow"), "mlflow", skip_check="remote")
    records = shadow_records(served, version)
    assert [r[0] for r in records] == ["r0", "r1"]
    assert [r[1] for r in records] == pytest.approx([2.0 + 10 * 1.0, -1.0 + 10 * 0.5])
    assert list(served.ws.load(MODEL, version).predict(pd.DataFrame(ROWS))) == pytest.approx([12.0, 4.0])
