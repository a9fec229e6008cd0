"""What the endpoints of one app share, and the token checks they depend on.

The endpoints are module-level functions (`app`, `rollouts`, `dashboard`); each finds its app's
`Edge` in `request.app.state.edge`: the gateway, the tokens, the body limit and the caches built once
per app (`create_app`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import ClientDisconnect

from pitstop.http.auth import Access, Scope
from pitstop.serving.cached import Cached
from pitstop.serving.errors import IncompleteBodyError, PayloadTooLargeError

if TYPE_CHECKING:
    from pitstop.serving.gateway import Gateway

BEARER_SCHEME = "bearerToken"  # the security scheme's name in /openapi.json

# Declared as a security scheme so /openapi.json shows which endpoints take the token; checked by
# `Access.check` (401 without a token, 403 with a wrong one or none configured), not by FastAPI.
bearer = HTTPBearer(
    scheme_name=BEARER_SCHEME,
    description="the operator token (overrides, labels) or the labels token (labels only); see auth.py",
    auto_error=False,
)


@dataclass(frozen=True)
class Edge:
    """One app's gateway, tokens, body limit, and the answers it builds once and shares."""

    gateway: Gateway
    access: Access
    max_body_bytes: int
    statuses: Cached[tuple[str, int | None], dict[str, Any]]  # rollout status by (model, rollout)
    status_versions: Cached[str, tuple[int | None, int | None]]  # what a cached status depends on
    dashboard: Cached[None, dict[str, Any]]
    dashboard_every: float  # how often the dashboard page polls, in seconds


def edge(request: Request) -> Edge:
    found: Edge = request.app.state.edge
    return found


def check_token(request: Request, scope: Scope) -> None:
    """Raise UnauthorizedError or ForbiddenError unless the request may make a call of `scope`."""
    access = edge(request).access
    if not access.guarded(scope):  # predict without a predict token: no header to read
        return
    peer = request.client.host if request.client is not None else None
    access.check(scope, request.headers.get("authorization"), peer)


def requires(scope: Scope) -> Callable[..., None]:
    """A dependency that checks the token of `scope` (and documents the bearer scheme)."""

    def check(request: Request, _: HTTPAuthorizationCredentials | None = Security(bearer)) -> None:
        check_token(request, scope)

    return check


OPERATOR = Security(requires(Scope.OPERATOR))
LABELS = Security(requires(Scope.LABELS))


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with PayloadTooLargeError as soon as it exceeds `limit` bytes.

    A client that hangs up mid-body (a load generator stopping, a client timeout) is a bad request
    like any other, counted as a 400: unhandled, it made uvicorn log a traceback for nothing wrong.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(limit)
    chunks = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLargeError(limit)
            chunks.append(chunk)
    except ClientDisconnect as gone:
        raise IncompleteBodyError(size) from gone
    return b"".join(chunks)
