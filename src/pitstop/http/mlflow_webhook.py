"""`POST /v1/mlflow/webhook`: MLflow 3's webhooks, so a move of `@challenger` is imported at once
instead of at the next `pitstop mlflow sync` poll.

A delivery is acted on only when its `X-MLflow-Signature` signs the body with the secret in the
environment variable `mlflow.webhook_secret_env` names (none configured: every delivery is refused),
its `X-MLflow-Timestamp` is within 5 minutes, and its `X-MLflow-Delivery-Id` was not handled before
(a repeat is answered with what was done the first time). Only `model_version_alias.created` for
`challenger` on an MLflow model that `mlflow.models` maps to a pitstop model acts: it runs one sync
(`mlflow_sync.sync`) of the version the delivery names, on a worker thread, never on the event loop
serving predictions.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader

from pitstop import mlflow_sync
from pitstop.errors import UsageError
from pitstop.http.auth import ForbiddenError, UnauthorizedError
from pitstop.http.edge import edge
from pitstop.http.payloads import error_docs
from pitstop.notify.signing import InvalidSignature, verify
from pitstop.store import mlflow_deliveries

if TYPE_CHECKING:
    from pitstop.context import Context

SIGNATURE_HEADER = "X-MLflow-Signature"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
DELIVERY_HEADER = "X-MLflow-Delivery-Id"
ALIAS_CREATED = "model_version_alias.created"

SIGNATURE_SCHEME = "mlflowSignature"  # the security scheme's name in /openapi.json

# Declared so /openapi.json shows that the receiver takes MLflow's signature, not pitstop's token;
# checked by `_checked` (401 without a valid one, 403 with no secret configured), not by FastAPI.
signature = APIKeyHeader(
    name=SIGNATURE_HEADER,
    scheme_name=SIGNATURE_SCHEME,
    description=(
        f"MLflow's HMAC-SHA256 signature of the delivery (with {DELIVERY_HEADER} and {TIMESTAMP_HEADER}), "
        "by the secret in the environment variable mlflow.webhook_secret_env names"
    ),
    auto_error=False,
)

router = APIRouter()


@router.post(
    "/v1/mlflow/webhook",
    summary="MLflow webhook receiver: a move of @challenger imports (and gates, rolls out) the version",
    responses=error_docs(400, 401, 403, 422),
    dependencies=[Depends(signature)],
)
async def mlflow_webhook(request: Request) -> JSONResponse:
    ws = edge(request).gateway.ws
    body = await request.body()
    delivery_id = _checked(request, body, ws.config.mlflow.webhook_secret_env)
    seen = await asyncio.to_thread(_handled, ws, delivery_id)
    if seen is not None:
        return JSONResponse({"delivery_id": delivery_id, "repeated": True, **seen})
    event, data = _event(body)
    outcome = await asyncio.to_thread(_act, ws, event, data)
    await asyncio.to_thread(_record, ws, delivery_id, event, outcome)
    return JSONResponse({"delivery_id": delivery_id, "repeated": False, **outcome})


def _checked(request: Request, body: bytes, secret_env: str | None) -> str:
    """The delivery id of a delivery signed with the configured secret, recently."""
    secret = os.environ.get(secret_env) if secret_env else None
    if not secret:
        raise ForbiddenError(
            "MLflow webhooks are refused: no secret is configured (mlflow.webhook_secret_env names the "
            "environment variable holding the secret given to MLflow's create_webhook)"
        )
    headers = request.headers
    delivery_id, timestamp = headers.get(DELIVERY_HEADER), headers.get(TIMESTAMP_HEADER)
    signature = headers.get(SIGNATURE_HEADER)
    if not delivery_id or not timestamp or not signature:
        raise UnauthorizedError(
            f"an MLflow delivery carries {SIGNATURE_HEADER}, {TIMESTAMP_HEADER} and "
            f"{DELIVERY_HEADER}; this one lacks one"
        )
    try:
        verify(secret, body, timestamp, signature, delivery_id=delivery_id)
    except InvalidSignature as error:
        raise UnauthorizedError(f"MLflow delivery refused: {error}") from None
    return delivery_id


def _event(body: bytes) -> tuple[str, dict[str, Any]]:
    try:
        payload = json.loads(body)
        event = f"{payload['entity']}.{payload['action']}"
        data = payload.get("data") or {}
    except (ValueError, KeyError, TypeError):
        raise UsageError("not an MLflow webhook payload (entity, action, data)", field="body") from None
    if not isinstance(data, dict):
        raise UsageError("`data` must be an object", field="data")
    return event, data


def _act(ws: Context, event: str, data: dict[str, Any]) -> dict[str, Any]:
    """Run one sync for a `@challenger` move on a mapped model; else say why nothing was done."""
    if event != ALIAS_CREATED or data.get("alias") != mlflow_sync.CHALLENGER:
        return {"ignored": f"not {ALIAS_CREATED} for @{mlflow_sync.CHALLENGER}"}
    name = str(data.get("name"))
    models = [model for model, mapped in ws.config.mlflow.models.items() if mapped == name]
    if not models:
        return {"ignored": f"MLflow model {name!r} is not mapped to a pitstop model in mlflow.models"}
    version = str(data.get("version"))
    results = [mlflow_sync.sync(ws, m, name=name, version=version, actor="mlflow-webhook") for m in models]
    return {"synced": [result.to_dict() for result in results]}


def _handled(ws: Context, delivery_id: str) -> dict[str, Any] | None:
    with ws.reading() as conn:
        return mlflow_deliveries.handled(conn, delivery_id)


def _record(ws: Context, delivery_id: str, event: str, outcome: dict[str, Any]) -> None:
    with ws.writing() as conn:
        mlflow_deliveries.record(conn, delivery_id, event, outcome, ws.clock.now())
