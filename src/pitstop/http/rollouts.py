"""Rollouts over HTTP: the status a person or a pipeline polls, and the manual overrides.

`GET /v1/models/{model}/rollout` answers what `pitstop rollout status --json` prints; the overrides
`POST /v1/models/{model}/rollout/{promote|rollback|abort|resume|approve}` are admin actions (the
operator token, refused when none is configured: `auth.py`) and go through the same code as the
CLI's, so history records them alike. Store work runs on a worker thread, never on the event loop
that serves predictions.

A status aggregates the phase's evidence (seconds on a large window), so it is built once and shared
(`cached.Cached`): concurrent callers wait for one build, and callers within `STATUS_SECONDS` get it
while the model's routing version in this gateway and its latest event are unchanged; a routing
change, a transition, an override or a new rollout builds a new one within one `poll_interval`, as
the gateway itself takes up a routing change. Those two are read (a few indexed reads on a worker
thread) at most once per `poll_interval` too, whatever the number of callers: a cached status costs
no store access and no thread. Each answer adds `gateway`, this gateway's own view of the model read
from memory (`gateway_view`: versions loaded or not and why, shadow process, log, store), since
`pitstop rollout status` reads only the store.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from pitstop import registry
from pitstop.events import list_events
from pitstop.http.edge import OPERATOR, edge
from pitstop.http.payloads import MAX_ID_LENGTH, STRICT, TEXT_PATTERN, Identifier, Reason, error_docs
from pitstop.rollout import actions
from pitstop.rollout.records import StoredRollout
from pitstop.serving.cached import Cached

if TYPE_CHECKING:
    from pitstop.serving.gateway import Gateway

HTTP_ACTOR = "api"  # who an override was made by when the request does not say
STATUS_SECONDS = 5.0  # longest a status is reused while nothing it depends on changed (the dashboard's poll)
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


router = APIRouter(tags=["rollouts"])


def status_cache(gateway: Gateway) -> Cached[tuple[str, int | None], dict[str, Any]]:
    """Statuses of `gateway`'s workspace, each built once and shared for `STATUS_SECONDS`."""

    def build(key: tuple[str, int | None]) -> dict[str, Any]:
        status = actions.status(gateway.ws, *key).to_dict()
        loaded: dict[str, Any] = json.loads(json.dumps(status, default=str))
        return loaded

    return Cached(build, STATUS_SECONDS)


def status_versions(gateway: Gateway) -> Cached[str, tuple[int | None, int | None]]:
    """What a cached status of a model depends on, read at most once per `poll_interval`."""
    return Cached(partial(status_version, gateway), gateway.settings.poll_interval.total_seconds())


def _answer(data: dict[str, Any]) -> Response:
    return Response(json.dumps(data, default=str), media_type="application/json")


@router.get(
    "/v1/models/{model}/rollout",
    summary="The active (or latest, or given) rollout: phase, share, live evidence, next check",
    responses=error_docs(404, 422, 503),
)
async def status(
    request: Request,
    model: ModelName,
    rollout: Annotated[int | None, Query(ge=1, le=ROW_ID_MAX, description="a past rollout's id")] = None,
) -> Response:
    shared = edge(request)
    found = await shared.statuses.get((model, rollout), await shared.status_versions.get(model))
    return _answer({**found, "gateway": gateway_view(shared.gateway, model)})


async def _override(
    request: Request, act: Callable[..., StoredRollout], model: str, body: Override, **more: Any
) -> Response:
    """Run a manual override on a worker thread, as `body.by` (default `HTTP_ACTOR`); the rollout after it."""
    ws, actor = edge(request).gateway.ws, body.by or HTTP_ACTOR
    stored = await asyncio.to_thread(act, ws, model, reason=body.reason, actor=actor, **more)
    return _answer(stored.to_dict())


_OVERRIDE_ERRORS = error_docs(400, 401, 403, 404, 409, 422, 503)


@router.post(
    "/v1/models/{model}/rollout/promote",
    summary="Advance the active rollout one phase or step by hand (to_end: promote now)",
    responses=_OVERRIDE_ERRORS,
    dependencies=[OPERATOR],
)
async def promote(request: Request, model: ModelName, body: Promotion) -> Response:
    return await _override(request, actions.promote, model, body, to_end=body.to_end)


@router.post(
    "/v1/models/{model}/rollout/rollback",
    summary="All traffic back to the champion at once (after a promotion: the previous champion)",
    responses=_OVERRIDE_ERRORS,
    dependencies=[OPERATOR],
)
async def rollback(request: Request, model: ModelName, body: Override) -> Response:
    return await _override(request, actions.rollback, model, body)


@router.post(
    "/v1/models/{model}/rollout/abort",
    summary="End the active rollout, keeping the champion",
    responses=_OVERRIDE_ERRORS,
    dependencies=[OPERATOR],
)
async def abort(request: Request, model: ModelName, body: Override) -> Response:
    return await _override(request, actions.abort, model, body)


@router.post(
    "/v1/models/{model}/rollout/resume",
    summary="Clear the active rollout's hold; its phase or step restarts its evidence window",
    responses=_OVERRIDE_ERRORS,
    dependencies=[OPERATOR],
)
async def resume(request: Request, model: ModelName, body: Override) -> Response:
    return await _override(request, actions.resume, model, body)


@router.post(
    "/v1/models/{model}/rollout/approve",
    summary="Approve leaving the current ramp step (its gate asks for a person's approval)",
    responses=_OVERRIDE_ERRORS,
    dependencies=[OPERATOR],
)
async def approve(request: Request, model: ModelName, body: Override) -> Response:
    return await _override(request, actions.approve, model, body)


def gateway_view(gateway: Gateway, model: str) -> dict[str, Any]:
    """What this gateway serves of `model`, read from memory at each call (never cached): whether the
    champion, challenger and shadow are loaded (why not), its shadow process, and the prediction
    log, store and degraded state of `GET /v1/health`. None for the model when not served here."""
    health = gateway.health().to_dict()
    return {
        "status": health["status"],
        "model": health["models"].get(model),
        "prediction_log": health["prediction_log"],
        "store": health["store"],
        "degraded": health["degraded"],
    }


def status_version(gateway: Gateway, model: str) -> tuple[int | None, int | None]:
    """What a cached status of `model` depends on besides time: the routing version this gateway
    serves (None: not served here) and the model's latest event. NotFoundError for an unknown model."""
    routing = gateway.routing(model).version if model in gateway.models else None
    with gateway.ws.reading() as conn:
        latest = list_events(conn, registry.get_model(conn, model).id, limit=1)
    return routing, latest[-1].id if latest else None
