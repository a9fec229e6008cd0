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


def load_hint(error: BaseException) -> str | None:
    """How to fix a failed unpickling whose classes' module is not importable here; None for others."""
    if isinstance(error, ImportError | AttributeError):
        return f"the module its classes come from must be importable: {IMPORTABLE_HINT}"
    return None


def with_hint(message: str, hint: str | None) -> str:
    """`message; hint`, or the message alone without a hint."""
    return f"{message}; {hint}" if hint else message


def import_function(reference: str, field: str, role: str | None = None) -> Callable[..., Any]:
    """`package.module:function` → the function, imported as `current_folder_importable` allows. Errors
    name the `field` the reference was given as (`trainer 'REF'`), or the `role` it plays when given
    (`loss 'REF'`, the trainer a version recorded)."""

    def refused(message: str, hint: str | None = None) -> UsageError:
        if role is not None:
            return UsageError(f"{role}: {message}", hint=hint)
        return UsageError(message, field=field, given=repr(reference), hint=hint)

    module_name, sep, function_name = reference.partition(":")
    if not sep or not module_name or not function_name:
        raise refused("write it as package.module:function")
    try:
        with current_folder_importable():
            module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        itself = error.name == module_name or module_name.startswith(f"{error.name}.")
        if itself:  # the module (or its package) is not there, rather than something it imports
            hint = f"the trainer's module must be importable: {IMPORTABLE_HINT}"
            raise refused(f"cannot import {module_name} ({describe(error)})", hint) from None
        raise refused(f"importing {module_name} failed ({describe(error)})") from None
    except USER_CODE_FAILURES as error:  # the user's module may fail in any way while importing
        raise refused(f"importing {module_name} failed ({describe(error)})") from None
    function: Callable[..., Any] | None = getattr(module, function_name, None)
    if not callable(function):
        raise refused(f"{module_name} has no function {function_name!r}")
    return function
