"""`pitstop report`: one self-contained HTML file showing what the controller knew about a rollout, or
(`--shadow`) how a shadow set by hand compares with the champion."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pitstop.cli.common import JsonOption, WorkspaceOption, console, emit, open_workspace
from pitstop.errors import UsageError, mention


def report(
    model: Annotated[str, typer.Argument(help="model name")],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="the HTML file to write (folders are created)", show_default=False),
    ],
    rollout: Annotated[
        int | None, typer.Option("--rollout", help="a rollout's id (default: the model's latest)")
    ] = None,
    shadow: Annotated[
        bool,
        typer.Option(
            "--shadow",
            help="report the shadow set by hand (`pitstop route --mode shadow`) instead of a rollout: "
            "what `pitstop compare` says, with charts",
        ),
    ] = False,
    policy: Annotated[
        str | None,
        typer.Option(
            "--policy",
            metavar="FILE|NAME",
            help="with --shadow: judge by this policy's shadow rules instead of pitstop.yaml's",
        ),
    ] = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write a rollout's report: timeline, share, error and latency charts, samples, gate, shadow, A/B
    and the decision in words; one HTML file that opens offline. With --shadow, the report of a shadow
    set by hand instead."""
    if shadow and rollout is not None:
        raise UsageError(
            f"{mention('rollout')} names a rollout; {mention('shadow', True)} reports the "
            "shadow set by hand: give one of them"
        )
    if shadow:
        _hand_made(model, out, policy, workspace, as_json)
        return
    if policy is not None:
        raise UsageError(
            f"{mention('policy')} applies to a shadow set by hand only: add {mention('shadow', True)}"
        )
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


def _hand_made(model: str, out: Path, policy: str | None, workspace: Path | None, as_json: bool) -> None:
    from pitstop.report.hand_made import hand_made_shadow_report, render_hand_made_shadow_report

    ws = open_workspace(workspace)
    try:
        page = hand_made_shadow_report(ws, model, policy)
    finally:
        ws.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_hand_made_shadow_report(page), encoding="utf-8")
    size_mb = out.stat().st_size / 1e6
    emit(
        as_json,
        {"path": str(out), "shadow": page.result.to_dict()},
        lambda: console.print(
            f"wrote {out} ({size_mb:.1f} MB): {model} shadow v{page.result.shadow_version} set by hand. "
            f"{page.words.verdict}"
        ),
    )


def register(app: typer.Typer) -> None:
    app.command()(report)
