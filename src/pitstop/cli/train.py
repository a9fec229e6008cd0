"""`pitstop train`, `pitstop reproduce` and `pitstop gate`: stages 1 and 2."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from pitstop.cli.common import (
    ByOption,
    JsonOption,
    PolicyOption,
    SkipCheckOption,
    WorkspaceOption,
    console,
    emit,
    error_line,
    open_workspace,
    parse_params,
    print_json,
    table,
    whole,
    wrapped,
)
from pitstop.errors import UsageError
from pitstop.formats import fmt_time, short_sha256

if TYPE_CHECKING:  # pandas, scikit-learn and the store load only in the commands that use them
    import pandas as pd

    from pitstop.pipeline import RetrainResult
    from pitstop.records.gate_result import GateResult
    from pitstop.registry import VersionInfo

ModelArg = Annotated[str, typer.Argument(help="model name")]
ParamOption = Annotated[
    list[str] | None, typer.Option("--param", help="trainer parameter key=value (repeatable)")
]


def parse_timestamp(text: str | None, option: str) -> pd.Timestamp | None:
    """An ISO timestamp as aware UTC (naive means UTC).

    >>> parse_timestamp("2026-06-01T12:00+02:00", "--as-of")
    Timestamp('2026-06-01 10:00:00+0000', tz='UTC')
    """
    if text is None:
        return None
    import pandas as pd

    try:
        stamp = pd.Timestamp(text)
        valid = not pd.isna(stamp)  # NaT is what pandas makes of "", "NaT" and "nan": no time at all
    except ValueError:
        valid = False
    if not valid:
        raise UsageError(f"{option} {text!r}: not a timestamp; write it like 2026-06-01 or 2026-06-01T12:00Z")
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def describe_format(v: VersionInfo) -> str:
    """`skops, trusting a.B, c.D` or `joblib (pickle: runs any code it holds)`."""
    if v.format != "skops":
        return f"{v.format} (pickle: loading it runs any code it holds)"
    return f"skops, trusting {', '.join(v.trusted_types)}" if v.trusted_types else "skops"


def train(
    model: ModelArg,
    trainer: Annotated[str, typer.Option(help="the training function, package.module:function")],
    data: Annotated[str, typer.Option(help="dataset to train on, NAME or NAME:VERSION")],
    as_of: Annotated[str | None, typer.Option(help="use only rows strictly before this time")] = None,
    param: ParamOption = None,
    feature_pipeline_version: Annotated[str | None, typer.Option(help="version of the feature code")] = None,
    allow_pickle: Annotated[
        bool,
        typer.Option(
            "--allow-pickle",
            help="let this model's versions be pickles (joblib) where skops cannot store them; a pickle "
            "can run any code when loaded, so only for code you trust",
        ),
    ] = False,
    skip_check: SkipCheckOption = None,
    workspace: WorkspaceOption = None,
    by: ByOption = None,
    as_json: JsonOption = False,
) -> None:
    """Stage 1: train on a point-in-time-correct slice and register the next version with its lineage."""
    ws = open_workspace(workspace)
    status = contextlib.nullcontext() if as_json else console.status(f"training {model} with {trainer}…")
    with status:
        version = ws.train(
            model,
            trainer=trainer,
            data=data,
            as_of=parse_timestamp(as_of, "--as-of"),
            params=parse_params(param),
            feature_pipeline_version=feature_pipeline_version,
            allow_pickle=allow_pickle,
            skip_check=skip_check,
            actor=by,
        )
    window = version.lineage.training_window
    emit(
        as_json,
        version.to_dict(),
        lambda: console.print(
            f"trained {model} version [bold]{version.version}[/] on {window.rows} rows "
            f"({window.start or '-'} .. {window.end or '-'}), sha256 {version.sha256[:12]}…; "
            f"{describe_format(version)}{'; signed' if version.signature else ''}; "
            f"features: {', '.join(version.lineage.features)}"
        ),
    )


def reproduce(
    model: ModelArg,
    version: Annotated[str, typer.Argument(help="version number or alias")],
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Retrain a version from its recorded lineage and check its predictions match the registered artifact."""
    result = open_workspace(workspace).reproduce(model, version)
    if result.matches:
        verdict = f"[green]reproduced[/] ({result.rows} training rows"
    else:
        verdict = f"[red]NOT reproduced[/] ({result.differing_rows} of {result.rows} training rows differ"
    emit(
        as_json,
        result.to_dict(),
        lambda: console.print(
            f"{model} version {result.version}: {verdict}, "
            f"largest prediction difference {result.max_abs_difference:.3g})"
        ),
    )
    if not result.matches:
        raise typer.Exit(1)


def gate(
    model: ModelArg,
    version: Annotated[str, typer.Argument(help="version to evaluate (number or alias)")],
    test_set: Annotated[str, typer.Option(help="held-out test set, NAME or NAME:VERSION")],
    accept_review: Annotated[
        bool,
        typer.Option(
            "--accept-review",
            help="pass a version held for review (leakage.review: suspiciously good, no direct leakage "
            "finding) after looking at it; needs --reason, recorded as an event with --by",
        ),
    ] = False,
    reason: Annotated[str | None, typer.Option(help="why the review hold is accepted")] = None,
    workspace: WorkspaceOption = None,
    by: ByOption = None,
    as_json: JsonOption = False,
) -> None:
    """Stage 2: the offline quality gate against the champion on the same test set. Exit 1 when it fails
    or holds the version for review."""
    if accept_review and not (reason and reason.strip()):
        raise UsageError("--accept-review needs --reason: say why; it is recorded with the event")
    if reason is not None and not accept_review:
        raise UsageError("--reason goes with --accept-review")
    report = open_workspace(workspace).gate(
        model, version, test_set=test_set, actor=by, accept_review=reason if accept_review else None
    )
    if as_json:
        print_json(report.to_dict())
    else:
        render_gate(report)
    if not report.passed:
        raise typer.Exit(1)


def render_gate(report: GateResult) -> None:
    test_set = report.test_set
    against = f"champion v{report.champion_version}" if report.champion_version else "no champion"
    on = test_set.ref
    out = table(
        f"offline gate: {report.model} v{report.version} vs {against} on {on}",
        whole("check\nresult"),
        wrapped("observed\nthreshold"),
        wrapped("explanation"),
    )
    for check in report.checks:
        if check.skipped:
            result = "[dim]skip[/]"
        elif check.passed:
            result = "[green]pass[/]"
        else:
            result = "[bold yellow]REVIEW[/]" if check.review else "[bold red]FAIL[/]"
        observed = f"{_fmt(check.observed)}\n{_fmt(check.threshold)}"
        out.add_row(f"{check.name}\n{result}", observed, check.detail)
    console.print(out)
    if report.verdict == "accepted" and report.accepted is not None:
        console.print(
            f"[bold green]verdict: passed[/] (held for review, accepted by {report.accepted.actor}: "
            f"{report.accepted.reason})"
        )
    elif report.passed:
        console.print("[bold green]verdict: passed[/]")
    elif report.verdict == "review":
        console.print(
            f"[bold yellow]verdict: held for review[/] ({report.decided_by}): suspiciously good with no "
            "direct leakage finding; after review, `pitstop gate "
            f"{report.model} {report.version} --test-set {on} --accept-review --reason …`"
        )
    else:
        console.print(f"[bold red]verdict: failed[/] (decided by {report.decided_by})")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return fmt_time(value)  # a moment (temporal_overlap's) as every table shows it; other text as is


def retrain(
    model: ModelArg,
    trainer: Annotated[str, typer.Option(help="the training function, package.module:function")],
    data: Annotated[str, typer.Option(help="dataset to train on, NAME or NAME:VERSION")],
    test_set: Annotated[str, typer.Option(help="held-out test set for the offline gate")],
    as_of: Annotated[str | None, typer.Option(help="use only rows strictly before this time")] = None,
    param: ParamOption = None,
    policy: PolicyOption = None,
    workspace: WorkspaceOption = None,
    by: ByOption = None,
    as_json: JsonOption = False,
) -> None:
    """Train → offline gate → rollout start in one command (for cron or Airflow). Exit 1 if it stops."""
    from pitstop.pipeline import retrain as run_retrain

    result = run_retrain(
        open_workspace(workspace),
        model,
        trainer=trainer,
        data=data,
        test_set=test_set,
        as_of=parse_timestamp(as_of, "--as-of"),
        params=parse_params(param),
        actor=by,
        policy=policy,
    )
    if as_json:
        print_json(result.to_dict())
    if result.train_error is not None:  # an input error (exit 2), said in one line, after the JSON
        said = error_line(result.train_failure) if result.train_failure else result.train_error
        raise UsageError(f"retrain stopped at the train stage: {said}")
    if not as_json:
        _render_retrain(result)
    if result.active_rollout is not None or (result.gate is not None and not result.gate.passed):
        raise typer.Exit(1)


def _render_retrain(result: RetrainResult) -> None:
    if result.version is None:
        console.print(f"[bold red]stopped before training[/] (stage rollout): {result.reason}")
        return
    console.print(f"trained {result.model} version [bold]{result.version.version}[/]")
    assert result.gate is not None
    render_gate(result.gate)
    if result.started:
        source = short_sha256(result.policy_source or "")
        console.print(
            f"rollout {result.rollout_id} started: shadow, policy from {escape(source)} "
            "(the controller takes it from here)"
        )
    elif result.active_rollout is not None:
        console.print(
            f"[bold red]stopped at rollout start[/]: {result.reason}; then "
            f"`pitstop rollout start {result.model} {result.version.version}`"
        )
    elif result.gate.passed:
        console.print("no champion yet: nothing to roll out against; use `pitstop models set-champion`")
    else:
        console.print(f"stopped at the offline gate ({result.gate.decided_by})")


def register(app: typer.Typer) -> None:
    app.command()(train)
    app.command()(retrain)
    app.command()(reproduce)
    app.command()(gate)
