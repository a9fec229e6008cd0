"""The gateway's live dashboard: `GET /` (a page that polls), `GET /v1/dashboard` (its JSON) and
plotly.js served from pitstop's own copy (`GET /static/plotly.min.js`).

The JSON is rebuilt at most once per poll interval (or nine times its build time, if longer) whatever
the number of viewers, on a low-priority worker thread (SQL aggregation and figure building never run
on the event loop that serves predictions): `serving.cached.Cached`, which the rollout status shares.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from pitstop.http.edge import edge
from pitstop.report.dashboard import dashboard_data
from pitstop.report.html import plotly_js_path, render_dashboard
from pitstop.serving.cached import Cached

if TYPE_CHECKING:
    from pitstop.serving.gateway import Gateway

router = APIRouter()


def dashboard_cache(gateway: Gateway, seconds: float) -> Cached[None, dict[str, Any]]:
    """The dashboard's JSON of `gateway`, rebuilt at most once per `seconds`."""
    return Cached(lambda _: dashboard_data(gateway), seconds)


@router.get("/", include_in_schema=False, response_class=HTMLResponse)
async def page(request: Request) -> Response:
    return HTMLResponse(render_dashboard(edge(request).dashboard_every))


@router.get(
    "/v1/dashboard",
    summary="Every model: versions, phase, share, rollout series and charts, events; gateway health",
)
async def data(request: Request) -> Response:
    return JSONResponse(await edge(request).dashboard.get(None))


@router.get("/static/plotly.min.js", include_in_schema=False)
async def plotly_js() -> Response:
    return FileResponse(
        plotly_js_path(), media_type="text/javascript", headers={"cache-control": "public, max-age=86400"}
    )
