"""Every docstring example in the package runs as a test."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import pitstop

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(pitstop.__path__, "pitstop.")
    if "migrations" not in info.name and info.name != "pitstop.__main__"
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
