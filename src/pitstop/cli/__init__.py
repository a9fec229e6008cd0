"""The `pitstop` command: a thin layer over the Python API; the only place errors become exit codes."""

from __future__ import annotations

import sys

from pitstop.cli import (
    compare,
    datasets,
    demo,
    gateways,
    init,
    mlflow,
    models,
    notify,
    plan,
    policy,
    report,
    rollout,
    route,
    serve,
    simulate,
    store,
    train,
)
from pitstop.cli.common import PitstopTyper, close_workspaces, err_console, error_line
from pitstop.errors import NegativeVerdict, PitstopError

app = PitstopTyper(
    name="pitstop",
    help="Replace a production ML model with a freshly trained one, safely.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
for module in (
    init,
    datasets,
    models,
    mlflow,
    train,
    plan,
    serve,
    gateways,
    route,
    compare,
    rollout,
    policy,
    notify,
    simulate,
    report,
    store,
    demo,
):
    module.register(app)

EXIT_VERDICT = 1
EXIT_USAGE = 2


def main(argv: list[str] | None = None) -> None:
    """Run the CLI: exit 0 success, 1 a negative verdict, 2 a usage or input error."""
    try:
        app(args=argv)  # Typer handles its own usage errors (exit 2) and --help (exit 0)
    except NegativeVerdict as verdict:
        err_console.print(f"[bold red]rejected:[/] {error_line(verdict)}")
        sys.exit(EXIT_VERDICT)
    except PitstopError as error:
        err_console.print(f"[bold red]error:[/] {error_line(error)}", soft_wrap=True)
        sys.exit(EXIT_USAGE)
    finally:
        close_workspaces()
