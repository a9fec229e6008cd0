"""`pitstop serve`: the gateway over HTTP."""

from __future__ import annotations

import os
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from pitstop.cli.common import WorkspaceOption, err_console
from pitstop.errors import StoreUnavailableError, UsageError

if TYPE_CHECKING:  # the store, pandas and scikit-learn load only when the gateway starts
    from pitstop.workspace import Workspace


class LogLevel(StrEnum):
    """uvicorn's log levels."""

    CRITICAL = "critical"
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"
    DEBUG = "debug"


def serve(
    workspace: WorkspaceOption = None,
    host: Annotated[
        str, typer.Option(help="address to listen on (0.0.0.0 for every interface)")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="worker processes (each loads every model)")] = 1,
    log_level: Annotated[
        LogLevel, typer.Option(case_sensitive=False, help="how much the server logs")
    ] = LogLevel.INFO,
    access_log: Annotated[bool, typer.Option("--access-log", help="log every request (slower)")] = False,
    controller: Annotated[
        bool, typer.Option("--controller", help="also run the rollout controller in this process")
    ] = False,
    insecure_local_writes: Annotated[
        bool,
        typer.Option(
            "--insecure-local-writes",
            help="accept labels and overrides without a token from this machine (loopback) when no token "
            "is set; only with a loopback --host",
        ),
    ] = False,
) -> None:
    """Serve every model that has a champion: predictions, labels, routing, health and metrics.

    Writes need a token: PITSTOP_OPERATOR_TOKEN (overrides and labels), PITSTOP_LABELS_TOKEN (labels
    only), each also from a file (`…_FILE`); PITSTOP_PREDICT_TOKEN makes predict need one too.
    """
    from pitstop.http.app import CONTROLLER_ENV
    from pitstop.http.auth import (
        ALLOW_ENV,
        access_from_env,
        describe_access,
        exposure_warnings,
        is_loopback,
    )
    from pitstop.http.server import run
    from pitstop.notify.sender import Sender
    from pitstop.workspace import Workspace

    if insecure_local_writes:
        os.environ[ALLOW_ENV] = "1"  # read by every worker's app_from_env
    access = access_from_env()  # a token file that cannot be read stops here, exit 2
    if access.insecure_local_writes and not is_loopback(host):
        raise UsageError(
            f"--insecure-local-writes ({ALLOW_ENV}) is for a loopback --host only, not {host}: "
            "set tokens instead"
        )
    with Workspace(workspace, service=True) as ws:
        served = _served(ws)
        path = ws.path
        Sender(ws)  # a receiver filter that matches no topic stops here, in one line, not in a worker
    if not served:  # a Deployment may well start before its first model: it serves each as it comes
        err_console.print(
            "[bold yellow]warning:[/] no model has a champion yet: each is served once one is set "
            "(`pitstop models set-champion`)",
            soft_wrap=True,
        )
    err_console.print(f"access: {describe_access(access)}", soft_wrap=True)
    for warning in exposure_warnings(access, host):
        err_console.print(f"[bold yellow]warning:[/] {warning}", soft_wrap=True)
    if controller:
        os.environ[CONTROLLER_ENV] = "1"
    extra = " with the rollout controller" if controller else ""
    err_console.print(
        f"serving {', '.join(served) or 'no model yet'} on http://{host}:{port} ({workers} worker(s)){extra}"
    )
    err_console.print(f"dashboard: http://{host}:{port}/")
    run(path, host=host, port=port, workers=workers, log_level=log_level.value, access_log=access_log)


def _served(ws: Workspace) -> list[str]:
    """The models with a champion; from the routing cache (with a warning) while the store is down."""
    from pitstop.registry import Alias
    from pitstop.serving import routing_cache

    if ws.store_problem is None:
        # an archived model is still served: archiving takes no traffic away
        return [m.name for m in ws.models(include_archived=True) if Alias.CHAMPION.value in m.aliases]
    cache = routing_cache.read(routing_cache.cache_folder(ws.path, ws.config.serving))
    if cache is None:
        raise StoreUnavailableError(ws.store_problem)
    err_console.print(
        f"[bold yellow]warning:[/] {ws.store_problem}; starting from the routing cache written "
        f"{cache.written_at.isoformat()}: each champion serves alone until the store answers",
        soft_wrap=True,
    )
    return cache.names


def serve_model(
    model: Annotated[str, typer.Argument(help="the model")],
    version: Annotated[int, typer.Argument(min=1, help="the registered version to serve")],
    workspace: WorkspaceOption = None,
    host: Annotated[
        str, typer.Option(help="address to listen on (0.0.0.0 for every interface)")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port")] = 8080,
    log_level: Annotated[
        LogLevel, typer.Option(case_sensitive=False, help="how much the server logs")
    ] = LogLevel.INFO,
) -> None:
    """Serve one registered version of a model alone, over the Open Inference Protocol (V2): a model
    runner, the command of the Deployments pitstop keeps under `routing.provider: kubernetes`.

    It answers `/v2/health/ready` once the version is loaded, `/v2/models/MODEL` and
    `…/versions/VERSION` (metadata) and `…/infer`. It records no prediction and is not a gateway:
    the gateway in front routes users, records predictions and reports to the controller.
    """
    import uvicorn

    from pitstop.http.app import create_app
    from pitstop.http.auth import access_from_env
    from pitstop.serving import Gateway
    from pitstop.workspace import Workspace

    access = access_from_env()  # a token file that cannot be read stops here, exit 2
    ws = Workspace(workspace, service=True)
    try:
        ws.version(model, version)  # an unknown model or version stops here, in one line
    except BaseException:
        ws.close()
        raise
    gateway = Gateway(ws, models=[model], pinned=version, poll=False)
    err_console.print(f"serving {model} version {version} over OIP on http://{host}:{port}/v2")
    app = create_app(gateway, access=access, on_shutdown=ws.close)
    uvicorn.run(app, host=host, port=port, log_level=log_level.value, access_log=False)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("serve-model")(serve_model)
