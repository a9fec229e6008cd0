"""`pitstop compare`: a shadow set by hand, judged live as a rollout's shadow phase would judge it."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.panel import Panel

from pitstop.cli.common import JsonOption, WorkspaceOption, console, emit, open_workspace
from pitstop.cli.rollout import comparison_line, render_evidence
from pitstop.durations import describe_span
from pitstop.formats import fmt_time, short_sha256

if TYPE_CHECKING:
    from pitstop.rollout.manual_shadow import ShadowComparison


def compare(
    model: Annotated[str, typer.Argument(help="model name")],
    policy: Annotated[
        str | None,
        typer.Option(
            "--policy",
            metavar="FILE|NAME",
            help="judge by this policy's shadow rules instead of pitstop.yaml's: a policy file or a "
            "named policy, NAME or NAME@REVISION, as `rollout start --policy` takes it",
        ),
    ] = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Compare a shadow set by hand (`pitstop route MODEL --mode shadow …`) with the champion: the same
    requests, tests and words as a rollout's shadow phase, and what that phase would decide now under
    pitstop.yaml's policy, or --policy's. Nothing is decided or written."""
    result = open_workspace(workspace).compare(model, policy=policy)
    emit(as_json, result.to_dict(), lambda: _render(result))


def _render(result: ShadowComparison) -> None:
    lines = [
        f"champion v{result.champion_version}  shadow v{result.shadow_version} (set by hand)",
        f"since {fmt_time(result.since)} (routing version {result.since_routing_version}), "
        f"{describe_span(timedelta(hours=result.elapsed_hours))}",
        f"judged by the policy from {escape(short_sha256(result.policy_source))}",
    ]
    console.print(Panel("\n".join(lines), title=f"{result.model}: shadow comparison", expand=False))
    from pitstop.report.words import progress_words, verdict  # the dashboard's words (no plotly)

    console.print(f"[bold]{escape(verdict(result.comparison, result.progress))}[/]")
    evidence = result.evidence.to_dict()
    render_evidence(evidence)
    console.print(comparison_line(result.comparison, "shadow", evidence["paired"]["n"]))
    console.print(progress_words(result.progress))
    would = result.verdict
    console.print(
        f"a rollout's shadow phase would now: [bold]{would.action.value}[/] ({would.rule}): "
        f"{escape(would.reason)}"
    )


def register(app: typer.Typer) -> None:
    app.command()(compare)
