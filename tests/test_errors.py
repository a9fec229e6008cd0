"""Errors carry the input they are about (`field`) and how to fix it (`hint`); only the CLI names a
flag, only HTTP a JSON pointer."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from helpers import one_line_error
from pitstop.cli.common import error_line
from pitstop.errors import ConflictError, UsageError, mention
from pitstop.workspace import Workspace

SRC = Path(__file__).resolve().parents[1] / "src" / "pitstop"


def test_a_python_caller_is_told_the_parameter_not_the_flag(workspace: Workspace) -> None:
    with pytest.raises(UsageError) as caught:
        workspace.archive_model("eta", reason=" ")
    assert caught.value.field == "reason"
    assert str(caught.value) == "reason: say why the model is archived" and "--" not in str(caught.value)


def test_the_cli_names_the_flag_of_the_same_mistake(cli, workspace: Workspace) -> None:  # type: ignore[no-untyped-def]
    line = one_line_error(cli("models", "archive", "eta", "--reason", " ", "-w", workspace.path))
    assert line == "error: --reason: say why the model is archived"


def test_a_hint_follows_the_message() -> None:
    error = UsageError(
        "no rows before the cutoff", field="as_of", given="2026-01-01", hint="pick a later one"
    )
    assert str(error) == "as_of 2026-01-01: no rows before the cutoff; pick a later one"
    assert error.message == "no rows before the cutoff"


def test_positional_messages_still_work() -> None:
    error = UsageError("plain")
    assert (str(error), error.field, error.hint) == ("plain", None, None)


def test_a_mentioned_input_is_a_parameter_in_python_and_a_flag_on_the_cli() -> None:
    error = ConflictError(
        f"champions change through rollouts, or pass {mention('force', True)}",
        hint=f"or give {mention('time_column', 'ts')}, leaving out {mention('features')}",
    )
    assert str(error) == (
        "champions change through rollouts, or pass force=True; "
        "or give time_column='ts', leaving out features"
    )
    assert error.hint == "or give time_column='ts', leaving out features"
    assert error_line(error) == (
        "champions change through rollouts, or pass --force; or give --time-column ts, leaving out --features"
    )


def test_the_cli_names_the_flag_a_library_message_mentions(cli, workspace: Workspace) -> None:  # type: ignore[no-untyped-def]
    line = one_line_error(cli("models", "update", "eta", "-w", workspace.path))
    assert line == "error: give --description, --meta KEY=VALUE or --unset KEY: there is nothing to change"
    with pytest.raises(UsageError, match="give a description or metadata to set or remove"):
        workspace.update_model("eta")


# A flag inside a library's words: `--name` after a space or a bracket, outside a `quoted command`.
_FLAG = re.compile(r"(?:^|[\s(])--[a-z][a-z-]+")


def _words(tree: ast.AST) -> list[tuple[int, str]]:
    """Every string the module says (f-strings whole, their values as …), but docstrings and
    argument lists of other programs (a string that is one flag, `--porcelain`)."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
    }
    parts = {id(value) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for value in node.values}
    found = []
    for node in ast.walk(tree):
        if id(node) in docstrings or id(node) in parts:
            continue
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "…" for v in node.values)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        else:
            continue
        if not re.fullmatch(r"--[a-z][a-z-]*(=\S*)?", text):
            found.append((node.lineno, text))
    return found


def test_no_library_message_names_a_flag() -> None:
    offenders = [
        f"{path.relative_to(SRC)}:{line}: {text[:60]!r}"
        for path in sorted(SRC.rglob("*.py"))
        if not {"cli", "demo"} & set(path.relative_to(SRC).parts)
        for line, text in _words(ast.parse(path.read_text()))
        if _FLAG.search(re.sub(r"`[^`]*`", "", text))
    ]
    assert offenders == [], "mention the input (errors.mention), the CLI names its flag:\n" + "\n".join(
        offenders
    )
