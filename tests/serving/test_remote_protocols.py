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
from serving.conftest import MODEL, ROW, Served, free_port, process_answering, running, settings, wait_until

ROWS = [{"a": 2.0, "b": 1.0}, {"a": -1.0, "b": 0.5}]


def shadow_records(
    served: Served, remote: int, shadow_timeout: str = "300ms"
) -> list[tuple[str, float | None, str | None]]:
    """Serve ROWS through a gateway whose shadow is the remote version; its shadow records.

    No shadow request is also timed (`serving.shadow_timing_sample`): a timing call would send the
    remote a request a second time, under a routing salt drawn anew by each `route`, so in about one
    run in twenty the remote logged an id three times."""

    async def main() -> None:
        chosen = settings(shadow_timeout=shadow_timeout, shadow_timing_sample=0.0)
        gateway = Gateway(served.ws, poll=False, settings=chosen)
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
        remote_logged(served)  # and echoed them: read_answer checks parameters.request_ids
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


def remote_logged(served: Served) -> None:
    """Wait until the remote gateway, which shares the store, has logged the requests it was sent
    under their ids: this gateway's served records and the remote's, the same ids twice."""
    try:
        wait_until(lambda: served_ids(served) == ["r0", "r0", "r1", "r1"], timeout=20)
    except AssertionError:
        raise AssertionError(f"served records: {served_ids(served)}") from None


def served_ids(served: Served) -> list[str]:
    """The ids of served records of the test's requests (r0, r1…), not of warm-up calls (hex ids)."""
    with served.ws.reading() as conn:
        query = sa.select(predictions.c.request_id).where(predictions.c.role == "served")
        return sorted(rid for rid in conn.scalars(query) if rid.startswith("r"))


def test_a_pitstop_remote_gets_each_request_s_id(served: Served) -> None:
    with running(create_app(Gateway(served.ws, poll=False, settings=settings()))) as url:
        remote = RemoteModel(f"{url}/v1/models/{MODEL}/predict")
        version = served.register(remote, "pitstop", skip_check="remote: the same workspace")
        records = shadow_records(served, version, shadow_timeout="10s")
        assert [r[0] for r in records] == ["r0", "r1"]
        assert [r[1] for r in records] == pytest.approx(served.expected(ROWS))
        remote_logged(served)


def test_answers_that_are_not_this_call_s_are_refused() -> None:
    endpoint = Endpoint("oip", "http://h", model_name="eta", model_version="3")
    answer = {
        "id": "c1",
        "model_name": "eta",
        "model_version": "3",
        "outputs": [{"name": "predict", "data": [1, 2]}],
    }
    ids = ["c1", "c2"]
    assert endpoint.read_answer(answer, ids) == [1.0, 2.0]
    echoed = {**answer, "parameters": {"request_ids": ids}}  # as a pitstop gateway answers
    assert endpoint.read_answer(echoed, ids) == [1.0, 2.0]
    for wrong, why in (
        ({**answer, "id": "c0"}, "not this call"),
        ({**answer, "model_name": "eta2"}, "answered by model"),
        ({**answer, "model_version": "4"}, "answered by version"),
        ({**answer, "outputs": [{"name": "predict", "data": [1]}]}, "1 predictions for 2 rows"),
        ({**answer, "outputs": [{"name": "predict", "data": ["x", 2]}]}, "not a number"),
        ({**answer, "parameters": {"request_ids": ["c1", "c3"]}}, "row 1 answers request 'c3', not 'c2'"),
        ({**answer, "parameters": {"request_ids": ["c1"]}}, "not one per row"),
    ):
        with pytest.raises(RemoteAnswerError, match=why):
            endpoint.read_answer(wrong, ids)
    pitstop = Endpoint("pitstop", "http://h/v1/models/eta/predict")
    assert pitstop.request([ROW], ["a", "b"], ["c1"]) == {
        "instances": [{"features": ROW, "request_id": "c1"}]
    }
    mixed = {
        "predictions": [{"request_id": "c2", "prediction": 1.0}, {"request_id": "c1", "prediction": 2.0}]
    }
    with pytest.raises(RemoteAnswerError, match="row 0 answers request 'c2', not 'c1'"):
        pitstop.read_answer(mixed, ids)
    assert endpoint.headers(["c1"]) == {"X-Request-ID": "c1"} and endpoint.headers(ids) == {}
    assert endpoint.request([ROW], ["a", "b"], ["c1"])["inputs"][1] == {
        "name": "b",
        "shape": [1],
        "datatype": "FP64",
        "data": [ROW["b"]],
    }
    with pytest.raises(UsageError, match="needs the remote's model_name"):
        RemoteModel("http://h", protocol="oip")
    with pytest.raises(UsageError, match="tensor_input names an oip model's one input"):
        RemoteModel("http://h", protocol="kserve-v1", model_name="eta", tensor_input="x")
    tensor = Endpoint("oip", "http://h", model_name="eta", tensor_input="x")
    assert tensor.request([ROW, ROW], ["b", "a"], ids)["inputs"] == [
        {"name": "x", "shape": [2, 2], "datatype": "FP64", "data": [[ROW["b"], ROW["a"]]] * 2}
    ]
    kserve = Endpoint("kserve-v1", "http://h/", model_name="eta")
    assert kserve.predict_url() == "http://h/v1/models/eta:predict"
    assert kserve.request([ROW], ["b", "a"], ["c"])["instances"] == [[ROW["b"], ROW["a"]]]
    # MLServer lists no versions in its metadata, whichever it serves: that says nothing
    assert endpoint.metadata_problems({"name": "eta", "versions": [], "inputs": []}, ["a"]) == []
    assert endpoint.metadata_problems({"name": "eta", "versions": ["2"]}, ["a"]) == [
        "it serves versions ['2'], not '3'"
    ]


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
