"""Errors carry the input they are about (`field`) and how to fix it (`hint`); only the CLI names a
flag, only HTTP a JSON pointer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from helpers import one_line_error
from pitstop.errors import UsageError
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


def _messages(tree: ast.AST) -> list[tuple[int, str]]:
    """The leading text of every message given to an `…Error(...)` raised in `tree`."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args:
            first = node.exc.args[0]
            if isinstance(first, ast.JoinedStr) and first.values:
                first = first.values[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.append((node.lineno, first.value))
    return found


def test_no_message_raised_outside_the_cli_starts_with_a_flag() -> None:
    offenders = [
        f"{path.relative_to(SRC)}:{line}: {text[:40]}"
        for path in sorted(SRC.rglob("*.py"))
        if "cli" not in path.relative_to(SRC).parts
        for line, text in _messages(ast.parse(path.read_text()))
        if text.lstrip().startswith("--")
    ]
    assert offenders == [], "name the field (field=...), the CLI turns it into a flag:\n" + "\n".join(
        offenders
    )
