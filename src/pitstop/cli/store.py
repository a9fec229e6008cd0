"""`pitstop store prune`: the prediction log's retention, run by hand."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from pitstop.cli.common import JsonOption, PitstopTyper, WorkspaceOption, console, emit, open_workspace, table
from pitstop.formats import fmt_time

if TYPE_CHECKING:  # the store loads when the command runs, not for `pitstop --help`
    from pitstop.rollout.log_upkeep import Pruning

store_app = PitstopTyper(help="Look after the store's data.", no_args_is_help=True)


@store_app.command("prune")
def prune(
    workspace: WorkspaceOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="say what would be removed; remove nothing")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Remove prediction-log records older than store.retention: whole days on PostgreSQL, batches on
    SQLite; records an open rollout may read are kept."""
    with open_workspace(workspace) as ws:
        done = ws.prune_log(dry_run=dry_run)
    emit(as_json, done.to_dict(), lambda: _render(done))


def _render(done: Pruning) -> None:
    verb = "would remove" if done.dry_run else "removed"
    held = (
        f" (held back to the open rollout started {fmt_time(done.held_by_rollout)})"
        if done.held_by_rollout
        else ""
    )
    console.print(f"{verb} {done.rows} prediction records made before {fmt_time(done.before)}{held}")
    named = [part for part in done.parts if part.name is not None]
    if named:
        out = table("partitions", "partition", "rows")
        for part in named:
            out.add_row(part.name, str(part.rows))
        console.print(out)


def register(app: typer.Typer) -> None:
    app.add_typer(store_app, name="store")
