"""What every command shares: the workspace and --json options, console output, argument parsing."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml
from rich.console import Console, ConsoleDimensions
from rich.table import Column, Table
from typer.core import TyperCommand, TyperGroup
from typer.models import CommandFunctionType

from pitstop.errors import PitstopError, UsageError

if TYPE_CHECKING:
    from typer._click.core import Context

    from pitstop.workspace import Workspace

PIPED_WIDTH = 160  # output to a pipe without `COLUMNS` has no width: leave tables room to stay whole


class PipedConsole(Console):
    """rich's Console whose width is looked up at each print: `COLUMNS` (set by a shell script,
    `COLUMNS=80 pitstop … | less`, or a test), else the terminal's, else `PIPED_WIDTH` (rich's own
    fallback is 80). Looked up late because the output stream and environment may change after import:
    rich itself reads `COLUMNS` once, when the console is made (so it is made with an empty
    environment)."""

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        columns = os.environ.get("COLUMNS", "")
        if self._width is None and columns.isdigit():
            return ConsoleDimensions(int(columns), size.height)
        if self._width is None and not self.is_terminal:
            return ConsoleDimensions(PIPED_WIDTH, size.height)
        return size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


def piped_console() -> PipedConsole:
    """The console the CLI prints on: rich is given an empty environment, so that it does not fix the
    width from `COLUMNS` as it is when the console is made."""
    return PipedConsole(highlight=False, _environ={})


console = piped_console()
err_console = Console(stderr=True, highlight=False)

WorkspaceOption = Annotated[
    Path | None,
    typer.Option(
        "--workspace",
        "-w",
        help="workspace folder (default: $PITSTOP_WORKSPACE, else the current folder)",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="print machine-readable JSON instead of tables")]
ReasonOption = Annotated[str, typer.Option("--reason", help="why: recorded with the event")]
ByOption = Annotated[
    str | None, typer.Option("--by", help="who is acting (default: $PITSTOP_ACTOR, else your login)")
]
PolicyOption = Annotated[
    str | None,
    typer.Option(
        "--policy",
        metavar="FILE|NAME",
        help="decide the rollout by this policy instead of pitstop.yaml's: a YAML file of policy sections "
        "(its keys override pitstop.yaml's one by one) or a named policy, NAME or NAME@REVISION "
        "(`pitstop policy list`); a name that is also a file here is refused",
    ),
]
SkipCheckOption = Annotated[
    str | None,
    typer.Option(
        "--skip-check",
        metavar="REASON",
        help="store the model without loading it in a fresh process and predicting training rows first "
        "(it needs a GPU or a service this machine lacks); the reason goes into the lineage",
    ),
]


# click's UsageError (a missing option, a bad value, an extra argument). Typer exports only its subclass
# BadParameter (newer Typer vendors click privately), so the class is reached through that.
_CLICK_USAGE_ERROR: type[Exception] = typer.BadParameter.__mro__[1]


def _one_line(ctx: Context, error: Exception) -> UsageError:
    message = error.format_message() if isinstance(error, typer.BadParameter) else str(error)
    return UsageError(usage_line(_command_path(ctx), message))


def _parse_in_one_line(
    parse: Callable[[Context, list[str]], list[str]], ctx: Context, args: list[str], no_args_is_help: bool
) -> list[str]:
    if not args and no_args_is_help:  # click shows the help (its own usage error): leave it
        return parse(ctx, args)
    try:
        return parse(ctx, args)
    except _CLICK_USAGE_ERROR as error:
        raise _one_line(ctx, error) from None


class OneLineUsage(TyperCommand):
    """A command whose argument errors are pitstop's one line (`error: …`, exit 2), not click's usage box."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        return _parse_in_one_line(super().parse_args, ctx, args, self.no_args_is_help)


class OneLineUsageGroup(TyperGroup):
    """A command group whose unknown subcommands and bad options are one line, like its commands'."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        return _parse_in_one_line(super().parse_args, ctx, args, self.no_args_is_help)

    def resolve_command(self, ctx: Context, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except _CLICK_USAGE_ERROR as error:
            raise _one_line(ctx, error) from None


class PitstopTyper(typer.Typer):
    """A Typer app whose groups and commands report argument errors as one line."""

    def __init__(self, *, cls: type[TyperGroup] | None = OneLineUsageGroup, **kwargs: Any) -> None:
        super().__init__(cls=cls, **kwargs)

    def command(
        self, name: str | None = None, *, cls: type[TyperCommand] | None = OneLineUsage, **kwargs: Any
    ) -> Callable[[CommandFunctionType], CommandFunctionType]:
        return super().command(name, cls=cls, **kwargs)


def _command_path(ctx: Context) -> str:
    """`pitstop models create`, however the program was started (`python -m pitstop`, a test runner)."""
    names: list[str] = []
    while ctx.parent is not None:
        names.insert(0, ctx.info_name or "")
        ctx = ctx.parent
    return " ".join(["pitstop", *names])


def usage_line(command: str, message: str) -> str:
    """click's message as one line naming the command and where its options are listed.

    >>> usage_line("pitstop models create", "Missing option '--target'.")
    "pitstop models create: missing option '--target'; see `pitstop models create --help`"
    """
    text = " ".join(message.split()).rstrip(".")
    return f"{command}: {text[:1].lower()}{text[1:]}; see `{command} --help`"


# A Python parameter whose flag is not `--` and its name with dashes.
FLAGS = {"metadata": "--meta", "uri": "--train-data-uri", "sha256": "--train-data-sha256"}


def flag(field: str) -> str:
    """The option a Python parameter is given with: `skip_check` → `--skip-check`."""
    return FLAGS.get(field, "--" + field.replace("_", "-"))


def error_line(error: PitstopError) -> str:
    """An error as the CLI says it: its field named by the flag.

    >>> error_line(UsageError("say why the model is archived", field="reason"))
    '--reason: say why the model is archived'
    """
    return error.worded(flag(error.field) if error.field else None, as_flag)


def as_flag(field: str, value: str | None) -> str:
    """An input a message mentions as the CLI takes it: `--features all`, `--force`."""
    return f"{flag(field)} {value}" if value else flag(field)


_opened: list[Workspace] = []


def open_workspace(path: Path | None) -> Workspace:
    """The workspace a command works on; closed when the command ends (`close_workspaces`)."""
    from pitstop.workspace import Workspace  # the store loads only for commands that use it

    workspace = Workspace(path)
    _opened.append(workspace)
    return workspace


def close_workspaces() -> None:
    """Release every store connection the command opened."""
    while _opened:
        _opened.pop().close()


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def write_text(text: str) -> None:
    """Text as it is (YAML, say), without the console's markup: `[10, 25]` is no style."""
    sys.stdout.write(text)


def emit(as_json: bool, data: Any, render: Callable[[], None]) -> None:
    """JSON for machines, or the human rendering."""
    if as_json:
        print_json(data)
    else:
        render()


def table(title: str | None, *columns: str | Column) -> Table:
    """A table of `columns`: a name is a `whole` column first, a `wrapped` column after; give
    `whole` or `wrapped` columns to say how each wraps in a narrow terminal (80 columns)."""
    specs = [
        (whole(c) if index == 0 else wrapped(c)) if isinstance(c, str) else c
        for index, c in enumerate(columns)
    ]
    return Table(*specs, title=title, title_justify="left", header_style="bold")


def whole(header: str, **options: Any) -> Column:
    """A short value kept whole on its line (a name, id, version, time, number): the column is as wide
    as its widest line, and the wrapping columns share what is left. A cell may hold several fields on
    lines of their own (`2026-03-01T00:00:00Z` / `by controller`): the table wraps by field."""
    return Column(header, no_wrap=True, **options)


def wrapped(header: str) -> Column:
    """Words (a reason, a description) wrapped between words; only a word wider than the whole column
    folds (a truncated number or path is a wrong one). The wrapping columns share the width the
    `whole` ones leave, the widest narrowed first."""
    return Column(header, overflow="fold")


def parse_params(items: list[str] | None) -> dict[str, Any]:
    """`k=v` pairs; values are read as YAML scalars so numbers and booleans keep their type.

    >>> parse_params(["max_depth=4", "loss=absolute_error", "warm=true"])
    {'max_depth': 4, 'loss': 'absolute_error', 'warm': True}
    """
    params: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--param {item!r}: write it as key=value")
        try:
            params[key.strip()] = yaml.safe_load(value) if value else ""
        except yaml.YAMLError:
            params[key.strip()] = value
    return params


def split_list(text: str | None) -> list[str] | None:
    """`a,b,c` as a list (None when not given)."""
    if text is None:
        return None
    items = [item.strip() for item in text.split(",") if item.strip()]
    return items

    return None
