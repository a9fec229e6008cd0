"""`POST /v1/models/{model}/predict` is answered ahead of FastAPI's router (`PredictPath`), except
behind a proxy's root path, where the router answers it. Both must answer every request alike:
the same statuses, the same bodies, the same refusals word for word."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from pitstop.http.app import create_app
from pitstop.serving.gateway import Gateway
from serving.conftest import MODEL, ROW, Served, running, settings

BODIES: list[tuple[str, Any]] = [
    ("one row", {"features": ROW, "user_id": "u1", "request_id": "same-1"}),
    (
        "a batch",
        {"instances": [{"features": ROW, "user_id": "u2"}, {"features": {**ROW, "a": 2.0}, "user_id": "u3"}]},
    ),
    ("a feature of the wrong type", {"features": {**ROW, "a": "fast"}}),
    ("a missing feature", {"features": {"a": 0.5}}),
    ("an unknown feature", {"features": {**ROW, "z": 1.0}}),
    ("a number too large", b'{"features": {"a": 1e400, "b": 1.0}}'),
    ("no features", {"user_id": "u3"}),
    ("not an object", [1, 2]),
    ("not JSON", b"{features"),
    ("a lone surrogate", b'{"features": {"a": "\\ud800", "b": 1.0}}'),
]


def _answer(client: httpx.Client, model: str, body: Any) -> tuple[int, Any]:
    url = f"/v1/models/{model}/predict"  # a proxy has stripped its root path (`uvicorn --root-path`)
    if isinstance(body, bytes):
        reply = client.post(url, content=body, headers={"Content-Type": "application/json"})
    else:
        reply = client.post(url, json=body)
    return reply.status_code, _without_timing(reply.json())


def _without_timing(answer: Any) -> Any:
    """The answer less what differs between two calls (generated ids, latency)."""
    if isinstance(answer, dict):
        return {k: _without_timing(v) for k, v in answer.items() if k not in {"latency_ms", "request_id"}}
    if isinstance(answer, list):
        return [_without_timing(v) for v in answer]
    return answer


@pytest.mark.parametrize("model", [MODEL, "no-such-model"])
def test_predict_answers_alike_ahead_of_the_router_and_through_it(served: Served, model: str) -> None:
    answers: dict[str, list[tuple[int, Any]]] = {}
    for root_path in ("", "/api"):
        gateway = Gateway(served.ws, settings=settings())
        with (
            running(create_app(gateway), root_path=root_path) as url,
            httpx.Client(base_url=url, timeout=10) as client,
        ):
            answers[root_path] = [_answer(client, model, body) for _, body in BODIES]
    for (what, _), ahead, routed in zip(BODIES, answers[""], answers["/api"], strict=True):
        assert ahead == routed, what
    statuses = [status for status, _ in answers[""]]
    assert statuses[:2] == ([200, 200] if model == MODEL else [404, 404])
    assert all(400 <= status < 500 for status in statuses[2:])
