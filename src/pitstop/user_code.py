"""The user's own code: importing a trainer, a loss or a model's classes from where the user runs
pitstop, and saying what to do when that fails."""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pitstop.errors import USER_CODE_FAILURES, UsageError, describe


@contextmanager
def current_folder_importable() -> Iterator[None]:
    """Let modules in the current folder be imported while inside, as `python -m` does.

    The console script, unlike `python -m`, does not put the current folder on `sys.path`, so a
    `mytrainers.py` next to the user would not be found. The folder goes last, so a stray file named
    like an installed package shadows nothing, and it is removed again on the way out (modules
    imported meanwhile stay imported).
    """
    try:
        folder = os.getcwd()
    except OSError:  # the current folder was deleted: nothing to add
        folder = ""
    if not folder or folder in sys.path or "" in sys.path:
        yield
        return
    sys.path.append(folder)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(folder)


IMPORTABLE_HINT = "install it, add its folder to PYTHONPATH, or run pitstop from the folder that holds it"


def load_hint(error: BaseException) -> str:
    """What to add to a failed unpickling: its classes' module is not importable here."""
    if isinstance(error, ImportError | AttributeError):
        return f"; the module its classes come from must be importable: {IMPORTABLE_HINT}"
    return ""


def import_function(reference: str, role: str) -> Callable[..., Any]:
    """`package.module:function` → the function, imported as `current_folder_importable` allows. `role`
    names where the reference came from in errors (`--trainer 'REF'`, `loss 'REF'`)."""
    module_name, sep, function_name = reference.partition(":")
    if not sep or not module_name or not function_name:
        raise UsageError(f"{role}: write it as package.module:function")
    try:
        with current_folder_importable():
            module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        itself = error.name == module_name or module_name.startswith(f"{error.name}.")
        if itself:  # the module (or its package) is not there, rather than something it imports
            raise UsageError(
                f"{role}: cannot import {module_name} ({describe(error)}); the trainer's module must be "
                f"importable: {IMPORTABLE_HINT}"
            ) from None
        raise UsageError(f"{role}: importing {module_name} failed ({describe(error)})") from None
    except USER_CODE_FAILURES as error:  # the user's module may fail in any way while importing
        raise UsageError(f"{role}: importing {module_name} failed ({describe(error)})") from None
    function: Callable[..., Any] | None = getattr(module, function_name, None)
    if not callable(function):
        raise UsageError(f"{role}: {module_name} has no function {function_name!r}")
    return function
