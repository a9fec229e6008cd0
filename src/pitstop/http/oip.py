"""The Open Inference Protocol (KServe V2 REST) beside pitstop's own API, on the same gateway: the same
routing (sticky split by user), shadow, micro-batching and prediction log as `/v1/models/{m}/predict`.

Health (`/v2/health/live`, `/v2/health/ready`), server and model metadata (`/v2`,
`/v2/models/{m}[/versions/{v}]`), model readiness and inference (`…/ready`, `…/infer`). Errors are
`{"error": "…"}` as the protocol says (`app._error_response` shapes every error under `/v2`). A request
naming a version (`…/versions/{v}/infer`) is served only while routing sends every user to that
version: pitstop, not the caller, chooses the arm, and the answer's `model_version` says which served.
Request and answer shapes: `oip_payloads`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response

from pitstop import __version__
from pitstop.errors import NotFoundError, UsageError
from pitstop.http.auth import Scope
from pitstop.http.edge import check_token, edge, read_body
from pitstop.http.oip_payloads import inference_answer, model_metadata, read_inference
from pitstop.http.payloads import OipReadiness, load_json, oip_error_docs
from pitstop.serving.gateway import ModelState

router = APIRouter(tags=["Open Inference Protocol (V2)"])
INFER_PATHS = ("/v2/models/{model}/infer", "/v2/models/{model}/versions/{version}/infer")
_INFER_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/InferenceRequest"}}},
    }
}
VersionPath = Annotated[str, Path(description="a model version pitstop serves the model with")]


@router.get("/v2/health/live", summary="OIP: the server is live")
async def live() -> Response:
    return JSONResponse({"live": True})


@router.get(
    "/v2/health/ready",
    summary="OIP: every model's champion can be served (503 otherwise)",
    responses={200: {"model": OipReadiness}, 503: {"model": OipReadiness}},
)
async def ready(request: Request) -> Response:
    reasons = edge(request).gateway.readiness()
    return JSONResponse({"ready": not reasons, "reasons": reasons}, status_code=503 if reasons else 200)


@router.get("/v2", summary="OIP: server metadata")
async def server_metadata() -> Response:
    return JSONResponse({"name": "pitstop", "version": __version__, "extensions": []})


@router.get(
    "/v2/models/{model}",
    summary="OIP: a model's metadata (inputs from its input signature)",
    responses=oip_error_docs(404),
)
async def metadata(model: str, request: Request) -> Response:
    return JSONResponse(_metadata(request, model, None))


@router.get(
    "/v2/models/{model}/versions/{version}",
    summary="OIP: a model version's metadata",
    responses=oip_error_docs(404),
)
async def version_metadata(model: str, version: VersionPath, request: Request) -> Response:
    return JSONResponse(_metadata(request, model, version))


@router.get(
    "/v2/models/{model}/ready",
    summary="OIP: the model's champion is loaded (404 otherwise)",
    responses=oip_error_docs(404),
)
async def model_ready(model: str, request: Request) -> Response:
    state = edge(request).gateway.state(model)
    return JSONResponse({"name": model, "ready": True, "version": str(state.table.champion)})


@router.get(
    "/v2/models/{model}/versions/{version}/ready",
    summary="OIP: the version is loaded here (404 otherwise)",
    responses=oip_error_docs(404),
)
async def version_ready(model: str, version: VersionPath, request: Request) -> Response:
    _loaded(edge(request).gateway.state(model), model, version)
    return JSONResponse({"name": model, "ready": True, "version": version})


@router.post(
    INFER_PATHS[0],
    summary="OIP: predict, routed by user as /v1 predict is",
    responses=oip_error_docs(400, 401, 403, 404, 413),
    openapi_extra=_INFER_BODY,
)
async def infer(model: str, request: Request) -> Response:
    return await _infer(request, model, None)


@router.post(
    INFER_PATHS[1],
    summary="OIP: predict, while routing sends every user to this version (400 otherwise)",
    responses=oip_error_docs(400, 401, 403, 404, 413),
    openapi_extra=_INFER_BODY,
)
async def version_infer(model: str, version: VersionPath, request: Request) -> Response:
    return await _infer(request, model, version)


async def _infer(request: Request, model: str, version: str | None) -> Response:
    shared = edge(request)
    check_token(request, Scope.PREDICT)
    state = shared.gateway.state(model)  # 404 before reading a body for nothing
    if version is not None:
        _routed_to_all(state, model, version)
    body = load_json(await read_body(request, shared.max_body_bytes))
    header = request.headers.get(shared.gateway.settings.user_id_header)
    inference = read_inference(body, state.schema, header)
    results = await shared.gateway.predict(model, inference.instances, batch=len(inference.instances) > 1)
    return JSONResponse(inference_answer(model, inference, results))


def _metadata(request: Request, model: str, version: str | None) -> dict[str, Any]:
    state = edge(request).gateway.state(model)
    versions = sorted(state.runners)
    if version is not None:
        versions = [_loaded(state, model, version)]
    return model_metadata(model, versions, state.schema)


def _loaded(state: ModelState, model: str, version: str) -> int:
    """The version as a number, when this gateway has it loaded; NotFoundError otherwise."""
    served = ", ".join(str(v) for v in sorted(state.runners))
    if not version.isdigit() or int(version) not in state.runners:
        raise NotFoundError(f"version {version!r} of {model!r} is not served here (served: {served})")
    return int(version)


def _routed_to_all(state: ModelState, model: str, version: str) -> None:
    """A pinned version is honoured only when routing would serve every user with it anyway."""
    number = _loaded(state, model, version)
    table = state.table
    everyone = table.challenger if table.challenger is not None and table.challenger_share >= 1.0 else None
    if everyone is None and table.challenger_share <= 0.0:
        everyone = table.champion
    if number != everyone:
        split = f"champion v{table.champion}"
        if table.challenger is not None and table.challenger_share > 0:
            split += f", challenger v{table.challenger} for {table.challenger_share:.0%} of users"
        raise UsageError(
            f"pitstop routes each request of {model!r} by user ({split}): call "
            f"/v2/models/{model}/infer; the answer's model_version says which version served"
        )
