"""`pitstop gateways`: every gateway that has reported a heartbeat, live or stale, and what it serves."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import typer

from pitstop.cli.common import JsonOption, WorkspaceOption, console, emit, open_workspace, table
from pitstop.formats import fmt_time

if TYPE_CHECKING:  # the store loads when the command runs, not for `pitstop --help`
    from pitstop.store.gateways import Heartbeat


def gateways(workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """List the gateways (live: seen within serving.gateway_timeout, else stale) and, per model, the
    routing version each serves and the versions it has loaded and warmed."""
    with open_workspace(workspace) as ws:
        now, timeout = ws.clock.now(), ws.config.serving.gateway_timeout
        found = ws.gateways()
    emit(as_json, [h.to_dict(now, timeout) for h in found], lambda: _render(found, now, timeout))


def _versions(versions: tuple[int, ...]) -> str:
    return ", ".join(f"v{v}" for v in versions) or "-"


def _render(found: list[Heartbeat], now: datetime, timeout: timedelta) -> None:
    if not found:
        console.print("no gateway has reported a heartbeat")
        return
    out = table("gateways", "gateway", "state", "last seen", "model", "routing", "loaded", "warmed")
    for heartbeat in found:
        state = "live" if heartbeat.is_live(now, timeout) else "stale"
        seen = fmt_time(heartbeat.last_seen)
        if not heartbeat.serving:
            out.add_row(heartbeat.gateway, state, seen, "-", "-", "-", "-")
        for served in heartbeat.serving:
            out.add_row(
                heartbeat.gateway,
                state,
                seen,
                served.model,
                f"v{served.routing_version}",
                _versions(served.loaded),
                _versions(served.warmed),
            )
    console.print(out)


def register(app: typer.Typer) -> None:
    app.command("gateways")(gateways)
