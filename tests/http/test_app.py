"""The gateway over HTTP, end to end: a real uvicorn on loopback, httpx clients, a real store."""

from __future__ import annotations

import asyncio
import socket
import statistics
import time
from time import perf_counter
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from pitstop.http import oip
from pitstop.http.auth import Access
from pitstop.rollout.routes import route
from pitstop.routing.store import routing_history
from pitstop.store.tables import predictions
from serving.conftest import MODEL, ROW, Served, serving, wait_until

PREDICT = f"/v1/models/{MODEL}/predict"
LABELS = f"/v1/models/{MODEL}/labels"


def stored(served: Served) -> list[Any]:
    with served.ws.reading() as conn:
        return list(conn.execute(sa.select(predictions).order_by(predictions.c.id)))


def test_predicts_one_instance_or_a_batch(served: Served) -> None:
    with serving(served) as client:
        one = client.post(PREDICT, json={"features": ROW, "user_id": "u1", "request_id": "r1"})
        many = client.post(PREDICT, json={"instances": [{"features": ROW}, {"features": {"a": 1, "b": 2}}]})
        table = client.get(f"/v1/models/{MODEL}/routing").json()
    assert one.status_code == 200
    assert one.json() == {
        "request_id": "r1",
        "model": MODEL,
        "model_version": 1,
        "prediction": pytest.approx(served.expected([ROW])[0]),
    }
    assert many.status_code == 200
    answers = many.json()["predictions"]
    assert [a["prediction"] for a in answers] == pytest.approx(served.expected([ROW, {"a": 1, "b": 2}]))
    assert all(len(a["request_id"]) == 32 for a in answers)
    assert (table["version"], table["mode"], table["champion"]) == (0, "off", 1)


def test_bad_input_gets_a_clear_4xx_and_the_server_keeps_serving(served: Served) -> None:
    cases: list[tuple[str, dict[str, Any], int, str]] = [
        (PREDICT, {"content": b"{not json"}, 400, "invalid_json"),
        (PREDICT, {"json": {"user_id": "u1"}}, 422, "features"),
        (PREDICT, {"json": {"features": {"a": 1, "b": 2, "zz": 3}}}, 422, "features.zz"),
        (PREDICT, {"json": {"features": {"a": "fast", "b": None}}}, 422, "features.a"),
        (
            PREDICT,
            {"json": {"instances": [{"features": ROW}, {"features": {"a": 1}}]}},
            422,
            "instances[1].features.b",
        ),
        (
            PREDICT,
            {"json": {"instances": [{"features": ROW, "request_id": "d1"}] * 2}},
            422,
            "instances[1].request_id",
        ),
        ("/v1/models/nope/predict", {"json": {"features": ROW}}, 404, "model_not_served"),
        (
            PREDICT,
            {"content": b'{"features": {"a": 1, "b": 2}, "pad": "' + b"x" * 2000 + b'"}'},
            413,
            "payload_too_large",
        ),
    ]
    with serving(served, max_body_bytes=1024) as client:
        for path, body, status, mention in cases:
            answer = client.post(path, **body)
            assert answer.status_code == status, (path, body, answer.text)
            assert mention in answer.text
            assert client.post(PREDICT, json={"features": ROW}).status_code == 200
        wrong = client.post(PREDICT, json={"features": {"a": "fast", "b": None}}).json()
        metrics = client.get("/metrics").text
    assert wrong["error"] == "invalid_input"
    assert wrong["fields"] == [
        {"field": "features.a", "problem": "expected a number, got the string 'fast'"},
        {"field": "features.b", "problem": "must not be null"},
    ]
    assert 'pitstop_invalid_requests_total{model="eta",status="422"} 6.0' in metrics
    assert 'pitstop_invalid_requests_total{model="-",status="404"} 1.0' in metrics


def test_a_client_gone_before_its_body_is_complete_leaves_no_traceback(
    served: Served, capfd: pytest.CaptureFixture[str]
) -> None:
    """A client that hung up mid-body (a load generator stopping, a timeout) made uvicorn log
    `Exception in ASGI application` with starlette's ClientDisconnect: a traceback for nothing wrong."""
    with serving(served) as client:
        host, port = client.base_url.host, client.base_url.port
        assert port is not None
        for _ in range(3):
            with socket.create_connection((host, port), timeout=5) as raw:
                head = f"POST {PREDICT} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                raw.sendall(f"{head}Content-Length: 200\r\n\r\n".encode() + b'{"features": {"a": 1')
                time.sleep(0.1)  # the server is reading the body
        assert client.post(PREDICT, json={"features": ROW}).status_code == 200
        metrics = client.get("/metrics").text
    logged = capfd.readouterr().err  # uvicorn's loggers do not propagate: read what they wrote
    assert "Traceback" not in logged and "Exception in ASGI application" not in logged, logged
    assert 'pitstop_invalid_requests_total{model="eta",status="400"} 3.0' in metrics


@pytest.mark.parametrize(
    "body",
    [{"json": {}}, {"content": b"{not json"}, {"content": b'{"pad": "' + b"x" * 2000 + b'"}'}],
    ids=["empty", "not-json", "too-large"],
)
def test_an_unknown_model_is_404_whatever_the_body(served: Served, body: dict[str, Any]) -> None:
    with serving(served, max_body_bytes=1024) as client:
        answer = client.post("/v1/models/nope/predict", **body)
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"] == "model_not_served"


def test_a_failing_champion_answers_500_with_the_request_id(served: Served) -> None:
    served.ws.set_champion(MODEL, served.fake("RaisingModel"), reason="test", force=True)
    with serving(served) as client:
        answer = client.post(PREDICT, json={"features": ROW, "request_id": "r-9"})
        assert client.get("/healthz").status_code == 200
    assert answer.status_code == 500
    assert answer.json()["request_id"] == "r-9" and answer.json()["error"] == "prediction_failed"


def test_labels_need_the_bearer_token_when_one_is_configured(served: Served) -> None:
    body = {
        "labels": [
            {"request_id": "r1", "label": 2.5, "time": "2026-03-01T10:00:00Z"},
            {"request_id": "r2", "label": True},
        ]
    }
    with serving(served, api_token="s3cret") as client:
        missing = client.post(LABELS, json=body)
        wrong = client.post(LABELS, json=body, headers={"Authorization": "Bearer nope"})
        right = client.post(LABELS, json=body, headers={"Authorization": "Bearer s3cret"})
        bad = client.post(
            LABELS, json={"labels": [{"request_id": "r3"}]}, headers={"Authorization": "Bearer s3cret"}
        )
    assert (missing.status_code, missing.headers["www-authenticate"]) == (401, "Bearer")
    assert wrong.status_code == 403
    assert right.status_code == 200 and right.json() == {"accepted": 2}
    assert bad.status_code == 422 and bad.json()["fields"] == [
        {"field": "labels[0].label", "problem": "missing"}
    ]


def test_health_readiness_metrics_and_openapi(served: Served) -> None:
    with serving(served) as client:
        client.post(PREDICT, json={"features": ROW, "user_id": "u1"})
        health, ready = client.get("/healthz"), client.get("/readyz")
        detail = client.get("/v1/health")
        metrics = client.get("/metrics")
        spec = client.get("/openapi.json").json()
    assert health.json() == {"status": "ok"}
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "status": "ok", "models": [MODEL], "reasons": [], "degraded": []}
    assert "pitstop_ready 1.0" in metrics.text
    assert detail.status_code == 200 and detail.json()["status"] == "ok"
    assert detail.json()["models"][MODEL]["champion"] == {"version": 1, "status": "ok", "problem": None}
    assert detail.json()["prediction_log"]["status"] == "ok" and detail.json()["store"]["status"] == "ok"
    assert metrics.headers["content-type"].startswith("text/plain")
    for name in (
        "pitstop_predictions_total",
        "pitstop_prediction_latency_seconds_bucket",
        "pitstop_routing_version",
        "pitstop_predlog_queue_depth",
        "pitstop_shadow_timeouts_total",
        "pitstop_batch_rows_bucket",
    ):
        assert name in metrics.text
    assert 'bucketed_by="user"' in metrics.text
    paths = spec["paths"]
    for path in (
        PREDICT.replace(MODEL, "{model}"),
        LABELS.replace(MODEL, "{model}"),
        "/v1/models/{model}/routing",
        "/healthz",
        "/readyz",
        "/v1/health",
        "/metrics",
    ):
        assert path in paths
    body = paths["/v1/models/{model}/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    for ref in body["oneOf"]:
        assert ref["$ref"].rsplit("/", 1)[1] in spec["components"]["schemas"]
    assert "/" not in paths  # left for the dashboard


WRITES = ("post", "put", "patch", "delete")


def test_openapi_declares_the_bearer_token_on_every_write_endpoint(served: Served) -> None:
    with serving(served, api_token="s3cret") as client:
        spec = client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["bearerToken"]["type"] == "http"
    assert spec["components"]["securitySchemes"]["bearerToken"]["scheme"] == "bearer"
    paths = spec["paths"]
    assert paths["/v1/models/{model}/labels"]["post"]["security"] == [{"bearerToken": []}]
    predicting = ("/v1/models/{model}/predict", *oip.INFER_PATHS)
    assert not any("security" in paths[p]["post"] for p in predicting)  # serving users takes no token
    # MLflow's webhooks carry MLflow's signature, not pitstop's token
    assert paths["/v1/mlflow/webhook"]["post"]["security"] == [{"mlflowSignature": []}]
    assert spec["components"]["securitySchemes"]["mlflowSignature"]["name"] == "X-MLflow-Signature"
    for path, operations in paths.items():
        for method, operation in operations.items():
            if method in WRITES and path not in (*predicting, "/v1/mlflow/webhook"):
                assert operation.get("security") == [{"bearerToken": []}], (method, path)
            if method == "get":
                assert "security" not in operation, path
    # the dashboard's JSON is API and documented; its HTML page and script are not
    assert "/v1/dashboard" in paths
    assert "/" not in paths and not any(path.startswith("/static") for path in paths)


def test_openapi_marks_the_token_optional_when_local_writes_are_opted_in(served: Served) -> None:
    with serving(served, access=Access(insecure_local_writes=True)) as client:
        spec = client.get("/openapi.json").json()
        unsigned = client.post(LABELS, json={"labels": [{"request_id": "r1", "label": 1.0}]})
    assert spec["paths"]["/v1/models/{model}/labels"]["post"]["security"] == [{"bearerToken": []}, {}]
    assert unsigned.status_code == 200


def test_a_route_change_reaches_the_running_server_within_the_poll_interval(served: Served) -> None:
    with serving(served) as client:
        table = route(served.ws, MODEL, mode="split", challenger=2, share=1.0, reason="test")
        wait_until(lambda: client.get(f"/v1/models/{MODEL}/routing").json()["version"] == table.version)
        answer = client.post(PREDICT, json={"features": ROW, "user_id": "u1"}).json()
    assert answer["model_version"] == 2


def test_a_forced_champion_is_served_by_a_running_gateway_within_the_poll_interval(served: Served) -> None:
    route(served.ws, MODEL, mode="off", reason="routing rows exist from now on")
    with serving(served) as client:
        assert client.post(PREDICT, json={"features": ROW}).json()["model_version"] == 1
        served.ws.set_champion(MODEL, 2, reason="incident 7", force=True)
        wait_until(lambda: client.get(f"/v1/models/{MODEL}/routing").json()["champion"] == 2)
        answers = [client.post(PREDICT, json={"features": ROW, "user_id": f"u{i}"}).json() for i in range(20)]
    assert {a["model_version"] for a in answers} == {2}


def _latencies(client: httpx.Client, n: int, pause: float = 0.0) -> tuple[list[float], list[float]]:
    answers, seconds = [], []
    for i in range(n):
        started = perf_counter()
        reply = client.post(PREDICT, json={"features": {"a": i / 10, "b": 1.0}})
        seconds.append(perf_counter() - started)
        time.sleep(pause)
        assert reply.status_code == 200
        answers.append(reply.json()["prediction"])
    return answers, seconds


def test_a_slow_shadow_changes_neither_the_answer_nor_its_latency_over_http(served: Served) -> None:
    slow = served.fake("SlowModel", delay=2.0)
    with serving(served, shadow_concurrency=1) as client:
        _latencies(client, 10)  # warm the connection and the model
        baseline, base_seconds = _latencies(client, 40)
        table = route(served.ws, MODEL, mode="shadow", challenger=slow, reason="test")
        # A shadow is routed once its idle-priority process has started and warmed: on a busy machine
        # that child waits for spare CPU, so the bound is generous (it is not a timing assertion).
        wait_until(
            lambda: client.get(f"/v1/models/{MODEL}/routing").json()["version"] == table.version, timeout=60
        )
        answers, seconds = _latencies(client, 40, pause=0.002)  # 80+ ms: several shadow calls (20 ms each)
        metrics = client.get("/metrics").text
    assert answers == baseline
    assert statistics.median(seconds) < 2 * statistics.median(base_seconds) + 0.005
    assert f'pitstop_shadow_skipped_total{{model="eta",reason="saturated",version="{slow}"}}' in metrics


def test_switching_routing_under_steady_load_fails_no_request(served: Served) -> None:
    steps = [
        ("shadow", None),
        ("split", 0.2),
        ("split", 0.6),
        ("off", None),
        ("shadow", None),
        ("split", 0.4),
    ]

    statuses: list[int] = []

    async def load(url: str, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:

            async def user(k: int) -> None:
                i = 0
                while not stop.is_set():
                    reply = await client.post(PREDICT, json={"features": ROW, "user_id": f"u{k}-{i % 5}"})
                    statuses.append(reply.status_code)
                    i += 1

            await asyncio.gather(*(user(k) for k in range(6)))

    async def scenario(url: str) -> None:
        stop = asyncio.Event()
        clients = asyncio.create_task(load(url, stop))
        async with httpx.AsyncClient(base_url=url) as probe:
            for mode, share in steps:
                challenger = None if mode == "off" else 2
                table = await asyncio.to_thread(
                    route, served.ws, MODEL, mode=mode, challenger=challenger, share=share, reason="load"
                )
                while (await probe.get(f"/v1/models/{MODEL}/routing")).json()["version"] != table.version:
                    await asyncio.sleep(0.02)
                served_so_far = len(statuses)
                while len(statuses) < served_so_far + 20:  # some traffic on every table
                    await asyncio.sleep(0.01)
        stop.set()
        await clients

    with serving(served) as client:
        asyncio.run(scenario(str(client.base_url)))
    assert len(statuses) >= 120 and set(statuses) == {200}
    with served.ws.reading() as conn:
        versions = {t.version: t for t in routing_history(conn, served.ws.model(MODEL).id)}
    records = stored(served)
    assert len([r for r in records if r.role == "served"]) >= len(statuses)
    for record in records:
        if record.routing_version == 0:
            assert (record.version, record.role) == (1, "served")
            continue
        table = versions[record.routing_version]
        if record.role == "served":
            assert record.version == table.route(record.user_id, record.request_id).version
        else:
            assert record.version == table.shadow


JSON_TYPE = {"Content-Type": "application/json"}


def test_every_error_has_the_same_shape_even_from_the_router_or_the_json_parser(served: Served) -> None:
    """A new user got `{"detail": "Not Found"}` for an unknown path, and 422 "invalid request" for an
    override whose body was not JSON, where predict and labels answer 400 invalid_json."""
    cases = [
        ("GET", "/v3/nothing", {}, 404, "not_found"),
        ("GET", PREDICT, {}, 405, "method_not_allowed"),
        (
            "POST",
            f"/v1/models/{MODEL}/rollout/abort",
            {"content": b"{", "headers": JSON_TYPE},
            400,
            "invalid_json",
        ),
    ]
    with serving(served) as client:
        for method, path, body, status, code in cases:
            answer = client.request(method, path, **body)
            assert answer.status_code == status, (path, answer.text)
            assert answer.json()["error"] == code, answer.text
            assert answer.json()["message"], answer.text
        assert client.post(PREDICT, json={"features": ROW}).status_code == 200
