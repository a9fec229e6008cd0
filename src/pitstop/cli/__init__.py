"""The `pitstop` command: a thin layer over the Python API; the only place errors become exit codes.

A command builds only its own module's part of the command tree: `pitstop models list` imports and
registers `cli/models.py`, not the seventeen others, so it does not pay for their imports nor for
Typer's parameter adapters of every command (issue 19's fast start). `pitstop --help`, an unknown
command and `app` (the CLI reference, the tests) build the whole tree.
"""

from __future__ import annotations

import importlib
import sys
from functools import cache
from typing import Any

from pitstop.cli.common import PitstopTyper, close_workspaces, err_console, error_line
from pitstop.errors import NegativeVerdict, PitstopError

# The modules of the command tree, in the order `pitstop --help` lists their commands.
MODULES = (
    "init",
    "datasets",
    "models",
    "mlflow",
    "train",
    "plan",
    "serve",
    "gateways",
    "route",
    "compare",
    "rollout",
    "policy",
    "notify",
    "simulate",
    "report",
    "store",
    "demo",
)
# Which module registers each top-level command or group (tests/cli/test_lazy_commands.py checks
# this against what the modules register).
OWNERS = {
    "init": "init",
    "db": "init",
    "dataset": "datasets",
    "models": "models",
    "register": "models",
    "mlflow": "mlflow",
    "train": "train",
    "retrain": "train",
    "reproduce": "train",
    "gate": "train",
    "plan": "plan",
    "serve": "serve",
    "serve-model": "serve",
    "gateways": "gateways",
    "route": "route",
    "compare": "compare",
    "rollout": "rollout",
    "controller": "rollout",
    "policy": "policy",
    "notify": "notify",
    "simulate": "simulate",
    "report": "report",
    "store": "store",
    "demo": "demo",
}


def _pitstop() -> None:
    """A group of commands, even when one module registers a single one (Typer would otherwise make
    that command the whole program)."""


def build_app(modules: tuple[str, ...] = MODULES) -> PitstopTyper:
    """The `pitstop` command tree with the commands of `modules`."""
    tree = PitstopTyper(
        name="pitstop",
        help="Replace a production ML model with a freshly trained one, safely.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        rich_markup_mode=None,
    )
    tree.callback()(_pitstop)
    for name in modules:
        importlib.import_module(f"pitstop.cli.{name}").register(tree)
    return tree


@cache
def _whole_app() -> PitstopTyper:
    return build_app()


def __getattr__(name: str) -> Any:
    """`pitstop.cli.app`: the whole command tree, built at first use."""
    if name == "app":
        return _whole_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def app_for(args: list[str]) -> PitstopTyper:
    """The tree `pitstop ARGS…` needs: the module of the command named first, or every module (for
    `--help`, no command, or one that does not exist, whose error suggests the nearest name)."""
    owner = OWNERS.get(args[0]) if args else None
    return _whole_app() if owner is None else build_app((owner,))


EXIT_VERDICT = 1
EXIT_USAGE = 2


def main(argv: list[str] | None = None) -> None:
    """Run the CLI: exit 0 success, 1 a negative verdict, 2 a usage or input error."""
    args = sys.argv[1:] if argv is None else argv
    try:
        app_for(args)(args=args)  # Typer handles its own usage errors (exit 2) and --help (exit 0)
    except NegativeVerdict as verdict:
        err_console.print(f"[bold red]rejected:[/] {error_line(verdict)}")
        sys.exit(EXIT_VERDICT)
    except PitstopError as error:
        err_console.print(f"[bold red]error:[/] {error_line(error)}", soft_wrap=True)
        sys.exit(EXIT_USAGE)
    finally:
        close_workspaces()
