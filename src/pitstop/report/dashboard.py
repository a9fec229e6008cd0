"""The gateway's live dashboard: `GET /` (a page that polls), `GET /v1/dashboard` (its JSON) and plotly.js
served from the installed plotly package (`GET /static/plotly.min.js`): read-only, no external network.

`serving.app.create_app` mounts it on every gateway (`create_app(gateway, dashboard_every=…)` sets how
often the page polls); mount it once per app: with two, the first route of a path wins.

The JSON is rebuilt at most once per `cache_seconds` whatever the number of viewers, on a worker thread
(SQL aggregation and figure building never run on the event loop that serves predictions).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from sqlalchemy import Connection

from pitstop import registry
from pitstop.errors import StoreUnavailableError
from pitstop.events import list_events
from pitstop.registry import Alias, ModelInfo
from pitstop.report.data import gather_report
from pitstop.report.figures import build_figures, figure_json
from pitstop.report.html import render_dashboard
from pitstop.report.values import ReportData
from pitstop.rollout.apply import describe
from pitstop.rollout.records import StoredRollout, active_rollout, latest_rollout
from pitstop.rollout.state import challenger_share

if TYPE_CHECKING:
    from pitstop.serving.gateway import Gateway
    from pitstop.serving.metrics import GatewayMetrics

RECENT_EVENTS = 15
POLL_SECONDS = 5.0  # how often the page polls by default: live enough, and cheap for the gateway
COUNTERS = {
    "pitstop_predictions": "predictions",
    "pitstop_prediction_errors": "prediction errors",
    "pitstop_invalid_requests": "invalid requests (4xx)",
    "pitstop_shadow_timeouts": "shadow timeouts",
    "pitstop_shadow_errors": "shadow errors",
    "pitstop_shadow_skipped": "shadow calls skipped",
    "pitstop_predlog_written": "prediction records written",
    "pitstop_predlog_write_failures": "prediction log write failures",
    "pitstop_predlog_dropped": "prediction records dropped",
    "pitstop_labels_accepted": "labels accepted",
    "pitstop_routing_errors": "routing changes not applied",
}


def plotly_js_path() -> Path:
    """plotly.min.js as shipped inside the installed plotly package (the same file the report inlines)."""
    return Path(str(resources.files("plotly").joinpath("package_data", "plotly.min.js")))


def dashboard_router(
    gateway: Gateway, *, every: float = POLL_SECONDS, cache_seconds: float | None = None
) -> APIRouter:
    """The dashboard's routes for `gateway`; the page polls every `every` seconds."""
    router = APIRouter()
    cache = _Cached(lambda: dashboard_data(gateway), every if cache_seconds is None else cache_seconds)
    script = plotly_js_path()

    @router.get("/", include_in_schema=False, response_class=HTMLResponse)
    async def page() -> Response:
        return HTMLResponse(render_dashboard(every))

    @router.get(
        "/v1/dashboard",
        summary="Every model: versions, phase, share, rollout series and charts, events; gateway health",
    )
    async def data() -> Response:
        return JSONResponse(await cache.get())

    @router.get("/static/plotly.min.js", include_in_schema=False)
    async def plotly_js() -> Response:
        return FileResponse(
            script, media_type="text/javascript", headers={"cache-control": "public, max-age=86400"}
        )

    return router


class _Cached:
    """One value rebuilt on a thread when older than `ttl` seconds; concurrent readers share one rebuild."""

    def __init__(self, build: Callable[[], dict[str, Any]], ttl: float) -> None:
        self.build, self.ttl = build, ttl
        self.value: dict[str, Any] | None = None
        self.built_at = 0.0
        self.lock = asyncio.Lock()

    async def get(self) -> dict[str, Any]:
        async with self.lock:
            if self.value is None or time.monotonic() - self.built_at >= self.ttl:
                self.value = await asyncio.to_thread(self.build)
                self.built_at = time.monotonic()
            return self.value


def dashboard_data(gateway: Gateway, *, recent: int = RECENT_EVENTS) -> dict[str, Any]:
    """What the dashboard shows, as JSON: gateway health, and per model its versions, phase, share, the
    report series of its active (or latest) rollout with the charts built from them, and recent events."""
    now = gateway.clock.now()
    health = gateway_health(gateway)
    views: list[tuple[dict[str, Any], ReportData | None]] = []
    try:
        with gateway.ws.reading() as conn:
            views = [_model_view(conn, gateway, info, now, recent) for info in registry.list_models(conn)]
    except StoreUnavailableError as error:
        health["store_error"] = str(error)
    models = []
    for view, report in views:
        if report is not None:
            view["report"] = report.to_dict()
            view["words"] = view["report"]["words"]
            view["figures"] = {name: figure_json(fig) for name, fig in build_figures(report).items()}
        models.append(view)
    return {"generated_at": now.isoformat(), "health": health, "models": models}


def _model_view(
    conn: Connection, gateway: Gateway, info: ModelInfo, now: datetime, recent: int
) -> tuple[dict[str, Any], ReportData | None]:
    routing = gateway.routing(info.name) if info.name in gateway.models else None
    stored = active_rollout(conn, info.id) or latest_rollout(conn, info.id)
    report = gather_report(conn, info.name, stored.state.id, now) if stored is not None else None
    view: dict[str, Any] = {
        "name": info.name,
        "task": info.task.value,
        "champion": routing.champion if routing else info.aliases.get(Alias.CHAMPION.value),
        "challenger": routing.challenger if routing else info.aliases.get(Alias.CHALLENGER.value),
        "share": routing.challenger_share if routing else None,
        "routing": _unsalted(routing.to_dict()) if routing else None,
        "rollout": stored.to_dict() if stored else None,
        **_phase(stored),
        "events": [_unsalted_event(event.to_dict()) for event in list_events(conn, info.id, limit=recent)],
        "figures": {},
        "words": None,
    }
    return view, report


def _unsalted(data: dict[str, Any]) -> dict[str, Any]:
    """`data` without a routing salt: the dashboard is open, and a salt lets a caller pick user ids
    that land in the arm it wants (see the gateway's routing endpoint)."""
    return {key: value for key, value in data.items() if key != "salt"}


def _unsalted_event(event: dict[str, Any]) -> dict[str, Any]:
    data = event.get("data")
    return {**event, "data": _unsalted(data)} if isinstance(data, dict) else event


def _phase(stored: StoredRollout | None) -> dict[str, Any]:
    """The phase as the API has it (`phase`), as people say it (`phase_label`), and its badge style."""
    if stored is None:
        return {"phase": None, "phase_label": "no rollout", "phase_class": ""}
    state = stored.state
    label = describe(state, challenger_share(state, stored.policy))
    style = state.outcome.value if state.outcome else state.phase.value
    return {"phase": state.phase.value, "phase_label": label, "phase_class": style}


def gateway_health(gateway: Gateway) -> dict[str, Any]:
    """Readiness with its reasons, the prediction log's queue, and the gateway's error counters."""
    reasons = gateway.readiness()
    log = gateway.log
    return {
        "ready": not reasons,
        "reasons": reasons,
        "models": gateway.models,
        "log": {
            "depth": log.depth,
            "capacity": log.queue_size,
            "healthy": log.healthy,
            "last_error": log.last_error,
        },
        "shadow_inflight": gateway.shadow.inflight,
        "counters": counter_totals(gateway.metrics),
        "store_error": None,
    }


def counter_totals(metrics: GatewayMetrics) -> dict[str, float]:
    """Each counter of this gateway process summed over its labels, by a name people read."""
    totals = dict.fromkeys(COUNTERS.values(), 0.0)
    for family in metrics.registry.collect():
        name = COUNTERS.get(family.name)
        if name is None:
            continue
        totals[name] = sum(s.value for s in family.samples if s.name == f"{family.name}_total")
    return totals
