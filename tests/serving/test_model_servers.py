"""Versions served by real model servers on loopback: MLServer over the Open Inference Protocol and
KServe's model server over KServe V1, each started once per session (`tests/model_servers.py`)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import joblib
import pandas as pd
import pytest

import model_servers
from helpers import fit_regression_artifact, write_regression_csv
from pitstop.rollout.routes import route
from pitstop.serving import Gateway, Instance
from pitstop.serving.errors import RemoteModelError
from pitstop.serving.remote import RemoteModel, RemoteRunner
from pitstop.serving.remote_protocols import Endpoint
from serving.conftest import MODEL, Served, free_port, settings
from serving.test_gateway import records, run_with_metrics
from serving.test_remote_protocols import ROWS, shadow_records

FEATURES = ["a", "b"]
PATIENT = "10s"  # the shadow timeout where a server on a busy machine must answer, not be timed out
pytestmark = pytest.mark.xdist_group("model-servers")  # one process: each server starts once (make test)


@pytest.fixture(scope="session")
def peer_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The served fixture's champion, fitted again (the same data, so the same model): a joblib file."""
    folder = tmp_path_factory.mktemp("peer-model")
    return fit_regression_artifact(write_regression_csv(folder / "train.csv"), folder / "model.joblib")


@pytest.fixture(scope="session")
def mlserver(tmp_path_factory: pytest.TempPathFactory, peer_model: Path) -> Iterator[str]:
    """MLServer serving the model as the how-to's `fare` version 3; as `fare-slow`, whose adaptive
    batching holds every request for a second, waiting for company (a slow model, by its own settings);
    and as `fare-tensor`, taking one tensor `x` of shape [rows, 2] (its `np` content type)."""
    fare = model_servers.documented_json("mlserver model-settings.json")  # `fare` version 3
    slow = {**fare, "name": "fare-slow", "max_batch_size": 1000, "max_batch_time": 1.0}
    tensor = {**fare, "name": "fare-tensor", "inputs": [{"name": "x", "datatype": "FP64", "shape": [-1, 2]}]}
    models = [fare, {**slow, "parameters": {**fare["parameters"], "version": "1"}}, tensor]
    folder = tmp_path_factory.mktemp("mlserver")
    with model_servers.mlserver(folder, peer_model, models, free_port(), free_port()) as url:
        yield url


@pytest.fixture(scope="session")
def kserve(tmp_path_factory: pytest.TempPathFactory, peer_model: Path) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("kserve")
    with model_servers.kserve(folder, peer_model, "fare", free_port(), free_port()) as url:
        yield url


def in_process(model: Path, rows: list[dict[str, float]]) -> list[float]:
    return [float(v) for v in joblib.load(model).predict(pd.DataFrame(rows, columns=FEATURES))]


class Recorder:
    """An httpx event hook keeping each request's headers and JSON body."""

    def __init__(self) -> None:
        self.requests: list[tuple[httpx.Headers, Any]] = []

    async def request(self, request: httpx.Request) -> None:
        self.requests.append((request.headers, json.loads(request.content)))


async def _runner_calls(
    endpoint: Endpoint, batches: list[list[dict[str, float]]]
) -> tuple[list[Any], Recorder]:
    """Submit each batch (ids r0, r1, … across them) at once to a RemoteRunner; results and calls."""
    recorder = Recorder()
    client = httpx.AsyncClient(timeout=10, event_hooks={"request": [recorder.request]})
    runner = RemoteRunner(endpoint.url, version=9, endpoint=endpoint, features=FEATURES, client=client,
                          max_batch_wait=0.05)  # fmt: skip
    ids = iter(f"r{i}" for i in range(100))
    try:
        futures = [runner.submit(rows, request_ids=[next(ids) for _ in rows]) for rows in batches]
        results = await asyncio.gather(*futures)
    finally:
        await runner.close()
        await client.aclose()
    return results, recorder


# --- MLServer: the Open Inference Protocol ------------------------------------------------------------


def test_an_mlserver_version_passes_its_checks_and_shadows_as_the_in_process_model(
    served: Served, mlserver: str
) -> None:
    remote = RemoteModel(mlserver, protocol="oip", model_name="fare", model_version="3")
    version = served.register(remote, "fare")  # the door check calls it too
    records = shadow_records(served, version, PATIENT)
    assert [r[0] for r in records] == ["r0", "r1"]
    assert [r[1] for r in records] == pytest.approx(served.expected(ROWS)) and all(
        r[2] is None for r in records
    )
    offline = served.ws.load(MODEL, version).predict(pd.DataFrame(ROWS))
    assert list(offline) == pytest.approx(served.expected(ROWS))


def test_mlserver_takes_the_rows_as_one_tensor_too(served: Served, mlserver: str) -> None:
    remote = RemoteModel(mlserver, protocol="oip", model_name="fare-tensor", tensor_input="x")
    version = served.register(remote, "tensor")
    records = shadow_records(served, version, PATIENT)
    assert [(r[0], r[2]) for r in records] == [("r0", None), ("r1", None)]
    assert [r[1] for r in records] == pytest.approx(served.expected(ROWS))
    with pytest.raises(RemoteModelError, match="it has no input 'features' \\(it has x\\)"):
        RemoteModel(mlserver, protocol="oip", model_name="fare-tensor", tensor_input="features").check_ready(
            FEATURES
        )


def test_mlserver_s_metadata_is_checked_against_the_version_s_features(mlserver: str) -> None:
    RemoteModel(mlserver, protocol="oip", model_name="fare", model_version="3").check_ready(FEATURES)
    with pytest.raises(RemoteModelError, match="its inputs lack the features c"):
        RemoteModel(mlserver, protocol="oip", model_name="fare").check_ready(["a", "c"])
    with pytest.raises(RemoteModelError, match=r"/v2/models/fare/versions/4/ready answered 404: not ready"):
        RemoteModel(mlserver, protocol="oip", model_name="fare", model_version="4").check_ready(FEATURES)
    with pytest.raises(RemoteModelError, match=r"/v2/models/taxi/ready answered 404: not ready"):
        RemoteModel(mlserver, protocol="oip", model_name="taxi").check_ready(FEATURES)


def test_requests_reaching_mlserver_together_are_one_call_carrying_their_ids(
    peer_model: Path, mlserver: str
) -> None:
    rows = [{"a": float(i), "b": 1.0 - i} for i in range(5)]
    endpoint = Endpoint("oip", mlserver, "fare", "3")
    results, recorder = asyncio.run(_runner_calls(endpoint, [[row] for row in rows]))
    assert [r[0] for r in results] == pytest.approx(in_process(peer_model, rows))
    [(headers, body)] = recorder.requests  # one call, the batch on the first dimension
    assert [i["shape"] for i in body["inputs"]] == [[5], [5]]
    assert body["id"] == "r0" and body["parameters"]["request_ids"] == [f"r{i}" for i in range(5)]
    assert "x-request-id" not in headers  # a batch has no one id

    _, recorder = asyncio.run(_runner_calls(endpoint, [rows[:1]]))
    [(headers, body)] = recorder.requests
    assert headers["x-request-id"] == body["id"] == "r0"


def test_an_mlserver_answer_for_another_model_is_that_arm_s_error(mlserver: str) -> None:
    # a name the server routes to another model (an alias behind a proxy, a typo'd route): refused
    endpoint = Endpoint("oip", mlserver, "fare", "3")
    mislabelled = Endpoint("oip", mlserver, "fare-slow")
    answer = httpx.post(
        mislabelled.predict_url(), json=mislabelled.request(ROWS, FEATURES, ["x0", "x1"]), timeout=10
    ).json()
    with pytest.raises(ValueError, match="answered by model 'fare-slow', not 'fare'"):
        endpoint.read_answer(answer, ["x0", "x1"])
    with pytest.raises(ValueError, match="not this call's 'y0'"):
        mislabelled.read_answer(answer, ["y0", "y1"])


def test_a_slow_mlserver_shadow_times_out_then_its_circuit_opens(served: Served, mlserver: str) -> None:
    slow = served.register(
        RemoteModel(mlserver, protocol="oip", model_name="fare-slow"), "slow", skip_check="slow on purpose"
    )
    route(served.ws, MODEL, mode="shadow", challenger=slow, reason="a slow remote shadow")

    async def body(gateway: Gateway) -> None:
        gateway.shadow.breaker_failures, gateway.shadow.probe_every = 2, 100
        for i in range(6):
            await gateway.predict(MODEL, [Instance(ROWS[i % 2], request_id=f"r{i}")])
            await gateway.drain()  # each call's outcome is in before the next request

    _, metrics = run_with_metrics(served, body, settings=settings(shadow_timeout="300ms"))
    shadow = records(served, role="shadow", version=slow)
    assert [(r.request_id, r.prediction, r.error) for r in shadow] == [
        ("r0", None, "timeout after 0.3s"),
        ("r1", None, "timeout after 0.3s"),
    ]
    skipped = re.search(r'pitstop_shadow_skipped_total\{[^}]*reason="circuit_open"[^}]*\} ([0-9.]+)', metrics)
    assert skipped is not None and float(skipped.group(1)) == 4
    assert len(records(served, role="served")) == 6


# --- KServe V1 ------------------------------------------------------------------------------------------


def test_a_kserve_v1_version_shadows_as_the_in_process_model(served: Served, kserve: str) -> None:
    version = served.register(RemoteModel(kserve, protocol="kserve-v1", model_name="fare"), "kserve")
    records = shadow_records(served, version, PATIENT)
    assert [r[0] for r in records] == ["r0", "r1"]
    assert [r[1] for r in records] == pytest.approx(served.expected(ROWS)) and all(
        r[2] is None for r in records
    )
    with pytest.raises(RemoteModelError, match=r"/v1/models/taxi answered 404: not ready"):
        RemoteModel(kserve, protocol="kserve-v1", model_name="taxi").check_ready(FEATURES)


def test_kserve_v1_calls_are_batched_and_a_single_row_carries_its_id(peer_model: Path, kserve: str) -> None:
    rows = [{"a": float(i), "b": 2.0 * i} for i in range(4)]
    endpoint = Endpoint("kserve-v1", kserve, "fare")
    results, recorder = asyncio.run(_runner_calls(endpoint, [[row] for row in rows]))
    assert [r[0] for r in results] == pytest.approx(in_process(peer_model, rows))
    [(_, body)] = recorder.requests
    assert body == {"instances": [[row["a"], row["b"]] for row in rows]}
    _, recorder = asyncio.run(_runner_calls(endpoint, [rows[:1]]))
    assert recorder.requests[0][0]["x-request-id"] == "r0"
