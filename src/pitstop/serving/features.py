"""Feature validation: each instance must carry exactly the model's features, each of the right type.

The feature list comes from the model (`ModelInfo.features`, fixed by its first version) and the
types from the serving version's lineage (`feature_types`, pandas dtype names recorded at
registration). A numeric feature takes a finite JSON number (an integer one takes a whole number),
a boolean one `true`/`false`, a string-like one a string; `null` is refused everywhere, since most
scikit-learn models cannot take a missing value.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from pitstop.records.lineage import Lineage
from pitstop.serving.errors import FieldProblem

Kind = Literal["float", "int", "bool", "str", "any"]
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1  # what an integer column (int64) holds
_FLOAT_MAX = sys.float_info.max


def kind_of(dtype: str | None) -> Kind:
    """The JSON kind a pandas dtype name accepts.

    >>> [kind_of(t) for t in ("float64", "Int64", "bool", "object", "category", None)]
    ['float', 'int', 'bool', 'str', 'str', 'any']
    """
    if dtype is None:
        return "any"
    name = dtype.lower()
    if name.startswith(("float", "double")):
        return "float"
    if name.startswith(("int", "uint")):
        return "int"
    if name in ("bool", "boolean"):
        return "bool"
    if name in ("object", "str", "string", "category") or name.startswith("string"):
        return "str"
    return "any"


@dataclass(frozen=True)
class FeatureSchema:
    """The features a model expects, in column order, with the JSON kind each accepts."""

    names: tuple[str, ...]
    kinds: tuple[Kind, ...]

    @classmethod
    def from_lineage(cls, features: list[str], lineage: Lineage) -> FeatureSchema:
        types = lineage.feature_types
        kinds = {name: kind_of(types.get(name)) for name in features}
        for column in (lineage.input_signature or {}).get("columns", []):
            categories = column.get("categories")
            numbers = categories is not None and not all(isinstance(c, str) for c in categories)
            if numbers and column["name"] in kinds:
                kinds[column["name"]] = "any"  # categories of numbers take numbers
        return cls(tuple(features), tuple(kinds[name] for name in features))

    def example(self) -> dict[str, Any]:
        """A valid instance, used to warm a freshly loaded model up."""
        defaults: dict[Kind, Any] = {"float": 0.0, "int": 0, "bool": False, "str": "", "any": 0.0}
        return {name: defaults[kind] for name, kind in zip(self.names, self.kinds, strict=True)}

    @cached_property
    def _quick(self) -> tuple[tuple[str, bool, bool], ...]:
        """Each feature, whether any finite float is valid for it, and whether any string is."""
        return tuple(
            (name, kind in ("float", "any"), kind in ("str", "any"))
            for name, kind in zip(self.names, self.kinds, strict=True)
        )

    def accepts(self, features: Any) -> bool:
        """True when `features` is valid at a glance, as nearly every request's are: exactly the
        model's features, each a finite float or a string where the feature takes one. False says
        only that `problems` must look (an integer, a boolean, a missing feature …).

        A quarter of `problems`' CPU on a valid instance (the gateway checks one per prediction).
        """
        if type(features) is not dict or len(features) != len(self.names):
            return False
        for name, takes_float, takes_str in self._quick:
            value: Any = features.get(name)
            kind = type(value)
            if kind is float:
                if not takes_float or value - value != 0.0:  # inf - inf and nan - nan are nan
                    return False
            elif kind is not str or not takes_str:
                return False
        return True

    def problems(self, features: Any, where: str) -> list[FieldProblem]:
        """Everything wrong with one instance's features (empty when valid)."""
        if not isinstance(features, dict):
            return [
                FieldProblem(
                    where, f"must be an object mapping feature names to values, got {_kind(features)}"
                )
            ]
        found: list[FieldProblem] = []
        missing = 0
        for name, kind in zip(self.names, self.kinds, strict=True):
            if name not in features:
                missing += 1
                found.append(FieldProblem(f"{where}.{name}", "missing"))
                continue
            problem = value_problem(features[name], kind)
            if problem is not None:
                found.append(FieldProblem(f"{where}.{name}", problem))
        if len(features) > len(self.names) - missing:
            expected = ", ".join(self.names)
            found.extend(
                FieldProblem(f"{where}.{key}", f"unknown feature (this model uses {expected})")
                for key in features
                if key not in self.names
            )
        return found


def value_problem(value: Any, kind: Kind) -> str | None:
    """What is wrong with one feature's value for its kind (None: nothing)."""
    if value is None:
        return "must not be null"
    if kind == "any":
        return (
            None if isinstance(value, int | float | str | bool) else f"expected a scalar, got {_kind(value)}"
        )
    if kind == "bool":
        return None if isinstance(value, bool) else f"expected true or false, got {_kind(value)}"
    if kind == "str":
        return None if isinstance(value, str) else f"expected a string, got {_kind(value)}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"expected a number, got {_kind(value)}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"expected a finite number, got {value}"
    if kind == "int" and isinstance(value, float) and not value.is_integer():
        return f"expected a whole number, got {value}"
    if kind == "int" and not _INT64_MIN <= value <= _INT64_MAX:
        return f"expected a whole number between {_INT64_MIN} and {_INT64_MAX}, got {_kind(value)}"
    if isinstance(value, int) and abs(value) > _FLOAT_MAX:
        return f"expected a finite number, got {_kind(value)}"
    return None


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        text = str(value)
        return f"the number {text}" if len(text) <= 40 else f"a {len(text)}-character number"
    if isinstance(value, str):
        return f"the string {value!r}" if len(value) <= 40 else "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
