"""`GET /v1/models/{model}/shadow`: a shadow set by hand compared live with the champion, as
`pitstop compare --json` prints it (the evidence since it began, the tests of a rollout's shadow
phase and what that phase would decide now). Read-only; built on a worker thread, never on the event
loop that serves predictions."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from pitstop.http.edge import edge
from pitstop.http.payloads import error_docs
from pitstop.http.rollouts import ModelName
from pitstop.rollout.manual_shadow import compare

router = APIRouter()


@router.get(
    "/v1/models/{model}/shadow",
    summary="A shadow set by hand, compared live with the champion by the shadow phase's rules",
    responses=error_docs(404, 409, 422, 503),
)
async def shadow_comparison(request: Request, model: ModelName) -> JSONResponse:
    result = await asyncio.to_thread(compare, edge(request).gateway.ws, model)
    return JSONResponse(result.to_dict())
