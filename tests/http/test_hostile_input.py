"""Hostile input at the HTTP edge (issue 16, row 3): every value a client can send is answered in the
documented JSON shape, with a 4xx naming the field, and the same connection keeps serving.

Each input here answered a plain-text 500 (or a 503, or a 200 that later wedged the prediction log)
before the edge checked it; they run on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from pitstop.config import ServingSettings
from pitstop.http.app import create_app
from pitstop.serving import Gateway
from pitstop.store.tables import predictions
from serving.conftest import MODEL, Served, running, wait_until

TOKEN = "edge-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROW = {"a": 0.5, "b": -1.0}
PREDICT = f"/v1/models/{MODEL}/predict"
LABELS = f"/v1/models/{MODEL}/labels"
ROLLOUT = f"/v1/models/{MODEL}/rollout"
JSON_TYPE = {"Content-Type": "application/json"}


@contextmanager
def serving(served: Served) -> Iterator[httpx.Client]:
    gateway = Gateway(served.ws, settings=ServingSettings.model_validate({"log_flush_interval": "50ms"}))
    with (
        running(create_app(gateway, api_token=TOKEN)) as url,
        httpx.Client(base_url=url, timeout=10, headers=AUTH) as client,
    ):
        yield client


def raw(text: str) -> dict[str, Any]:
    """A body sent as written: JSON escapes such as a lone surrogate reach the server unchanged."""
    return {"content": text.encode(), "headers": JSON_TYPE}


def check_refusals(client: httpx.Client, cases: list[tuple[str, str, dict[str, Any], int, str]]) -> None:
    """Each case answers its 4xx in the documented shape naming the field; a good request follows."""
    failures = []
    for method, path, body, status, field in cases:
        answer = client.request(method, path, **body)
        try:
            shape = answer.json()
        except ValueError:
            shape = {}
        fields = [f["field"] for f in shape.get("fields") or []]
        named = shape.get("error") == field or any(f == field or f.endswith(f".{field}") for f in fields)
        if answer.status_code != status or not shape.get("message") or not named:
            failures.append(f"{method} {path} {str(body)[:80]}: {answer.status_code} {answer.text[:200]}")
        after = client.post(PREDICT, json={"features": ROW})
        if after.status_code != 200:
            failures.append(f"after {str(body)[:80]}: {after.status_code} {after.text[:200]}")
    assert not failures, "\n".join(failures)


def test_hostile_predict_bodies_are_refused_naming_the_field(served: Served) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    cases = [
        ("POST", PREDICT, raw(deep), 400, "invalid_json"),
        ("POST", PREDICT, raw('{"features": {"a": 1, "b": 2}, "user_id": "\\udfff-x"}'), 422, "user_id"),
        (
            "POST",
            PREDICT,
            raw('{"features": {"a": 1, "b": 2}, "request_id": "\\udfff-x"}'),
            422,
            "request_id",
        ),
        ("POST", PREDICT, {"json": {"features": ROW, "user_id": "u\x00"}}, 422, "user_id"),
        ("POST", PREDICT, {"json": {"features": ROW, "request_id": "r\x1b[31m"}}, 422, "request_id"),
        ("POST", PREDICT, {"json": {"features": ROW, "request_id": ""}}, 422, "request_id"),
        ("POST", PREDICT, {"json": {"features": ROW, "user_id": "u" * 201}}, 422, "user_id"),
        ("POST", PREDICT, {"json": {"features": {}}}, 422, "features.a"),
        ("POST", PREDICT, raw('{"features": {"a": 1, "b": 2, "\\udfff": 3}}'), 422, "features.\udfff"),
        ("POST", PREDICT, {"json": {"features": {"a": 10**400, "b": 2}}}, 422, "features.a"),
    ]
    with serving(served) as client:
        check_refusals(client, cases)
        # Each refusal was followed by a good request: every one of those reaches the prediction log
        wait_until(lambda: logged(served) == len(cases))


def logged(served: Served) -> int:
    with served.ws.reading() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(predictions)).scalar_one())


def test_hostile_labels_are_refused_naming_the_field(served: Served) -> None:
    def label(**fields: Any) -> dict[str, Any]:
        return {"json": {"labels": [{"request_id": "r1", "label": 1.0, **fields}]}}

    cases = [
        ("POST", LABELS, label(time=1e20), 422, "labels[0].time"),
        ("POST", LABELS, label(time=-1e20), 422, "labels[0].time"),
        ("POST", LABELS, label(time="0001-01-01T00:00:00+01:00"), 422, "labels[0].time"),
        ("POST", LABELS, label(time="9999-12-31T23:59:59-01:00"), 422, "labels[0].time"),
        ("POST", LABELS, label(label=int("9" * 401)), 422, "labels[0].label"),
        ("POST", LABELS, label(request_id="r\x00"), 422, "labels[0].request_id"),
        ("POST", LABELS, label(request_id=""), 422, "labels[0].request_id"),
        ("POST", LABELS, label(request_id="r" * 201), 422, "labels[0].request_id"),
        (
            "POST",
            LABELS,
            raw('{"labels": [{"request_id": "\\udfff-x", "label": 1}]}'),
            422,
            "labels[0].request_id",
        ),
        ("POST", LABELS, raw('{"labels": [{"request_id": "r", "label": 1}], "\\ud800": 1}'), 422, "\ud800"),
        ("POST", LABELS, raw("{" * 100_000), 400, "invalid_json"),
    ]
    with serving(served) as client:
        check_refusals(client, cases)
        assert client.post(LABELS, **label(time="2026-01-01T00:00:00+01:00")).status_code == 200


def test_hostile_rollout_queries_and_overrides_are_refused_naming_the_field(served: Served) -> None:
    served.ws.start_rollout(MODEL, 2, skip_gate=True, reason="test")
    rollback = f"{ROLLOUT}/rollback"
    cases = [
        ("GET", f"{ROLLOUT}?rollout={2**63}", {}, 422, "rollout"),
        ("GET", f"{ROLLOUT}?rollout=-{2**63 + 1}", {}, 422, "rollout"),
        ("GET", "/v1/models/e%00ta/rollout", {}, 422, "model"),
        ("POST", "/v1/models/e%00ta/rollout/abort", {"json": {"reason": "r"}}, 422, "model"),
        ("GET", f"/v1/models/{'m' * 201}/rollout", {}, 422, "model"),
        ("POST", rollback, {"json": {"reason": "r", "by": "x" * 201}}, 422, "by"),
        ("POST", rollback, {"json": {"reason": "r", "by": "ops\x00"}}, 422, "by"),
        ("POST", rollback, raw('{"reason": "r", "by": "\\udfff"}'), 422, "by"),
        ("POST", rollback, {"json": {"reason": "bad\x1f"}}, 422, "reason"),
        ("POST", rollback, {"json": {"reason": "\x1f"}}, 422, "reason"),
        ("POST", rollback, {"json": {"reason": "\x00"}}, 422, "reason"),
        ("POST", rollback, raw('{"reason": "\\udfff"}'), 422, "reason"),
        ("POST", f"{ROLLOUT}/abort", {"json": {"reason": "r" * 5000}}, 422, "reason"),
        ("POST", f"{ROLLOUT}/promote", raw("[" * 100_000), 400, "invalid_json"),
        (
            "POST",
            f"{ROLLOUT}/promote",
            {"content": b'{"reason": "\xff"}', "headers": JSON_TYPE},
            400,
            "invalid_json",
        ),
    ]
    with serving(served) as client:
        check_refusals(client, cases)
        assert client.get(ROLLOUT).json()["outcome"] is None  # none of them moved production


def exchange(sock: socket.socket, path: str) -> bytes:
    """One keep-alive GET on `sock`: the whole response (headers and Content-Length body), or b"" if
    the server closed the connection instead."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def test_an_unexpected_error_answers_json_counted_logged_once_and_keeps_the_connection(
    served: Served, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    """Before: Starlette answered a plain-text 500, uvicorn logged it and closed the connection."""
    gateway = Gateway(served.ws)
    app = create_app(gateway, api_token=TOKEN)

    async def broken(model: str) -> None:
        raise RuntimeError("secret detail of a bug")

    app.add_api_route("/v1/models/{model}/broken", broken)  # a real route with a real bug
    with (
        running(app) as url,
        socket.create_connection(("127.0.0.1", httpx.URL(url).port), timeout=10) as sock,
    ):
        first = exchange(sock, f"/v1/models/{MODEL}/broken")
        second = exchange(sock, "/healthz")  # the same connection still serves
        metrics = httpx.get(f"{url}/metrics").text
    head, _, body = first.partition(b"\r\n\r\n")
    answer = json.loads(body)
    assert head.startswith(b"HTTP/1.1 500"), first
    assert answer["error"] == "internal_error" and len(answer["request_id"]) == 32
    assert "secret" not in answer["message"] and answer["request_id"] in answer["message"]
    assert f"x-request-id: {answer['request_id']}".encode() in head.lower()
    assert second.startswith(b"HTTP/1.1 200"), second
    assert f'pitstop_http_unhandled_errors_total{{model="{MODEL}"}} 1.0' in metrics
    logged = [r for r in caplog.records if r.exc_info and answer["request_id"] in r.getMessage()]
    assert len(logged) == 1 and "secret detail" in str(logged[0].exc_info[1])  # type: ignore[index]
    assert "Exception in ASGI application" not in capfd.readouterr().err
