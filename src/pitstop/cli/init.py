"""`pitstop init` and `pitstop db upgrade`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pitstop.cli.common import JsonOption, PitstopTyper, WorkspaceOption, console, emit


def init(
    directory: Annotated[
        Path | None, typer.Argument(help="folder to make a workspace (default: current)")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Write a commented pitstop.yaml holding every default, and create the store."""
    from pitstop.config import CONFIG_FILE  # the store and its migrations load only when run
    from pitstop.context import resolve_workspace_path
    from pitstop.workspace import Workspace

    folder = resolve_workspace_path(directory)
    existed = (folder / CONFIG_FILE).exists()
    workspace = Workspace.init(folder)
    data = {
        "workspace": str(workspace.path),
        "config": str(workspace.path / CONFIG_FILE),
        "config_created": not existed,
        "database_url": workspace.engine.url.render_as_string(),
    }
    emit(
        as_json,
        data,
        lambda: console.print(
            f"{'kept existing' if existed else 'wrote'} {data['config']}\nstore ready: {data['database_url']}"
        ),
    )


db_app = PitstopTyper(help="Manage the store's schema.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """Apply pending schema migrations to the store."""
    from pitstop.workspace import Workspace

    before, after = Workspace(workspace, check_schema=False).upgrade()
    change = "already at" if before == after else f"{before or 'empty'} ->"
    emit(as_json, {"from": before, "to": after}, lambda: console.print(f"store schema {change} {after}"))


def register(app: typer.Typer) -> None:
    app.command()(init)
    app.add_typer(db_app, name="db")
