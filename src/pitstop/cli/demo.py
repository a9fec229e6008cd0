"""`pitstop demo`: the whole story on generated data, in a demo workspace (`pitstop.demo.folder`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pitstop.cli.common import JsonOption, console, print_json


def demo(
    workspace: Annotated[
        Path | None,
        typer.Option(
            "--workspace",
            "-w",
            help="folder for the demo workspace (default: a new temp folder); an earlier demo's workspace"
            " there is replaced, any other refused",
        ),
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="folder for one HTML report per rollout")] = Path(
        "pitstop-demo"
    ),
    live: Annotated[
        bool, typer.Option("--live", help="run it over real HTTP: a gateway, its controller and live traffic")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Tell pitstop's story on a generated delivery-time dataset: every gate catching a bad model."""
    shown = Console(quiet=True) if as_json else console
    if live:
        from pitstop.demo.live import run_live_demo

        live_result = run_live_demo(workspace, shown, out)
        if as_json:
            print_json(live_result.to_dict())
        return
    from pitstop.demo.story import run_demo  # scikit-learn and the generator load only when needed

    result = run_demo(workspace, shown, out=out)
    if as_json:
        print_json(result.to_dict())


def register(app: typer.Typer) -> None:
    app.command()(demo)
