"""`pitstop mlflow …`: keep a model in step with an MLflow Model Registry."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer

from pitstop.cli.common import ByOption, JsonOption, PitstopTyper, WorkspaceOption, console, open_workspace
from pitstop.durations import parse_positive_duration

mlflow_app = PitstopTyper(
    help="Keep a model in step with an MLflow Model Registry: import what @challenger names.",
    no_args_is_help=True,
)


@mlflow_app.command("sync")
def sync_command(
    model: Annotated[str, typer.Argument(help="pitstop model the MLflow versions become versions of")],
    name: Annotated[str, typer.Option("--name", help="MLflow registered model name")],
    tracking_uri: Annotated[
        str | None,
        typer.Option(help="MLflow server; default MLFLOW_TRACKING_URI, then mlflow.tracking_uri"),
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="look once and exit, instead of polling")] = False,
    interval: Annotated[str, typer.Option(help="time between looks when polling, e.g. 30s or 5m")] = "30s",
    on_challenger: Annotated[
        str | None,
        typer.Option(help="register, gate or rollout (default: mlflow.on_challenger in pitstop.yaml)"),
    ] = None,
    workspace: WorkspaceOption = None,
    by: ByOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import the version MLflow's @challenger alias names, unless already imported; then gate it and
    start a rollout if --on-challenger (or mlflow.on_challenger) says so. Then (unless
    mlflow.write_back is false) move MLflow's @champion and @previous to pitstop's and tag each
    promoted or rolled-back challenger with the decision. Polls until stopped, printing what each look
    did (one JSON object per look with --json); --once looks once."""
    from pitstop.config import ChallengerAction
    from pitstop.errors import UsageError
    from pitstop.mlflow_sync import Mirror, SyncOutcome, mirror
    from pitstop.mlflow_sync import sync as sync_once

    if on_challenger is not None and on_challenger not in {a.value for a in ChallengerAction}:
        raise UsageError(f"--on-challenger {on_challenger!r}: write register, gate or rollout")
    try:
        pause = parse_positive_duration(interval).total_seconds()
    except ValueError as error:
        raise UsageError(f"--interval: {error}") from None
    ws = open_workspace(workspace)
    while True:
        result = sync_once(ws, model, name=name, tracking_uri=tracking_uri, action=on_challenger, actor=by)
        mirrored = Mirror(model, name)
        if ws.config.mlflow.write_back:
            mirrored = mirror(ws, model, name=name, tracking_uri=tracking_uri)
        if once or result.outcome is SyncOutcome.IMPORTED or mirrored.lines():
            if as_json:
                print(json.dumps(result.to_dict() | {"mirror": mirrored.to_dict()}), flush=True)
            else:
                for line in [result.describe(), *mirrored.lines()]:
                    console.print(line)
        if once:
            return
        time.sleep(pause)


def register(app: typer.Typer) -> None:
    app.add_typer(mlflow_app, name="mlflow")
