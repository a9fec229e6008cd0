"""`pitstop models …` and `pitstop register`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.panel import Panel

from pitstop.cli.common import (
    ByOption,
    JsonOption,
    PitstopTyper,
    SkipCheckOption,
    WorkspaceOption,
    console,
    emit,
    open_workspace,
    parse_params,
    split_list,
    table,
    whole,
    wrapped,
)
from pitstop.cli.train import describe_format, parse_timestamp
from pitstop.errors import UsageError
from pitstop.formats import fmt_time

if TYPE_CHECKING:  # pandas, numpy and the store load only in the commands that use them
    from pitstop.data_refs import DataReference
    from pitstop.package_drift import PackageDrift
    from pitstop.records.gate_result import GateResult
    from pitstop.records.lineage import CodeCommit, Lineage
    from pitstop.records.mlflow_origin import MlflowOrigin
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


MetaOption = Annotated[
    list[str] | None,
    typer.Option("--meta", help="free metadata KEY=VALUE, a string (repeatable), e.g. owner=team-eta"),
]


def parse_meta(items: list[str] | None) -> dict[str, str]:
    """`KEY=VALUE` pairs as strings (metadata is for people: nothing is converted)."""
    pairs: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--meta {item!r}: write it as KEY=VALUE")
        pairs[key.strip()] = value
    return pairs


@models_app.command("create")
def create(
    model: ModelArg,
    task: Annotated[str, typer.Option(help="regression, classification (binary) or multiclass")],
    target: Annotated[str, typer.Option(help="column holding what the model predicts")],
    time_column: Annotated[str | None, typer.Option(help="column holding the event time")] = None,
    features: Annotated[
        str | None,
        typer.Option(
            help="feature columns, comma-separated, or 'all': every column of --data (else of the first "
            "version's training data) but the target, time and id columns; required",
            show_default=False,
        ),
    ] = None,
    id_columns: Annotated[
        str | None, typer.Option(help="id columns never used as features, e.g. user_id")
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(
            help="dataset (NAME or NAME:VERSION) whose columns 'all' takes, and whose columns are "
            "listed when --features is missing"
        ),
    ] = None,
    description: Annotated[str | None, typer.Option(help="what the model is for")] = None,
    meta: MetaOption = None,
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
    """Record a model's schema: task, target, time column, features, id columns and loss.

    --features is required: a list, or 'all', whose columns are printed (at once with --data, else
    when the first version fixes them). Without it the command lists the candidate columns."""
    from pitstop.losses import Loss

    chosen = "all" if features is not None and features.strip() == "all" else split_list(features)
    info = open_workspace(workspace).create_model(
        model,
        task=task,
        target=target,
        time_column=time_column,
        features=chosen,
        id_columns=split_list(id_columns),
        data=data,
        description=description,
        metadata=parse_meta(meta),
        allow_pickle=allow_pickle,
        actor=by,
        loss=loss,
    )
    listed = ", ".join(info.features) if info.features else "all but the target, time and id columns "
    listed += "" if info.features else "of the first version's training data (fixed and shown then)"
    said = f"created model [bold]{info.name}[/] ({info.task}, loss {Loss.parse(info.loss, info.task)})"
    emit(as_json, info.to_dict(), lambda: console.print(f"{said}; features: {listed}"))


@models_app.command("list")
def list_(
    model: Annotated[
        str | None, typer.Argument(help="list this model's versions (default: all models)")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="list archived models too")] = False,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """List models (archived ones only with --all), or the versions of one model."""
    ws = open_workspace(workspace)
    if model is None:
        models = ws.models(include_archived=all_)
        emit(as_json, [m.to_dict() for m in models], lambda: _render_models(models))
        return
    versions = ws.versions(model)
    emit(as_json, [v.to_dict() for v in versions], lambda: _render_versions(model, versions))


def _render_models(models: list[ModelInfo]) -> None:
    out = table(
        "models",
        whole("name\ntask"),
        whole("target"),
        whole("versions"),
        wrapped("features"),
        wrapped("description"),
    )
    for m in models:
        out.add_row(
            m.name + (" (archived)" if m.archived else "") + f"\n{m.task}",
            m.target,
            "\n".join(f"{a} {m.aliases.get(a, '-')}" for a in ("champion", "challenger", "previous")),
            ", ".join(m.features or []) or "(fixed by the first version)",
            m.description or "-",
        )
    console.print(out)


@models_app.command("update")
def update(
    model: ModelArg,
    description: Annotated[
        str | None, typer.Option(help="what the model is for ('' clears it)", show_default=False)
    ] = None,
    meta: MetaOption = None,
    unset: Annotated[
        list[str] | None, typer.Option("--unset", help="metadata KEY to remove (repeatable)")
    ] = None,
    workspace: WorkspaceOption = None,
    by: ByOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change a model's description and metadata; an event records before and after."""
    changes: dict[str, str | None] = {**parse_meta(meta), **dict.fromkeys(unset or [])}
    if description is None and not changes:
        raise UsageError("give --description, --meta KEY=VALUE or --unset KEY: there is nothing to change")
    info = open_workspace(workspace).update_model(model, description=description, metadata=changes, actor=by)
    emit(as_json, info.to_dict(), lambda: _render_model(info, "updated"))


@models_app.command("archive")
def archive(
    model: ModelArg,
    reason: Annotated[str, typer.Option(help="why the model is retired: recorded with the event")],
    workspace: WorkspaceOption = None,
    by: ByOption = None,
    as_json: JsonOption = False,
) -> None:
    """Retire a model with no active rollout: hidden from `models list` (see --all), no new versions,
    rollouts or routes. Its versions, events and predictions are kept, and a gateway still serves its
    champion. `models unarchive` undoes it."""
    info = open_workspace(workspace).archive_model(model, reason=reason, actor=by)
    emit(as_json, info.to_dict(), lambda: _render_model(info, "archived"))


@models_app.command("unarchive")
def unarchive(
    model: ModelArg,
    reason: Annotated[str, typer.Option(help="why the model is brought back: recorded with the event")],
    workspace: WorkspaceOption = None,
    by: ByOption = None,
    as_json: JsonOption = False,
) -> None:
    """Bring an archived model back: it takes new versions, rollouts and routes again."""
    info = open_workspace(workspace).unarchive_model(model, reason=reason, actor=by)
    emit(as_json, info.to_dict(), lambda: _render_model(info, "unarchived"))


def _render_model(m: ModelInfo, done: str) -> None:
    out = table(f"{m.name}: {done}", "field", "value")
    out.add_row("description", m.description or "-")
    out.add_row("metadata", ", ".join(f"{k}={v}" for k, v in m.metadata.items()) or "-")
    archived = m.archived
    out.add_row(
        "archived", f"{fmt_time(archived.at)} by {archived.by}: {archived.reason}" if archived else "no"
    )
    console.print(out)


def _render_versions(model: str, versions: list[VersionInfo]) -> None:
    out = table(
        f"{model}: versions",
        whole("version", justify="right"),
        whole("aliases"),
        whole("created\nby"),
        wrapped("train data\nwindow end"),
        whole("gate"),
    )
    for v in versions:
        reference = v.lineage.data_reference
        data = ", ".join(d.ref for d in v.lineage.datasets) or (reference.uri if reference else "-")
        gate = "-" if v.gate_result is None else ("passed" if v.gate_result.passed else "failed")
        out.add_row(
            str(v.version),
            "\n".join(v.aliases) or "-",
            f"{fmt_time(v.created_at)}\n{v.created_by}",
            f"{data}\n{fmt_time(v.lineage.training_window.end)}",
            gate,
        )
    console.print(out)


@models_app.command("show")
def show(
    model: ModelArg, version: VersionArg, workspace: WorkspaceOption = None, as_json: JsonOption = False
) -> None:
    """Show one version: artifact, lineage and the latest gate result.

    A package whose installed major.minor version differs from its lineage's is noted (loading the
    version here logs the same warning)."""
    ws = open_workspace(workspace)
    info = ws.version(model, version)
    drift = ws.package_drift(model, info.version)
    emit(
        as_json,
        {**info.to_dict(), "package_drift": [d.to_dict() for d in drift]},
        lambda: _render_version(info, drift),
    )


def _render_version(v: VersionInfo, drift: list[PackageDrift]) -> None:
    from pitstop.package_drift import recorded_packages

    lineage = v.lineage
    window = lineage.training_window
    rows: list[tuple[str, Any]] = [
        ("aliases", ", ".join(v.aliases) or "-"),
        ("artifact", f"{v.artifact_uri} (in the artifact store)"),
        ("sha256", v.sha256),
        ("format", describe_format(v)),
        ("signature", _signature(v)),
        ("created", f"{fmt_time(v.created_at)} by {v.created_by}"),
        _training_data(lineage),
        (
            "training window",
            f"{fmt_time(window.start)} .. {fmt_time(window.end)} ({window.rows} rows)"
            if window.rows is not None
            else "unknown (training data by reference)",
        ),
        ("as-of cutoff", fmt_time(lineage.as_of)),
        ("features", ", ".join(lineage.features)),
        ("parameters", ", ".join(f"{k}={val}" for k, val in lineage.params.items()) or "-"),
        ("feature pipeline", lineage.feature_pipeline_version or "-"),
        ("trainer", lineage.trainer or "- (registered artifact)"),
        ("code commit", _code_commit(lineage.code)),
        (
            "environment",
            f"python {lineage.environment.python}; "
            + ", ".join(f"{k} {val}" for k, val in recorded_packages(lineage).items()),
        ),
    ]
    if lineage.mlflow is not None:
        rows.append(("from MLflow", _mlflow_origin(lineage.mlflow)))
    offline = lineage.extra.get("offline_metrics")  # a key earlier versions let a caller add
    if offline:
        rows.append(("offline metrics", ", ".join(f"{k}={val:.4g}" for k, val in offline.items())))
    out = table(None, "field", "value")
    for key, value in rows:
        out.add_row(key, str(value))
    console.print(Panel(out, title=f"{v.model} version {v.version}", expand=False))
    for d in drift:
        console.print(f"[yellow]note:[/] {d.describe()}: loaded here, its predictions may differ")
    if v.gate_result is not None:
        _render_gate_summary(v.gate_result)


def _mlflow_origin(origin: MlflowOrigin) -> str:
    """`eta version 2 (@challenger), run 3f2a…, sklearn/skops; data train (digest 786d72e6, s3://…)`."""
    named = f"{origin.name} version {origin.version}" if origin.name else origin.uri
    alias = f" (@{origin.alias})" if origin.alias else ""
    data = "; ".join(f"{d.name} (digest {d.digest}, {d.source})" for d in origin.datasets) or "-"
    metrics = ", ".join(f"{k}={val:.4g}" for k, val in origin.metrics.items()) or "-"
    return (
        f"{named}{alias} at {origin.tracking_uri}, run {origin.run_id or '-'}, "
        f"{origin.flavor}/{origin.serialization_format}; metrics {metrics}; data {data}"
    )


def _training_data(lineage: Lineage) -> tuple[str, str]:
    """The training data: dataset snapshots, or the reference a version was registered with."""
    if lineage.data_reference is not None:
        return "training data", lineage.data_reference.describe()
    return "datasets", ", ".join(f"{d.ref} ({d.sha256[:12]})" for d in lineage.datasets)


def _code_commit(code: CodeCommit) -> str:
    text = code.commit + (" (dirty)" if code.dirty else "")
    if code.given:
        text += " (given with --code-commit"
        text += f"; this folder: {code.folder.commit})" if code.folder else ")"
    return text


def _signature(v: VersionInfo) -> str:
    return "-" if not v.signature else f"{v.signature['scheme']} key {v.signature['key_id']}"


def _render_gate_summary(result: GateResult) -> None:
    verdict = "[green]passed[/]" if result.passed else "[red]failed[/]"
    out = table(
        f"latest offline gate: {verdict} on {result.test_set.ref} "
        f"vs champion {result.champion_version or '-'}",
        "check",
        "result",
        "observed",
        "threshold",
    )
    for check in result.checks:
        out.add_row(
            check.name,
            "pass" if check.passed else "FAIL",
            _check_value(check.observed),
            _check_value(check.threshold),
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
    from pitstop.routing.store import routing_of

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
    artifact: Annotated[
        str,
        typer.Argument(
            help="skops or joblib file of the trained model, or an MLflow model: models:/NAME@ALIAS, "
            "models:/NAME/VERSION or runs:/RUN_ID/PATH"
        ),
    ],
    train_data: Annotated[
        str | None, typer.Option(help="dataset it was trained on, NAME or NAME:VERSION")
    ] = None,
    train_data_uri: Annotated[
        str | None,
        typer.Option(
            help="or the training data by reference, not copied: its location (a local path is hashed "
            "and checked; s3://, https:// … are recorded as given); needs --train-data-sha256"
        ),
    ] = None,
    train_data_sha256: Annotated[
        str | None, typer.Option(help="sha256 of the file at --train-data-uri (64 hex digits)")
    ] = None,
    dvc_file: Annotated[
        Path | None,
        typer.Option(
            help="or the training data as a DVC .dvc file: its md5, path and size are recorded",
            readable=False,
        ),
    ] = None,
    code_commit: Annotated[
        str | None,
        typer.Option(help="commit the model was trained from (7-40 hex digits), instead of this folder's"),
    ] = None,
    param: Annotated[list[str] | None, typer.Option(help="training parameter key=value (repeatable)")] = None,
    feature_pipeline_version: Annotated[str | None, typer.Option(help="version of the feature code")] = None,
    as_of: Annotated[
        str | None,
        typer.Option(help="as-of cutoff it was trained with: only rows strictly before this time count"),
    ] = None,
    tracking_uri: Annotated[
        str | None,
        typer.Option(
            help="MLflow server of a models:/ or runs:/ model; default MLFLOW_TRACKING_URI, then "
            "mlflow.tracking_uri in pitstop.yaml"
        ),
    ] = None,
    allow_pickle: AllowPickleOption = False,
    skip_check: SkipCheckOption = None,
    workspace: WorkspaceOption = None,
    by: ByOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register an externally trained model (a skops or joblib file, or an MLflow model) as the
    model's next version.

    It is stored with skops, loading only the types listed; as a pickle only for a model that allows
    pickles (--allow-pickle, here or at `models create`) when skops cannot store it.

    The training data is a registered dataset (--train-data), or a reference not copied in:
    --train-data-uri with --train-data-sha256, or --dvc-file. An MLflow model brings MLflow's
    lineage (run, parameters, metrics, dataset inputs, git commit); --train-data is then optional."""
    from pitstop.mlflow_source import is_mlflow_uri

    if is_mlflow_uri(artifact):
        if any(v is not None for v in (train_data_uri, train_data_sha256, dvc_file, code_commit, as_of)):
            raise UsageError(
                "an MLflow model brings its own data references, commit and cutoff: give no "
                "--train-data-uri, --train-data-sha256, --dvc-file, --code-commit or --as-of"
            )
        info = open_workspace(workspace).register_mlflow(
            model,
            artifact,
            tracking_uri=tracking_uri,
            train_data=train_data,
            allow_pickle=allow_pickle,
            skip_check=skip_check,
            actor=by,
        )
        _registered(model, info, as_json)
        return
    if tracking_uri is not None:
        raise UsageError("--tracking-uri is for an MLflow model (models:/… or runs:/…), not a file")
    reference = _data_reference(train_data_uri, train_data_sha256, dvc_file)
    if (train_data is None) == (reference is None):
        raise UsageError(
            "give the training data once: --train-data NAME (a registered dataset), or by reference "
            "--train-data-uri URI with --train-data-sha256 HEX, or --dvc-file FILE"
        )
    info = open_workspace(workspace).register(
        model,
        artifact,
        train_data=train_data,
        train_data_ref=reference,
        code_commit=code_commit,
        params=parse_params(param),
        feature_pipeline_version=feature_pipeline_version,
        as_of=parse_timestamp(as_of, "--as-of"),
        allow_pickle=allow_pickle,
        skip_check=skip_check,
        actor=by,
    )
    _registered(model, info, as_json)


def _registered(model: str, info: VersionInfo, as_json: bool) -> None:
    origin = info.lineage.mlflow
    came = f"; from MLflow {origin.name or origin.uri} version {origin.version}" if origin else ""
    emit(
        as_json,
        info.to_dict(),
        lambda: console.print(
            f"registered {model} version [bold]{info.version}[/] (sha256 {info.sha256[:12]}…; "
            f"{describe_format(info)}{'; signed' if info.signature else ''}){came}; "
            f"features: {', '.join(info.lineage.features)}"
        ),
    )


def _data_reference(uri: str | None, sha256: str | None, dvc_file: Path | None) -> DataReference | None:
    from pitstop import data_refs

    if uri is not None and dvc_file is not None:
        raise UsageError("--dvc-file: give the training data one way, not with --train-data-uri too")
    if (uri is None) != (sha256 is None):
        raise UsageError("--train-data-uri and --train-data-sha256 go together: give both")
    if uri is not None and sha256 is not None:
        return data_refs.by_uri(uri, sha256)
    return data_refs.from_dvc(dvc_file) if dvc_file is not None else None


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
