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
from pitstop.cli.train import describe_format, parse_timestamp
from pitstop.losses import Loss
from pitstop.registry import ModelInfo, VersionInfo

models_app = PitstopTyper(help="Models, their versions and aliases.", no_args_is_help=True)

ModelArg = Annotated[str, typer.Argument(help="model name")]
VersionArg = Annotated[str, typer.Argument(help="version number, or champion / challenger / previous")]
AllowPickleOption = Annotated[
    bool,
    typer.Option(
        "--allow-pickle",
        help="let this model's versions be pickles (joblib) where skops cannot store them; a pickle can "
        "run any code when loaded, so only for code you trust",
    ),
]


@models_app.command("create")
def create(
    model: ModelArg,
    task: Annotated[str, typer.Option(help="regression, classification (binary) or multiclass")],
    target: Annotated[str, typer.Option(help="column holding what the model predicts")],
    time_column: Annotated[str | None, typer.Option(help="column holding the event time")] = None,
    features: Annotated[
        str | None,
        typer.Option(help="feature columns, comma-separated (default: fixed by the first version)"),
    ] = None,
    id_columns: Annotated[
        str | None, typer.Option(help="id columns never used as features, e.g. user_id")
    ] = None,
    allow_pickle: AllowPickleOption = False,
    loss: Annotated[
        str | None,
        typer.Option(
            help="per-request loss every gate and rollout rule compares: absolute (regression default), "
            "squared, percentage, pinball:Q, log_loss (classifier default), brier, or module:function"
        ),
    ] = None,
    workspace: WorkspaceOption = None,
    by: ByOption = None,
    as_json: JsonOption = False,
) -> None:
    """Record a model's schema: task, target, time column, features, id columns and loss."""
    info = open_workspace(workspace).create_model(
        model,
        task=task,
        target=target,
        time_column=time_column,
        features=split_list(features),
        id_columns=split_list(id_columns),
        allow_pickle=allow_pickle,
        actor=by,
        loss=loss,
    )
    said = f"created model [bold]{info.name}[/] ({info.task}, loss {Loss.parse(info.loss, info.task)})"
    emit(as_json, info.to_dict(), lambda: console.print(said))


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
        ("artifact", f"{v.artifact_uri} (in the artifact store)"),
        ("sha256", v.sha256),
        ("format", describe_format(v)),
        ("signature", _signature(v)),
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


def _signature(v: VersionInfo) -> str:
    return "-" if not v.signature else f"{v.signature['scheme']} key {v.signature['key_id']}"


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
    allow_pickle: AllowPickleOption = False,
    workspace: WorkspaceOption = None,
    by: ByOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register an externally trained model (a skops or joblib file) as the model's next version.

    It is stored with skops, loading only the types listed; as a pickle only for a model that allows
    pickles (--allow-pickle, here or at `models create`) when skops cannot store it."""
    info = open_workspace(workspace).register(
        model,
        artifact,
        train_data=train_data,
        params=parse_params(param),
        feature_pipeline_version=feature_pipeline_version,
        as_of=parse_timestamp(as_of, "--as-of"),
        allow_pickle=allow_pickle,
        actor=by,
    )
    emit(
        as_json,
        info.to_dict(),
        lambda: console.print(
            f"registered {model} version [bold]{info.version}[/] (sha256 {info.sha256[:12]}…; "
            f"{describe_format(info)}{'; signed' if info.signature else ''})"
        ),
    )


@models_app.command("allow-pickle")
def allow_pickle_(
    model: ModelArg,
    reason: Annotated[str, typer.Option(help="why pickles are allowed (or refused)")],
    off: Annotated[bool, typer.Option("--off", help="refuse pickles again (after `models convert`)")] = False,
    workspace: WorkspaceOption = None,
    by: ByOption = None,
    as_json: JsonOption = False,
) -> None:
    """Allow pickled (joblib) versions of a model, which can run any code when loaded; --off refuses them."""
    info = open_workspace(workspace).allow_pickle(model, not off, reason=reason, actor=by)
    state = "allowed (each load warns)" if info.allow_pickle else "refused"
    emit(as_json, info.to_dict(), lambda: console.print(f"{model}: pickled versions are {state}"))


@models_app.command("sign")
def sign(
    model: ModelArg,
    version: VersionArg,
    workspace: WorkspaceOption = None,
    by: ByOption = None,
    as_json: JsonOption = False,
) -> None:
    """Sign a version's sha256, format and type allow-list with the key in PITSTOP_SIGNING_KEY_FILE.

    Gateways, controllers and the CLI with PITSTOP_VERIFY_KEY_FILE set load only validly signed versions.
    """
    info = open_workspace(workspace).sign(model, version, actor=by)
    emit(
        as_json,
        info.to_dict(),
        lambda: console.print(f"signed {model} version {info.version} ({_signature(info)})"),
    )


@models_app.command("convert")
def convert(
    model: ModelArg,
    version: VersionArg,
    data: Annotated[
        str | None,
        typer.Option(
            help="dataset to compare predictions on, NAME or NAME:VERSION "
            "(default: the last gate's test set, else the training data)"
        ),
    ] = None,
    workspace: WorkspaceOption = None,
    by: ByOption = None,
    as_json: JsonOption = False,
) -> None:
    """Store a pickled (joblib) version with skops, once both predict identically on a dataset.

    The version keeps its number and lineage; its file, sha256 and type allow-list change (an event
    records both hashes). The old file stays in the artifact store.
    """
    result = open_workspace(workspace).convert(model, version, data=data, actor=by)
    trusting = f", trusting {', '.join(result.trusted_types)}" if result.trusted_types else ""
    emit(
        as_json,
        result.to_dict(),
        lambda: console.print(
            f"converted {model} version {result.version} to skops{trusting}: identical predictions on "
            f"{result.rows} rows of {result.checked_on}; sha256 {result.to_sha256[:12]}…"
            f"{' (signed)' if result.signed else ''}"
        ),
    )


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
    app.command("register")(register_version)
