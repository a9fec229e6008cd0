"""Rollouts over HTTP: the status a person or a pipeline polls, and the manual overrides.

`GET /v1/models/{model}/rollout` answers what `pitstop rollout status --json` prints; the overrides
`POST /v1/models/{model}/rollout/{promote|rollback|abort}` are admin actions (the bearer token when the
gateway has one) and go through the same code as the CLI's, so history records them alike. Store work
runs on a worker thread, never on the event loop that serves predictions.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Path, Query, Security
from fastapi.responses import Response
from pydantic import BaseModel, Field

from pitstop.rollout.records import StoredRollout
from pitstop.serving.payloads import MAX_ID_LENGTH, STRICT, TEXT_PATTERN, ErrorBody, Identifier, Reason

if TYPE_CHECKING:
    from pitstop.serving.gateway import Gateway

HTTP_ACTOR = "api"  # who an override was made by when the request does not say
ROW_ID_MAX = 2**63 - 1  # a rollout id is a BIGINT: beyond it the store refuses the query itself
# These routes look the model up in the store (PostgreSQL refuses a NUL even in a query): 422 first.
ModelName = Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH, pattern=TEXT_PATTERN)]


class Override(BaseModel):
    """A manual override: why (recorded with the event), and by whom; both are checked against what the
    store holds (`payloads.Reason`, `payloads.Identifier`), so neither can fail the write."""

    model_config = STRICT
    reason: Reason = Field(
        description="why: recorded with the event; some visible text, no control characters"
    )
    by: Identifier | None = Field(None, description=f"who asks (default: {HTTP_ACTOR!r})")


class Promotion(Override):
    to_end: bool = Field(False, description="complete the promotion now instead of advancing one step")


def rollout_router(gateway: Gateway, require_token: Callable[..., None]) -> APIRouter:
    """The rollout routes of `gateway`'s workspace; `require_token` guards the overrides."""
    router = APIRouter(tags=["rollouts"])
    ws = gateway.ws
    admin = [Security(require_token)]

    def answer(data: dict[str, Any]) -> Response:
        return Response(json.dumps(data, default=str), media_type="application/json")

    @router.get(
        "/v1/models/{model}/rollout",
        summary="The active (or latest, or given) rollout: phase, share, live evidence, next check",
        responses=_error_docs(404, 422, 503),
    )
    async def status(
        model: ModelName,
        rollout: Annotated[int | None, Query(ge=1, le=ROW_ID_MAX, description="a past rollout's id")] = None,
    ) -> Response:
        result = await asyncio.to_thread(ws.rollout_status, model, rollout)
        return answer(result.to_dict())

    def changed(stored: StoredRollout) -> Response:
        return answer(stored.to_dict())

    @router.post(
        "/v1/models/{model}/rollout/promote",
        summary="Advance the active rollout one phase or step by hand (to_end: promote now)",
        responses=_error_docs(400, 401, 403, 404, 409, 422, 503),
        dependencies=admin,
    )
    async def promote(model: ModelName, body: Promotion) -> Response:
        stored = await asyncio.to_thread(
            ws.promote, model, reason=body.reason, to_end=body.to_end, actor=body.by or HTTP_ACTOR
        )
        return changed(stored)

    @router.post(
        "/v1/models/{model}/rollout/rollback",
        summary="All traffic back to the champion at once (after a promotion: the previous champion)",
        responses=_error_docs(400, 401, 403, 404, 409, 422, 503),
        dependencies=admin,
    )
    async def rollback(model: ModelName, body: Override) -> Response:
        stored = await asyncio.to_thread(ws.rollback, model, reason=body.reason, actor=body.by or HTTP_ACTOR)
        return changed(stored)

    @router.post(
        "/v1/models/{model}/rollout/abort",
        summary="End the active rollout, keeping the champion",
        responses=_error_docs(400, 401, 403, 404, 409, 422, 503),
        dependencies=admin,
    )
    async def abort(model: ModelName, body: Override) -> Response:
        stored = await asyncio.to_thread(ws.abort, model, reason=body.reason, actor=body.by or HTTP_ACTOR)
        return changed(stored)

    return router


def _error_docs(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorBody} for status in statuses}
