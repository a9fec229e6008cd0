"""`/openapi.json` says what the gateway accepts: each example body is valid per the published schema
exactly when the running gateway accepts it (issue 16: they disagreed on `request_id: ""`,
`features: {}` and control characters in `reason`).

Accepted means the body got past parsing: 200 for predict and labels; for an override 200, or 404 or
409 (no rollout to act on). Lone surrogates are left to test_serving_hostile_input.py: no JSON Schema engine
can take them as input, and the document cannot state them (its pattern would not compile in Rust).
"""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema_rs

from pitstop.http.app import create_app
from pitstop.serving import Gateway
from serving.conftest import MODEL, Served, running

TOKEN = "agreement"
ROW = {"a": 0.5, "b": -1.0}
LABEL = {"request_id": "r1", "label": 1.0}

PREDICT_BODIES: list[Any] = [
    {"features": ROW},
    {"features": {}},
    {"features": {"a": 1}},
    {"features": {**ROW, "c": 1}},
    {"features": {"a": True, "b": 1}},
    {"features": {"a": "1", "b": 1}},
    {"features": {"a": 1e15, "b": -1e15}},
    {"features": {"a": 10**400, "b": 1}},
    {"features": ROW, "request_id": ""},
    {"features": ROW, "request_id": " "},
    {"features": ROW, "request_id": "r\x00"},
    {"features": ROW, "request_id": "r\x85"},
    {"features": ROW, "request_id": "é-\u3000-🙂"},
    {"features": ROW, "user_id": "u" * 200},
    {"features": ROW, "user_id": "u" * 201},
    {"features": ROW, "user_id": None},
    {"features": ROW, "user_id": 7},
    {"features": ROW, "extra": 1},
    {"instances": []},
    {"instances": [{"features": ROW}, {"features": ROW, "request_id": "x"}]},
    {"instances": [{"features": ROW}, {"features": {}}]},
    {"instances": [{"features": ROW}], "extra": 1},
    [],
    "features",
]

LABELS_BODIES: list[Any] = [
    {"labels": [LABEL]},
    {"labels": []},
    {"labels": [{**LABEL, "label": True}]},
    {"labels": [{**LABEL, "label": None}]},
    {"labels": [{**LABEL, "label": 10**400}]},
    {"labels": [{"label": 1}]},
    {"labels": [{**LABEL, "request_id": ""}]},
    {"labels": [{**LABEL, "request_id": "r\x00"}]},
    {"labels": [{**LABEL, "request_id": "r" * 201}]},
    {"labels": [{**LABEL, "time": "2026-01-01T00:00:00Z"}]},
    {"labels": [{**LABEL, "time": "2026-01-01T00:00:00+14:00"}]},
    {"labels": [{**LABEL, "time": "9998-12-31T23:59:59-12:00"}]},
    {"labels": [{**LABEL, "time": "1969-12-31T23:59:59Z"}]},
    {"labels": [{**LABEL, "time": "0001-01-01T00:00:00+01:00"}]},
    {"labels": [{**LABEL, "time": "9999-12-31T23:59:59-01:00"}]},
    {"labels": [{**LABEL, "time": "yesterday"}]},
    {"labels": [{**LABEL, "time": 0}]},
    {"labels": [{**LABEL, "time": 1.7e9}]},
    {"labels": [{**LABEL, "time": -1}]},
    {"labels": [{**LABEL, "time": 1e20}]},
    {"labels": [{**LABEL, "time": None}]},
    {"labels": [{**LABEL, "extra": 1}]},
    {"labels": [LABEL], "extra": 1},
]

OVERRIDE_BODIES: list[Any] = [
    {"reason": "why"},
    {"reason": ""},
    {"reason": " "},
    {"reason": "\u3000x"},
    {"reason": "\x1f"},
    {"reason": "bad\x00"},
    {"reason": "two\nlines"},
    {"reason": "r" * 2000},
    {"reason": "r" * 2001},
    {"reason": "why", "by": "ops"},
    {"reason": "why", "by": ""},
    {"reason": "why", "by": "x" * 200},
    {"reason": "why", "by": "x" * 201},
    {"reason": "why", "by": "ops\x00"},
    {"reason": "why", "by": None},
    {"reason": "why", "to_end": True},
    {"reason": "why", "extra": 1},
    {"by": "ops"},
]

# The parser also takes ISO 8601 forms beyond RFC 3339's date-time, which the schema states.
ACCEPTED_BEYOND_THE_SCHEMA: list[Any] = [
    {"labels": [{**LABEL, "time": "2026-01-01"}]},
    {"labels": [{**LABEL, "time": "2026-01-01T12:00:00"}]},
]

# A text label is a class value: the schema takes it for every model (it cannot know the model's task),
# and a regression model refuses it, naming the field.
REFUSED_BY_THE_MODEL: list[Any] = [
    {"labels": [{**LABEL, "label": "1"}]},
]


def body_validator(document: dict[str, Any], path: str) -> jsonschema_rs.Validator:
    operation = document["paths"][path.replace(f"/{MODEL}/", "/{model}/")]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    return jsonschema_rs.Draft202012Validator(
        {**schema, "components": document["components"]}, validate_formats=True
    )


def disagreements(
    client: httpx.Client, document: dict[str, Any], path: str, bodies: list[Any], accepted: set[int]
) -> list[str]:
    valid = body_validator(document, path)
    found = []
    for body in bodies:
        answer = client.post(path, json=body)
        if valid.is_valid(body) != (answer.status_code in accepted):
            found.append(f"{path} {body!r:.120}: schema valid={valid.is_valid(body)}, {answer.text[:200]}")
    return found


def test_the_published_schema_accepts_exactly_what_the_gateway_accepts(served: Served) -> None:
    gateway = Gateway(served.ws)
    with (
        running(create_app(gateway, api_token=TOKEN)) as url,
        httpx.Client(base_url=url, timeout=10, headers={"Authorization": f"Bearer {TOKEN}"}) as client,
    ):
        document = client.get("/openapi.json").json()
        found = [
            *disagreements(client, document, f"/v1/models/{MODEL}/predict", PREDICT_BODIES, {200}),
            *disagreements(client, document, f"/v1/models/{MODEL}/labels", LABELS_BODIES, {200}),
            *(
                problem
                for action in ("promote", "rollback", "abort")
                for problem in disagreements(
                    client, document, f"/v1/models/{MODEL}/rollout/{action}", OVERRIDE_BODIES, {200, 404, 409}
                )
            ),
        ]
        labels = body_validator(document, f"/v1/models/{MODEL}/labels")
        for body in ACCEPTED_BEYOND_THE_SCHEMA:
            assert not labels.is_valid(body)
            assert client.post(f"/v1/models/{MODEL}/labels", json=body).status_code == 200
        for body in REFUSED_BY_THE_MODEL:
            assert labels.is_valid(body)
            refused = client.post(f"/v1/models/{MODEL}/labels", json=body)
            assert refused.status_code == 422 and refused.json()["fields"][0]["field"] == "labels[0].label"
    assert not found, "\n".join(found)


def test_every_status_an_endpoint_returns_is_documented_with_the_error_shape(served: Served) -> None:
    """The overrides' 400 (a body that is not JSON) was undocumented, FastAPI's 422 had its own
    `{"detail": …}` shape, and no operation listed the catch-all's 500."""
    with (
        running(create_app(Gateway(served.ws), api_token=TOKEN)) as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        document = client.get("/openapi.json").json()
    shapes = {  # the Open Inference Protocol's endpoints answer its own error shape
        prefix: {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}
        for prefix, name in (("/v1", "ErrorBody"), ("/v2", "OipError"))
    }
    readiness = {("/readyz", "503"), ("/v2/health/ready", "503")}
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            responses = operation["responses"]
            assert "500" in responses, (method, path)
            error = shapes["/v2" if path.startswith("/v2") else "/v1"]
            for status, response in responses.items():
                if status.startswith(("4", "5")) and (path, status) not in readiness:
                    assert response["content"] == error, (method, path, status)
    for action in ("promote", "rollback", "abort"):
        responses = document["paths"][f"/v1/models/{{model}}/rollout/{action}"]["post"]["responses"]
        assert {"400", "401", "403", "404", "409", "422", "503"} <= responses.keys()
    assert "HTTPValidationError" not in document["components"]["schemas"]
    readiness = document["paths"]["/readyz"]["get"]["responses"]["503"]["content"]["application/json"]
    assert readiness["schema"] == {"$ref": "#/components/schemas/Readiness"}
