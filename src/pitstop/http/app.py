"""The gateway over HTTP (FastAPI). Errors become HTTP responses here, in `_error_response` only.

`create_app(gateway)` wires an existing `Gateway`; `app_from_env()` is the factory uvicorn calls in
every worker (`pitstop serve`): it opens the workspace named by `PITSTOP_WORKSPACE` and reads the
tokens from the environment (`auth.access_from_env`). Every write needs a token of its scope, and
refuses (403) when none is configured, unless local unauthenticated writes were opted in to
(`auth.py`). `GET /` is left free for the dashboard.

`/openapi.json` describes the API: every JSON endpoint (the dashboard's data too, `GET /v1/dashboard`),
and the bearer token as an HTTP security scheme on each write endpoint. The dashboard page and its
script (`GET /`, `/static/…`) are HTML and JavaScript for a browser, not API, and are left out.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import os
import re
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as ASGIScope

from pitstop import __version__
from pitstop.cluster.reconcile import cluster_sync
from pitstop.errors import ConflictError, NotFoundError, PitstopError, StoreUnavailableError, UsageError
from pitstop.http import comparison, dashboard, mlflow_webhook, oip, payloads, rollouts, server
from pitstop.http.auth import LEGACY_ENV, Access, ForbiddenError, Scope, UnauthorizedError, access_from_env
from pitstop.http.edge import BEARER_SCHEME, LABELS, Edge, check_token, edge, read_body
from pitstop.mlflow_sync import write_back
from pitstop.notify.background import BackgroundSender
from pitstop.report.dashboard import POLL_SECONDS
from pitstop.rollout.controller import Controller, after_each_round
from pitstop.routing.table import RoutingTable
from pitstop.serving.errors import (
    IncompleteBodyError,
    InvalidInputError,
    InvalidJSONError,
    ModelNotServedError,
    PayloadTooLargeError,
    PredictionFailedError,
)
from pitstop.serving.gateway import Gateway
from pitstop.serving.health import HealthBody
from pitstop.serving.metrics import process_exiting
from pitstop.workspace import Workspace

log = logging.getLogger(__name__)

TOKEN_ENV = LEGACY_ENV  # kept for callers that named it; see auth.py for every token variable
# A notification attempt in flight when the server stops may take this long (it is a daemon thread: an
# attempt cut short is claimed, not lost, and retried by the next sender).
NOTIFY_STOP_SECONDS = 5.0
CONTROLLER_ENV = "PITSTOP_CONTROLLER"  # "1": run the rollout controller inside the gateway process

# Most specific first: the first matching class decides the status.
_STATUS: tuple[tuple[type[Exception], int, str], ...] = (
    (InvalidJSONError, 400, "invalid_json"),
    (IncompleteBodyError, 400, "incomplete_body"),
    (InvalidInputError, 422, "invalid_input"),
    (PayloadTooLargeError, 413, "payload_too_large"),
    (ModelNotServedError, 404, "model_not_served"),
    (NotFoundError, 404, "not_found"),
    (ConflictError, 409, "conflict"),
    (UsageError, 400, "bad_request"),
    (UnauthorizedError, 401, "unauthorized"),
    (ForbiddenError, 403, "forbidden"),
    (PredictionFailedError, 500, "prediction_failed"),
    (StoreUnavailableError, 503, "store_unavailable"),
    (PitstopError, 500, "internal_error"),
    (Exception, 500, "internal_error"),  # anything unexpected: `CatchAll` brings it here
)
OIP_PREFIX = "/v2"  # the Open Inference Protocol's endpoints (`oip.py`), whose errors have its shape
STORE_RETRY_AFTER = 5  # seconds, in Retry-After when the store cannot be reached
REQUEST_ID_HEADER = "X-Request-ID"  # on an internal error: the id in its body and in the log


def _body_doc(*models: str) -> dict[str, Any]:
    refs = [{"$ref": f"#/components/schemas/{name}"} for name in models]
    schema = refs[0] if len(refs) == 1 else {"oneOf": refs}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


router = APIRouter()


@router.post(
    "/v1/models/{model}/predict",
    summary="Predict one instance, or a batch with {instances: [...]}",
    responses={
        200: {"model": payloads.Prediction | payloads.BatchPrediction},
        **payloads.error_docs(400, 404, 413, 422, 500),
    },
    openapi_extra=_body_doc("PredictRequest", "BatchPredictRequest"),
)
async def predict(model: str, request: Request) -> Response:
    """Declares the endpoint (its schema, its 405s); `PredictPath` answers it ahead of the router."""
    return await answer_predict(model, request)


async def answer_predict(model: str, request: Request) -> Response:
    shared = edge(request)
    check_token(request, Scope.PREDICT)  # open unless a predict token is set (`_openapi` says which)
    shared.gateway.state(model)  # 404 before reading a body for nothing, as for labels
    instances, batch = payloads.parse_predict(await read_body(request, shared.max_body_bytes))
    results = await shared.gateway.predict(model, instances, batch=batch)
    if batch:
        return JSONResponse({"predictions": [r.to_dict() for r in results]})
    return JSONResponse(results[0].to_dict())


@router.post(
    "/v1/models/{model}/labels",
    summary="Store ground truth, upserted by request_id (the labels or the operator token)",
    responses={
        200: {"model": payloads.LabelsAccepted},
        **payloads.error_docs(400, 401, 403, 404, 413, 422, 503),
    },
    openapi_extra=_body_doc("LabelsRequest"),
    dependencies=[LABELS],
)
async def labels(model: str, request: Request) -> Response:
    shared = edge(request)
    shared.gateway.state(model)  # 404 before reading a body for nothing
    items = payloads.parse_labels(await read_body(request, shared.max_body_bytes))
    return JSONResponse({"accepted": await shared.gateway.add_labels(model, items)})


def _shown(table: RoutingTable, request: Request) -> dict[str, object]:
    """The table as JSON; its salt only for the operator (with it, anyone could pick user ids that
    land in the arm they want, and add evidence to it)."""
    data = table.to_dict()
    if not edge(request).access.is_operator(request.headers.get("authorization")):
        data.pop("salt")
    return data


@router.get(
    "/v1/models/{model}/routing",
    summary="The routing table in use (its salt only with the operator token)",
    responses={200: {"model": payloads.Routing}, **payloads.error_docs(404)},
)
async def routing(model: str, request: Request) -> Response:
    return JSONResponse(_shown(edge(request).gateway.routing(model), request))


@router.get("/v1/models", summary="Every served model and its routing table (salts only for the operator)")
async def served_models(request: Request) -> Response:
    gateway = edge(request).gateway
    return JSONResponse({"models": [_shown(gateway.routing(m), request) for m in gateway.models]})


@router.get("/healthz", summary="The process is alive", response_model=payloads.Health)
async def healthz() -> Response:
    return JSONResponse({"status": "ok"})


@router.get(
    "/readyz",
    summary="Every model's champion can be served (503 with the reasons otherwise); see /v1/health",
    responses={200: {"model": payloads.Readiness}, 503: {"model": payloads.Readiness}},
)
async def readyz(request: Request) -> Response:
    """503 only when a champion cannot be served: a store outage leaves the gateway serving its last
    routing (`degraded`, 200), and taking every replica out of rotation for it would stop the service."""
    gateway = edge(request).gateway
    health = gateway.health()
    body = {
        "ready": not health.reasons,
        "status": health.status,
        "models": gateway.models,
        "reasons": health.reasons,
        "degraded": health.degradations() if not health.reasons else [],
    }
    return JSONResponse(body, status_code=503 if health.reasons else 200)


@router.get(
    "/v1/health",
    summary="Every part: per model champion, challenger and shadow; the prediction log; the store",
    response_model=HealthBody,
)
async def health(request: Request) -> Response:
    return JSONResponse(edge(request).gateway.health().to_dict())


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    gateway = edge(request).gateway
    gateway.health()  # brings the pitstop_ready and pitstop_component_up gauges up to date
    return Response(gateway.metrics.render(), media_type=CONTENT_TYPE_LATEST)


def create_app(
    gateway: Gateway,
    *,
    api_token: str | None = None,
    access: Access | None = None,
    max_body_bytes: int | None = None,
    on_shutdown: Callable[[], None] | None = None,
    tune_runtime: bool = False,
    controller: Controller | None = None,
    notifications: BackgroundSender | None = None,
    dashboard_every: float = POLL_SECONDS,
) -> FastAPI:
    """An ASGI app serving `gateway`; its lifespan starts and stops the gateway (and `controller`,
    the rollout decision loop, on a thread of its own, when given: `pitstop serve --controller`), and
    `notifications`, the notification sender's thread, when given (`pitstop serve` always).

    `access` holds the tokens by scope (`auth.Access`); `api_token` alone is the operator token, as
    before scopes existed. With neither, every write is refused (403).

    `tune_runtime` tunes garbage collection and thread switching once the models are loaded (see
    `server.tune_runtime`); `pitstop serve` turns it on, since it owns the process. The dashboard at
    `GET /` polls every `dashboard_every` seconds (its JSON is rebuilt at most that often).
    """

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await gateway.start()
        if tune_runtime:
            server.tune_runtime()
        stop = threading.Event()
        loop_thread = None
        if controller is not None:
            loop_thread = threading.Thread(target=controller.run, args=(stop,), name="pitstop-controller")
            loop_thread.start()
        if notifications is not None:
            notifications.start()
        try:
            yield
        finally:
            stop.set()
            if notifications is not None:
                await asyncio.to_thread(notifications.stop, NOTIFY_STOP_SECONDS)
            if loop_thread is not None:
                await asyncio.to_thread(loop_thread.join)
            await gateway.stop()
            process_exiting()
            if on_shutdown is not None:
                on_shutdown()

    app = FastAPI(
        title="pitstop gateway",
        version=__version__,
        description="Serves champions, shadows or splits users to a challenger, logs every prediction.",
        lifespan=lifespan,
    )
    tokens = access or Access(operator=api_token or None)
    app.state.gateway = gateway
    app.state.access = tokens
    app.state.edge = Edge(
        gateway,
        tokens,
        max_body_bytes or gateway.settings.max_body_bytes,
        rollouts.status_cache(gateway),
        rollouts.status_versions(gateway),
        dashboard.dashboard_cache(gateway, dashboard_every),
        dashboard_every,
    )
    app.include_router(dashboard.router)
    app.include_router(rollouts.router)
    app.include_router(comparison.router)
    app.include_router(oip.router)
    app.include_router(mlflow_webhook.router)
    app.include_router(router)

    async def on_pitstop_error(request: Request, error: Exception) -> Response:
        return _error_response(gateway, request, error)

    app.add_exception_handler(PitstopError, on_pitstop_error)
    app.add_exception_handler(RequestValidationError, on_pitstop_error)
    app.add_exception_handler(HTTPException, on_pitstop_error)  # the router's 404 and 405
    app.add_middleware(PredictPath, gateway=gateway)
    app.add_middleware(CatchAll, gateway=gateway)  # added last: outside `PredictPath`
    app.openapi = _openapi(app, gateway, tokens)  # type: ignore[method-assign]
    return app


def check_bearer(header: str | None, token: str) -> None:
    """Raise UnauthorizedError without a bearer token, ForbiddenError with a wrong one."""
    Access(operator=token).check(Scope.OPERATOR, header, None)


class CatchAll:
    """Anything a handler did not expect becomes a 500 in the documented shape, by `_error_response`.

    Starlette's own catch-all (an `Exception` handler, run by its ServerErrorMiddleware) answers and
    then re-raises, so uvicorn logs the error a second time and closes the connection. This sits
    below it, so the error is answered, logged and counted once, and the connection stays usable.
    An error after the response has started cannot be answered any more: that one goes on up.
    """

    def __init__(self, app: ASGIApp, gateway: Gateway) -> None:
        self.app, self.gateway = app, gateway

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as error:
            if started:
                raise
            response = _error_response(self.gateway, Request(scope, receive), error)
            await response(scope, receive, send)


PREDICT_PATH = re.compile(r"^/v1/models/(?P<model>[^/]+)/predict$")  # as Starlette reads the route's


class PredictPath:
    """`POST /v1/models/{model}/predict`, the endpoint users' requests come to, answered without
    FastAPI's routing and parameter machinery: matching the request against the 20 routes before it
    and solving the endpoint's parameters cost more CPU per request than the gateway's own work on it
    (`bench/gateway_cpu.py`). The answer is `answer_predict`'s and errors are `_error_response`'s, as
    through the router; anything else (another method or path, a mounted app's `root_path`) goes on
    to the router.
    """

    def __init__(self, app: ASGIApp, gateway: Gateway) -> None:
        self.app, self.gateway = app, gateway

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        found = (
            PREDICT_PATH.match(scope["path"])
            if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path")
            else None
        )
        if found is None:
            await self.app(scope, receive, send)
            return
        scope["path_params"] = found.groupdict()
        request = Request(scope, receive)
        try:
            response = await answer_predict(found["model"], request)
        except PitstopError as error:  # what the app's exception handler does with it
            response = _error_response(self.gateway, request, error)
        await response(scope, receive, send)


class _ErrorJSON(JSONResponse):
    """JSON in ASCII: a refused field's name or value may hold a lone surrogate, which UTF-8 cannot
    encode (`JSONResponse` would raise while answering); escaped, it is still valid JSON."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":")).encode("ascii")


def _error_response(gateway: Gateway, request: Request, error: Exception) -> Response:
    """The one place an exception becomes an HTTP status and body."""
    headers: dict[str, str] = {}
    if isinstance(error, RequestValidationError):
        problems = error.errors()
        if not_json := [e for e in problems if e["type"] == "json_invalid"]:
            status, code = 400, "invalid_json"
            body: dict[str, Any] = {"message": f"body is not valid JSON: {not_json[0]['ctx']['error']}"}
        else:
            fields = [{"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in problems]
            status, code, body = 422, "invalid_input", {"message": "invalid request", "fields": fields}
    elif isinstance(error, HTTPException):
        status, headers = error.status_code, dict(error.headers or {})
        code = HTTPStatus(status).phrase.lower().replace(" ", "_")
        # FastAPI's body parser, on JSON nested too deep or not UTF-8: as predict and labels answer it
        if isinstance(error.__cause__, RecursionError | ValueError):
            code = "invalid_json"
        message = f"{request.method} {request.url.path}: {error.detail}"
        allowed = f" (allowed: {headers['Allow']})" if "Allow" in headers else ""
        body = {"message": f"{message}{allowed}; the endpoints are listed at /openapi.json"}
    else:
        status, code = next((s, c) for kind, s, c in _STATUS if isinstance(error, kind))
        body = {"message": str(error)}
    if isinstance(error, PitstopError) and status < 500:
        body.update(_field_and_hint(error))
    if isinstance(error, InvalidInputError):
        body["fields"] = [p.to_dict() for p in error.problems]
    if code == "store_unavailable":  # e.g. labels during an outage: nothing was stored, send again
        headers["Retry-After"] = str(STORE_RETRY_AFTER)
        body["hint"] = f"nothing was stored; send it again (in {STORE_RETRY_AFTER}s or later)"
    if isinstance(error, PredictionFailedError):
        body["request_id"] = error.request_ids[0]
        body["request_ids"] = error.request_ids
    model = request.path_params.get("model")
    model = model if model in gateway.models else "-"
    if code == "internal_error":
        body["request_id"] = headers[REQUEST_ID_HEADER] = uuid.uuid4().hex
        if not isinstance(error, PitstopError):  # its text may hold anything (SQL, paths): log it only
            body["message"] = (
                f"unexpected {type(error).__name__}, logged with request_id {body['request_id']}"
            )
        gateway.metrics.unhandled.labels(model).inc()
        log.error(
            "%s %s -> 500, request_id %s",
            request.method,
            request.url.path,
            body["request_id"],
            exc_info=error,
        )
    elif 400 <= status < 500:
        gateway.metrics.invalid.labels(model, str(status)).inc()
    elif status >= 500:
        log.warning("%s %s -> %d: %s", request.method, request.url.path, status, error)
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if request.url.path.startswith(OIP_PREFIX):  # the Open Inference Protocol's shape: {"error": "…"}
        return _ErrorJSON(
            {"error": _oip_message(code, body)}, status_code=400 if status == 422 else status, headers=headers
        )
    return _ErrorJSON({"error": code, **body}, status_code=status, headers=headers)


def _oip_message(code: str, body: dict[str, Any]) -> str:
    """The code, message, each bad field and the hint, in the one string the protocol's error has:
    `invalid_input: invalid input: inputs[0].shape: …`."""
    fields = "; ".join(f"{f['field']}: {f['problem']}" for f in body.get("fields", []))
    parts = [f"{code}: {body['message']}", fields, str(body.get("hint") or "")]
    return " ".join(part for part in parts if part)


def _field_and_hint(error: PitstopError) -> dict[str, str]:
    """The input a client error is about, as a JSON pointer into the request (`/reason`), and how to
    fix it: each only when the error says."""
    said = {"field": json_pointer(error.field), "hint": error.hint}
    return {key: value for key, value in said.items() if value}


def json_pointer(field: str | None) -> str | None:
    """A top-level body field as a JSON pointer (RFC 6901): `to_end` → `/to_end`, `a/b` → `/a~1b`."""
    return None if field is None else "/" + field.replace("~", "~0").replace("/", "~1")


def _openapi(app: FastAPI, gateway: Gateway, access: Access) -> Callable[[], dict[str, Any]]:
    """FastAPI's schema plus the predict and labels bodies, which are read by `read_body` (to limit
    their size as they arrive) and validated by `payloads`, so FastAPI does not declare them.

    Without a configured token the write endpoints take requests without one too: their `security`
    then lists the empty requirement `{}` beside the bearer scheme (OpenAPI's "optional"). Predict
    takes the bearer scheme only when a predict token is set. Every
    error status is an `ErrorBody`, FastAPI's own 422 included, and every operation may answer 500.
    The `features` of a predict body are those of the models served now (their champions'), so the
    document is rebuilt from the cached rest on each call.
    """

    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            _, definitions = models_json_schema(
                [(model, "validation") for model in payloads.REQUEST_MODELS],
                ref_template="#/components/schemas/{model}",
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for name, definition in definitions.get("$defs", {}).items():
                components.setdefault(name, definition)
            for name in ("HTTPValidationError", "ValidationError"):
                components.pop(name, None)
            if access.guarded(Scope.PREDICT):
                for path in ("/v1/models/{model}/predict", *oip.INFER_PATHS):
                    schema["paths"][path]["post"]["security"] = [{BEARER_SCHEME: []}]
            token_required = not access.open_scopes()
            for path, operation in _operations(schema):
                if not token_required and operation.get("security") == [{BEARER_SCHEME: []}]:
                    operation["security"].append({})
                shape = "OipError" if path.startswith(OIP_PREFIX) else "ErrorBody"
                _document_errors(operation.setdefault("responses", {}), shape)
            app.openapi_schema = schema
        return _with_served_features(app.openapi_schema, gateway)

    return build


def _document_errors(responses: dict[str, Any], shape: str) -> None:
    """Every error of an operation is an ErrorBody (FastAPI's 422 too; `OipError` under /v2), and any
    may answer 500."""
    responses.setdefault("500", {"description": "Internal Server Error"})
    error = {"application/json": {"schema": {"$ref": f"#/components/schemas/{shape}"}}}
    fastapi_422 = {"$ref": "#/components/schemas/HTTPValidationError"}
    for status, response in responses.items():
        declared = response.get("content", {}).get("application/json", {}).get("schema")
        if status.startswith(("4", "5")) and declared in (None, fastapi_422):
            response["content"] = error


def _with_served_features(schema: dict[str, Any], gateway: Gateway) -> dict[str, Any]:
    """`schema` with a predict instance's `features` narrowed to those of the models served now."""
    served = [payloads.features_schema(gateway.state(model).schema) for model in gateway.models]
    if not served:
        return schema
    schema = copy.deepcopy(schema)
    instance = schema["components"]["schemas"]["PredictRequest"]["properties"]
    narrowed = served[0] if len(served) == 1 else {"anyOf": served}
    instance["features"] = {**narrowed, "description": instance["features"].get("description", "")}
    return schema


def _operations(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every operation of the document, with its path."""
    return [(path, op) for path, methods in schema.get("paths", {}).items() for op in methods.values()]


def app_from_env() -> FastAPI:
    """The uvicorn factory: workspace from PITSTOP_WORKSPACE, tokens from the environment (auth.py)."""
    access = access_from_env()  # a bad token file stops here, before the workspace is opened
    ws = Workspace(os.environ.get("PITSTOP_WORKSPACE"))
    gateway = Gateway(ws)
    # With several workers each runs a controller; the lease lets exactly one of them act.
    controller = (
        Controller(ws, after_round=after_each_round(write_back(ws), cluster_sync(ws)))
        if os.environ.get(CONTROLLER_ENV) == "1"
        else None
    )
    # With several workers each sends (deliveries are claimed first) and counts its attempts.
    return create_app(
        gateway,
        access=access,
        on_shutdown=ws.close,
        tune_runtime=True,
        controller=controller,
        notifications=BackgroundSender(ws, on_attempt=gateway.metrics.count_notification),
    )
