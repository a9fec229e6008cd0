"""`pitstop COMMAND` builds only the module of COMMAND: the table saying which module registers each
top-level name must be exactly what the modules register, or a command would be missing or reached
through the wrong module."""

from __future__ import annotations

import typer

import pitstop.cli
from pitstop.cli import MODULES, OWNERS, app_for, build_app


def _names(tree: typer.Typer) -> set[str]:
    command = typer.main.get_command(tree)
    assert isinstance(command, typer.core.TyperGroup)
    return set(command.commands)


def test_the_owners_table_is_what_each_module_registers() -> None:
    registered = {name: module for module in MODULES for name in _names(build_app((module,)))}
    assert registered == OWNERS


def test_the_whole_tree_has_every_command() -> None:
    assert _names(pitstop.cli.app) == set(OWNERS)


def test_a_command_builds_its_modules_tree_and_help_or_a_typo_the_whole_one() -> None:
    assert _names(app_for(["models", "list"])) == {"models", "register"}
    assert _names(app_for(["compare", "--help"])) == {"compare"}  # a group, though one command
    whole = set(OWNERS)
    for args in ([], ["--help"], ["modles", "list"]):
        assert _names(app_for(args)) == whole
