"""`pitstop report`: one self-contained HTML file showing what the controller knew about a rollout."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pitstop.cli.common import JsonOption, WorkspaceOption, console, emit, open_workspace


def report(
    model: Annotated[str, typer.Argument(help="model name")],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="the HTML file to write (folders are created)", show_default=False),
    ],
    rollout: Annotated[
        int | None, typer.Option("--rollout", help="a rollout's id (default: the model's latest)")
    ] = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write a rollout's report: timeline, share, error and latency charts, samples, gate, shadow, A/B
    and the decision in words; one HTML file that opens offline."""
    from pitstop.report import report_data, write_html  # plotly loads only for this command

    ws = open_workspace(workspace)
    try:
        data = report_data(ws, model, rollout)
        path = write_html(data, out)
    finally:
        ws.close()
    size_mb = path.stat().st_size / 1e6
    emit(
        as_json,
        {"path": str(path), "rollout_id": data.rollout_id},
        lambda: console.print(
            f"wrote {path} ({size_mb:.1f} MB): {model} rollout {data.rollout_id}, "
            f"{data.outcome or 'in progress'}. {data.words.headline}"
        ),
    )


def register(app: typer.Typer) -> None:
    app.command()(report)
