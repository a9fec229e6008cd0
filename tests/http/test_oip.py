"""The Open Inference Protocol (KServe V2) on a real gateway, spoken by a real OIP client library
(`tritonclient.http`, as Triton's and KServe's users call servers) and by raw HTTP for its errors."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import sqlalchemy as sa
from tritonclient.http import InferenceServerClient, InferenceServerException, InferInput

from pitstop.store.tables import predictions
from serving.conftest import MODEL, Served, serving, wait_until

ROWS = [{"a": 0.5, "b": -1.0}, {"a": -2.0, "b": 0.25}, {"a": 1.5, "b": 3.0}]


def v1_predictions(client: httpx.Client, rows: list[dict[str, float]], user: str) -> list[tuple[float, int]]:
    """What pitstop's own API answers for the same rows and user: (prediction, version)."""
    body = {"instances": [{"features": row, "user_id": user} for row in rows]}
    answer = client.post(f"/v1/models/{MODEL}/predict", json=body).json()["predictions"]
    return [(p["prediction"], p["model_version"]) for p in answer]


def oip_client(client: httpx.Client) -> InferenceServerClient:
    return InferenceServerClient(url=str(client.base_url).removeprefix("http://").rstrip("/"))


def column_inputs(rows: list[dict[str, float]]) -> list[InferInput]:
    inputs = []
    for name in ("a", "b"):
        tensor = InferInput(name, [len(rows)], "FP64")
        tensor.set_data_from_numpy(np.array([row[name] for row in rows], dtype=np.float64), binary_data=False)
        inputs.append(tensor)
    return inputs


def test_an_oip_client_checks_health_reads_metadata_and_infers_one_input_per_feature(served: Served) -> None:
    with serving(served) as client:
        triton = oip_client(client)
        assert triton.is_server_live() and triton.is_server_ready() and triton.is_model_ready(MODEL)
        meta = triton.get_model_metadata(MODEL)
        assert meta["name"] == MODEL and meta["versions"] == ["1"]
        assert meta["inputs"] == [
            {"name": "a", "datatype": "FP64", "shape": [-1]},
            {"name": "b", "datatype": "FP64", "shape": [-1]},
        ]
        result = triton.infer(MODEL, column_inputs(ROWS), request_id="req-1", parameters={"user_id": "u7"})
        answer = result.get_response()
        assert answer["id"] == "req-1" and answer["model_version"] == "1"
        assert answer["parameters"]["request_ids"] == ["req-1-0", "req-1-1", "req-1-2"]
        same = v1_predictions(client, ROWS, "u7")
        assert result.as_numpy("prediction").tolist() == pytest.approx([p for p, _ in same])

    # every row logged under its request id, as /v1 predict logs it: labels join on them
    def logged() -> list[str]:
        with served.ws.reading() as conn:
            query = sa.select(predictions.c.request_id).where(predictions.c.request_id.like("req-1-%"))
            return sorted(conn.execute(query).scalars())

    wait_until(lambda: logged() == ["req-1-0", "req-1-1", "req-1-2"])


def test_one_tensor_of_all_features_and_a_header_user_follow_the_sticky_split(served: Served) -> None:
    served.ws.route(MODEL, mode="split", challenger=2, share=0.5, reason="split users")
    with serving(served) as client:
        wait_until(lambda: client.get(f"/v1/models/{MODEL}/routing").json()["challenger_share"] == 0.5)
        triton = oip_client(client)
        tensor = InferInput("features", [len(ROWS), 2], "FP32")
        tensor.set_data_from_numpy(
            np.array([[r["a"], r["b"]] for r in ROWS], dtype=np.float32), binary_data=False
        )
        versions = set()
        for user in (f"user-{i}" for i in range(12)):
            answer = triton.infer(MODEL, [tensor], headers={"X-User-ID": user}).get_response()
            same = v1_predictions(client, ROWS, user)
            assert answer["parameters"]["model_versions"] == [v for _, v in same]  # the same arm
            assert answer["outputs"][0]["data"] == pytest.approx([p for p, _ in same], rel=1e-6)
            versions.add(answer["model_version"])
        assert versions == {"1", "2"}  # both arms served someone
        with pytest.raises(InferenceServerException, match="routes each request"):
            triton.infer(MODEL, [tensor], model_version="2")


def post(client: httpx.Client, path: str, body: Any) -> tuple[int, dict[str, Any]]:
    reply = client.post(path, json=body)
    return reply.status_code, reply.json()


def test_bad_requests_get_the_protocol_s_error_naming_the_field(served: Served) -> None:
    infer = f"/v2/models/{MODEL}/infer"
    one = {"name": "a", "shape": [1], "datatype": "FP64", "data": [1.0]}
    with serving(served) as client:
        status, body = post(client, infer, {"inputs": [one]})
        assert status == 400 and list(body) == ["error"] and "missing features: b" in body["error"]
        status, body = post(client, infer, {"inputs": [{**one, "shape": [2]}, {**one, "name": "b"}]})
        assert status == 400 and "inputs[0].data: holds 1 values, shape [2] needs 2" in body["error"]
        status, body = post(client, infer, {"inputs": [{**one, "name": "c"}, one]})
        assert status == 400 and "inputs[0].name: 'c' is not a feature" in body["error"]
        status, body = post(client, infer, {"inputs": [one, {**one, "name": "b", "data": ["x"]}]})
        assert status == 400 and "b" in body["error"] and list(body) == ["error"]  # the schema's check
        status, body = post(client, infer, {"inputs": []})
        assert status == 400 and "inputs" in body["error"]
        for datatype in ({"x": 1}, ["FP64"], 7):  # not a name: an object once raised TypeError (500)
            status, body = post(client, infer, {"inputs": [{**one, "datatype": datatype}]})
            assert status == 400 and "inputs[0].datatype: must be one of" in body["error"]
        two = [
            {**one, "shape": [2], "data": [1.0, 2.0]},
            {**one, "name": "b", "shape": [2], "data": [1.0, 2.0]},
        ]
        for ids, why in (
            (["r1"], "must be a list of 2 strings (one per row)"),
            (["r1", "r1"], "must not repeat"),
        ):
            status, body = post(client, infer, {"inputs": two, "parameters": {"request_ids": ids}})
            assert status == 400 and f"parameters.request_ids: {why}" in body["error"]
        status, body = post(client, "/v2/models/nope/infer", {"inputs": [one]})
        assert status == 404 and "'nope' is not served here" in body["error"]
        assert client.get(f"/v2/models/{MODEL}/versions/9/ready").status_code == 404
        assert client.post(infer, content=b"{not json").status_code == 400
        # a pinned version is served while routing sends every user to it
        pinned = {"inputs": [one, {**one, "name": "b"}]}
        status, body = post(client, f"/v2/models/{MODEL}/versions/1/infer", pinned)
        assert status == 200 and body["model_version"] == "1"
        assert client.get("/v2").json()["name"] == "pitstop"


def test_the_how_to_page_s_example_runs_against_a_gateway(served: Served) -> None:
    """docs/how-to/oip.md's tritonclient example, as written, pointed at a gateway on loopback."""
    page = (Path(__file__).resolve().parents[2] / "docs" / "how-to" / "oip.md").read_text(encoding="utf-8")
    [example] = re.findall(r"^```python\n(.*?)^```", page, re.M | re.S)
    assert 'client.infer("eta"' in example and MODEL == "eta"
    scope: dict[str, Any] = {}
    with serving(served) as client:
        address = str(client.base_url).removeprefix("http://").rstrip("/")
        exec(example.replace("127.0.0.1:8000", address), scope)
    result = scope["result"]
    assert len(result.as_numpy("prediction")) == 2
    answer = result.get_response()["parameters"]
    assert answer["request_ids"] == ["order-17-0", "order-17-1"] and answer["model_versions"] == [1, 1]
