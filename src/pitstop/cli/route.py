"""`pitstop route`: show or set a model's routing table by hand."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from pitstop.cli.common import ByOption, JsonOption, WorkspaceOption, console, emit, open_workspace, table
from pitstop.errors import UsageError
from pitstop.formats import fmt_time

MODES: dict[str, Literal["shadow", "split", "off"]] = {"shadow": "shadow", "split": "split", "off": "off"}


def route(
    model: Annotated[str, typer.Argument(help="model name")],
    challenger: Annotated[
        str | None, typer.Option(help="version to shadow or to serve to a share of users")
    ] = None,
    mode: Annotated[str | None, typer.Option(help="shadow (users see only the champion) or split")] = None,
    share: Annotated[
        float | None,
        typer.Option(
            help="split: share of users (sticky by user_id) served by the challenger "
            "(default: the policy's ab_test.share, 0.1 as shipped)",
            show_default=False,
        ),
    ] = None,
    off: Annotated[bool, typer.Option("--off", help="champion only: no shadow, no split")] = False,
    reason: Annotated[str | None, typer.Option(help="why: recorded with the routing_changed event")] = None,
    workspace: WorkspaceOption = None,
    by: ByOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a model's routing, or set it: --challenger V --mode shadow|split [--share S], or --off.

    Running gateways pick a change up within their poll interval, on every worker.
    """
    with open_workspace(workspace) as ws:
        if not off and challenger is None and mode is None and share is None:
            current = ws.routing(model)
            emit(as_json, current.to_dict() if current else None, lambda: _render(model, current, None))
            return
        if off and mode not in (None, "off"):
            raise UsageError("--off: give no --mode (or --mode off)")
        chosen = "off" if off else mode
        if chosen is None:
            raise UsageError("--mode: say shadow or split (or use --off)")
        if chosen not in MODES:
            raise UsageError(f"--mode: must be shadow or split, got {chosen!r}")
        if reason is None:
            raise UsageError("--reason: say why the routing is changed by hand")
        before = ws.routing(model)
        result = ws.route(
            model,
            mode=MODES[chosen],
            challenger=challenger,
            share=share,
            reason=reason,
            actor=by,
        )
        note = "unchanged" if before is not None and before.version == result.version else "now"
        emit(as_json, result.to_dict(), lambda: _render(model, result, note))


def _render(model: str, current: object, note: str | None) -> None:
    from pitstop.routing.table import RoutingTable

    if not isinstance(current, RoutingTable):
        console.print(f"{model}: no champion, nothing is served")
        return
    prefix = f"routing is {note}" if note else "routing"
    out = table(f"{model}: {prefix} {current.describe()}", "field", "value")
    for key in (
        "champion",
        "challenger",
        "challenger_share",
        "shadow",
        "standby",
        "salt",
        "rollout_id",
        "step",
    ):
        value = getattr(current, key)
        out.add_row(key, "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value))
    out.add_row("created", fmt_time(current.created_at))
    console.print(out)


def register(app: typer.Typer) -> None:
    app.command("route")(route)
