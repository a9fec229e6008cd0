"""`pitstop models …` and `pitstop register`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.panel import Panel

from pitstop.cli.common import (
    ByOption,
    JsonOption,
    PitstopTyper,
    WorkspaceOption,
    console,
    emit,
    fmt_time,
    open_workspace,
    parse_params,
    split_list,
    table,
)
from pitstop.cli.train import parse_timestamp
from pitstop.registry import ModelInfo, VersionInfo

models_app = PitstopTyper(help="Models, their versions and aliases.", no_args_is_help=True)

ModelArg = Annotated[str, typer.Argument(help="model name")]
VersionArg = Annotated[str, typer.Argument(help="version number, or champion / challenger / previous")]


@models_app.command("create")
def create(
    model: ModelArg,
    task: Annotated[str, typer.Option(help="regression or classification")],
    target: Annotated[str, typer.Option(help="column holding what the model predicts")],
    time_column: Annotated[str | None, typer.Option(help="column holding the event time")] = None,
    features: Annotated[
        str | None,
        typer.Option(help="feature columns, comma-separated (default: fixed by the first version)"),
    ] = None,
    id_columns: Annotated[
        str | None, typer.Option(help="id columns never used as features, e.g. user_id")
    ] = None,
    workspace: WorkspaceOption = None,
    by: ByOption = None,
    as_json: JsonOption = False,
) -> None:
    """Record a model's schema: task, target, time column, features and id columns."""
    info = open_workspace(workspace).create_model(
        model,
        task=task,
        target=target,
        time_column=time_column,
        features=split_list(features),
        id_columns=split_list(id_columns),
        actor=by,
    )
    emit(as_json, info.to_dict(), lambda: console.print(f"created model [bold]{info.name}[/] ({info.task})"))


@models_app.command("list")
def list_(
    model: Annotated[
        str | None, typer.Argument(help="list this model's versions (default: all models)")
    ] = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """List models, or the versions of one model."""
    ws = open_workspace(workspace)
    if model is None:
        models = ws.models()
        emit(as_json, [m.to_dict() for m in models], lambda: _render_models(models))
        return
    versions = ws.versions(model)
    emit(as_json, [v.to_dict() for v in versions], lambda: _render_versions(model, versions))


def _render_models(models: list[ModelInfo]) -> None:
    out = table("models", "name", "task", "target", "features", "champion", "challenger", "previous")
    for m in models:
        out.add_row(
            m.name,
            m.task,
            m.target,
            ", ".join(m.features or []) or "-",
            *(str(m.aliases.get(a, "-")) for a in ("champion", "challenger", "previous")),
        )
    console.print(out)


def _render_versions(model: str, versions: list[VersionInfo]) -> None:
    out = table(
        f"{model}: versions", "version", "aliases", "created", "by", "train data", "window end", "gate"
    )
    for v in versions:
        data = ", ".join(f"{d['name']}:{d['version']}" for d in v.lineage.get("datasets", []))
        gate = "-" if v.gate_result is None else ("passed" if v.gate_result.get("passed") else "failed")
        out.add_row(
            str(v.version),
            ", ".join(v.aliases) or "-",
            fmt_time(v.created_at),
            v.created_by,
            data,
            fmt_time(v.lineage.get("training_window", {}).get("end")),
            gate,
        )
    console.print(out)


@models_app.command("show")
def show(
    model: ModelArg, version: VersionArg, workspace: WorkspaceOption = None, as_json: JsonOption = False
) -> None:
    """Show one version: artifact, lineage and the latest gate result."""
    info = open_workspace(workspace).version(model, version)
    emit(as_json, info.to_dict(), lambda: _render_version(info))


def _render_version(v: VersionInfo) -> None:
    lineage = v.lineage
    window = lineage.get("training_window", {})
    env = lineage.get("environment", {})
    rows: list[tuple[str, Any]] = [
        ("aliases", ", ".join(v.aliases) or "-"),
        ("artifact", v.artifact_uri),
        ("sha256", v.sha256),
        ("created", f"{fmt_time(v.created_at)} by {v.created_by}"),
        (
            "datasets",
            ", ".join(
                f"{d['name']}:{d['version']} ({d['sha256'][:12]})" for d in lineage.get("datasets", [])
            ),
        ),
        (
            "training window",
            f"{fmt_time(window.get('start'))} .. {fmt_time(window.get('end'))} ({window.get('rows')} rows)",
        ),
        ("as-of cutoff", fmt_time(lineage.get("as_of"))),
        ("features", ", ".join(lineage.get("features", []))),
        ("parameters", ", ".join(f"{k}={val}" for k, val in lineage.get("params", {}).items()) or "-"),
        ("feature pipeline", lineage.get("feature_pipeline_version") or "-"),
        ("trainer", lineage.get("trainer") or "- (registered artifact)"),
        (
            "code commit",
            f"{lineage.get('code', {}).get('commit')}"
            + (" (dirty)" if lineage.get("code", {}).get("dirty") else ""),
        ),
        (
            "environment",
            f"python {env.get('python')}; "
            + ", ".join(f"{k} {val}" for k, val in env.get("packages", {}).items()),
        ),
    ]
    if lineage.get("offline_metrics"):
        rows.append(
            ("offline metrics", ", ".join(f"{k}={val:.4g}" for k, val in lineage["offline_metrics"].items()))
        )
    out = table(None, "field", "value")
    for key, value in rows:
        out.add_row(key, str(value))
    console.print(Panel(out, title=f"{v.model} version {v.version}", expand=False))
    if v.gate_result is not None:
        _render_gate_summary(v.gate_result)


def _render_gate_summary(result: dict[str, Any]) -> None:
    test_set = result.get("test_set", {})
    verdict = "[green]passed[/]" if result.get("passed") else "[red]failed[/]"
    out = table(
        f"latest offline gate: {verdict} on {test_set.get('name')}:{test_set.get('version')} "
        f"vs champion {result.get('champion_version') or '-'}",
        "check",
        "result",
        "observed",
        "threshold",
    )
    for check in result.get("checks", []):
        out.add_row(
            check["name"],
            "pass" if check["passed"] else "FAIL",
            _check_value(check.get("observed")),
            _check_value(check.get("threshold")),
        )
    console.print(out)


def _check_value(value: Any) -> str:
    """A check's observed value or threshold; a moment (temporal_overlap's) reads as in every table."""
    return fmt_time(value) if isinstance(value, str) else str(value)


@models_app.command("set-champion")
def set_champion(
    model: ModelArg,
    version: VersionArg,
    reason: Annotated[str, typer.Option(help="why the champion is set by hand")],
    force: Annotated[
        bool, typer.Option("--force", help="replace an existing champion (recorded as an override)")
    ] = False,
    workspace: WorkspaceOption = None,
    by: ByOption = None,
    as_json: JsonOption = False,
) -> None:
    """Set the champion directly: for bootstrapping and emergencies (rollouts move it otherwise).

    Once the model has a routing table, the new champion gets one serving only it (no challenger, no
    shadow), so running gateways switch to it within their poll interval. Refused during a rollout.
    """
    from pitstop.serving.routing_store import routing_of

    ws = open_workspace(workspace)
    aliases = ws.set_champion(model, version, reason=reason, force=force, actor=by)
    table = routing_of(ws, model)
    served = ""
    if table is not None and table.version > 0 and table.mode == "off":
        served = f", served alone by routing version {table.version}; "
        served += "running gateways switch within their poll interval"
    emit(
        as_json,
        {"model": model, "aliases": aliases, "routing": table.to_dict() if table is not None else None},
        lambda: console.print(f"{model}: champion is now version {aliases['champion']}{served}"),
    )


def register_version(
    model: ModelArg,
    # readable=False: the API's own one-line error speaks for an unreadable file, not Typer's usage box
    artifact: Annotated[Path, typer.Argument(help="joblib file of the trained model", readable=False)],
    train_data: Annotated[str, typer.Option(help="dataset it was trained on, NAME or NAME:VERSION")],
    param: Annotated[list[str] | None, typer.Option(help="training parameter key=value (repeatable)")] = None,
    feature_pipeline_version: Annotated[str | None, typer.Option(help="version of the feature code")] = None,
    as_of: Annotated[
        str | None,
        typer.Option(help="as-of cutoff it was trained with: only rows strictly before this time count"),
    ] = None,
    workspace: WorkspaceOption = None,
    by: ByOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register an externally trained joblib artifact as the model's next version."""
    info = open_workspace(workspace).register(
        model,
        artifact,
        train_data=train_data,
        params=parse_params(param),
        feature_pipeline_version=feature_pipeline_version,
        as_of=parse_timestamp(as_of, "--as-of"),
        actor=by,
    )
    emit(
        as_json,
        info.to_dict(),
        lambda: console.print(
            f"registered {model} version [bold]{info.version}[/] (sha256 {info.sha256[:12]}…)"
        ),
    )


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
    app.command("register")(register_version)
