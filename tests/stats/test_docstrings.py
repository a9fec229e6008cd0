"""Every public statistics function documents its formula, its source and a runnable example."""

from __future__ import annotations

import inspect
import re

import pytest

import pitstop.stats

FUNCTIONS = sorted(name for name in pitstop.stats.__all__ if inspect.isfunction(getattr(pitstop.stats, name)))


@pytest.mark.parametrize("name", FUNCTIONS)
def test_each_public_function_gives_a_formula_a_source_and_an_example(name: str) -> None:
    doc = inspect.getdoc(getattr(pitstop.stats, name)) or ""
    text, _, example = doc.partition(">>>")
    assert example, "an example (run by tests/test_doctests.py)"
    assert re.search(r"\b(19|20)\d\d\b", text), "a source with its year"
    assert "=" in text, "a formula"
    assert "see the module" not in text
