"""A model's input, built from its version's recorded input signature: the one code path the gate, the
door check, `reproduce`, served and shadow calls (and so `simulate`) all use (guarantee 14).

The signature is recorded at `train`/`register` from the training rows and the model: the feature
names in the model's order, each column's pandas dtype (with the categories of a categorical column)
and whether the model takes a DataFrame or an array. Rows arrive either as a table (a test set, the
training rows) or as JSON instances (a served call); both become the same columns cast to the recorded
dtypes, so the same rows give the model the same input, and so bit-identical predictions, offline and
online. A categorical column gets exactly the training categories (not those of the rows at hand), so
its codes mean the same thing in every batch.

Versions registered before signatures existed get one derived as pitstop fed them then: dtypes from
the lineage's `feature_types`, a DataFrame for a model fitted with feature names, an array for a
scikit-learn estimator fitted without them, else a DataFrame.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Literal

import numpy as np
import pandas as pd

from pitstop.records.lineage import Lineage

Row = Mapping[str, Any]
Takes = Literal["frame", "array"]
ANY = "any"  # an old version's feature without a recorded dtype


@dataclass(frozen=True)
class Column:
    """One feature: its name, pandas dtype name and, for a categorical one, the training categories."""

    name: str
    dtype: str
    categories: tuple[Any, ...] | None = None

    def pandas_dtype(self) -> Any:
        if self.categories is not None:
            return pd.CategoricalDtype(list(self.categories))
        if self.dtype == ANY:
            return None  # inferred from the values
        return "object" if self.dtype == "category" else self.dtype  # a category without its categories

    def to_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {"name": self.name, "dtype": self.dtype}
        if self.categories is not None:
            found["categories"] = list(self.categories)
        return found


@dataclass(frozen=True)
class InputSignature:
    """What a model takes: `columns` in the model's order; `takes` a DataFrame or an array of them."""

    columns: tuple[Column, ...]
    takes: Takes = "frame"

    @property
    def names(self) -> list[str]:
        return [column.name for column in self.columns]

    @property
    def all_float(self) -> bool:
        return all(column.dtype == "float64" for column in self.columns)

    def to_dict(self) -> dict[str, Any]:
        return {"columns": [column.to_dict() for column in self.columns], "takes": self.takes}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InputSignature:
        columns = tuple(
            Column(c["name"], c["dtype"], None if c.get("categories") is None else tuple(c["categories"]))
            for c in data["columns"]
        )
        return cls(columns, data.get("takes", "frame"))

    # -- building the input -----------------------------------------------------------------------

    def from_frame(self, frame: pd.DataFrame) -> Any:
        """The model's input for the rows of a table holding (at least) every feature."""
        if self.all_float:
            return self._shaped(frame[self.names].to_numpy(dtype=np.float64))
        return self._typed({name: frame[name].to_numpy() for name in self.names}, len(frame))

    def from_rows(self, rows: Sequence[Row]) -> Any:
        """The model's input for JSON instances (one mapping of feature name to value per row)."""
        if self.all_float:  # one float64 block straight from the rows: a quarter of the column path's cost
            return self._shaped(self.float_block(rows))
        return self._typed({name: [row[name] for row in rows] for name in self.names}, len(rows))

    def from_columns(self, frame: pd.DataFrame) -> Any:
        """`from_rows` of the table's rows, built from its columns: the same values in the same memory
        order, so a model gives the same answer to the last bit (what a batched replay scores)."""
        if self.all_float:
            return self._shaped(self.float_columns(frame))
        return self._typed({name: frame[name].to_numpy() for name in self.names}, len(frame))

    def float_columns(self, frame: pd.DataFrame) -> Any:
        """`float_block` of the table's rows, from its columns."""
        return np.asfortranarray(frame[self.names].to_numpy(dtype=np.float64))

    def float_block(self, rows: Sequence[Row]) -> Any:
        """The rows' (numeric) features as one float64 array in column-major order, as pandas holds a
        DataFrame's values and hands them to a model: a matrix product over the same numbers in
        another memory order may differ in the last bits."""
        values = _getter(self.names)
        block = np.array([values(row) for row in rows], dtype=np.float64)
        return np.asfortranarray(block.reshape(len(rows), len(self.columns)))

    def _shaped(self, block: Any) -> Any:
        if self.takes == "array":
            return np.asfortranarray(block)
        return pd.DataFrame(block, columns=self.names, copy=False)

    def _typed(self, values: Mapping[str, Any], rows: int) -> Any:
        frame = pd.DataFrame(
            {column.name: _cast(values[column.name], column) for column in self.columns},
            columns=self.names,
            index=pd.RangeIndex(rows),
        )
        return np.asfortranarray(frame.to_numpy()) if self.takes == "array" else frame


def _cast(values: Any, column: Column) -> pd.Series:
    """The values as the recorded dtype; as they are when they cannot be (a table's missing values in
    an integer column: served rows never have them)."""
    try:
        typed: pd.Series = pd.Series(values, dtype=column.pandas_dtype())
    except (ValueError, TypeError, OverflowError):
        typed = pd.Series(values)
    return typed


def _getter(names: list[str]) -> Callable[[Row], Any]:
    get = itemgetter(*names)
    return (lambda row: (get(row),)) if len(names) == 1 else get


# -- recording and reading signatures ---------------------------------------------------------------


def model_order(model: Any, features: Sequence[str]) -> list[str]:
    """The features in the order the model was fitted with, when it says (`feature_names_in_`) and
    names the same columns; else as given."""
    fitted = getattr(model, "feature_names_in_", None)
    if fitted is not None and sorted(map(str, fitted)) == sorted(features):
        return [str(name) for name in fitted]
    return list(features)


def takes_by_its_attributes(model: Any) -> Takes | None:
    """What a fitted model says it takes: a DataFrame when it has feature names, an array when it is
    a scikit-learn-like estimator fitted on one (`n_features_in_` without names); None when it says
    nothing (a plain class)."""
    if getattr(model, "feature_names_in_", None) is not None:
        return "frame"
    if getattr(model, "n_features_in_", None) is not None:
        return "array"
    return None


def columns_of(frame: pd.DataFrame, names: Sequence[str]) -> tuple[Column, ...]:
    """The columns' recorded form: dtype names, and the categories of categorical ones."""
    return tuple(_column(name, frame[name]) for name in names)


def _column(name: str, values: pd.Series) -> Column:
    if isinstance(values.dtype, pd.CategoricalDtype):
        return Column(name, "category", tuple(_plain(value) for value in values.cat.categories))
    return Column(name, str(values.dtype))


def _plain(value: Any) -> Any:
    """A category as JSON holds it (numpy scalars become Python numbers)."""
    return value.item() if isinstance(value, np.generic) else value


def signature_of(
    model: Any, frame: pd.DataFrame, features: Sequence[str], try_predict: Callable[[Any], object]
) -> InputSignature:
    """The signature to record for `model`, trained on (or registered with) the rows of `frame`.

    A model that does not say what it takes is tried on a few rows: a DataFrame first (what a trainer
    is given), an array when the DataFrame fails and the array works. `try_predict(input)` calls it."""
    names = model_order(model, features)
    columns = columns_of(frame, names)
    takes = takes_by_its_attributes(model)
    if takes is None:
        sample = frame.head(5)
        framed = InputSignature(columns, "frame")
        try:
            try_predict(framed.from_frame(sample))
            takes = "frame"
        except Exception:  # the user's model may fail in any way; the door check reports the frame's
            try:
                try_predict(InputSignature(columns, "array").from_frame(sample))
                takes = "array"
            except Exception:
                takes = "frame"
    return InputSignature(columns, takes)


def from_lineage(features: Sequence[str], lineage: Lineage, model: Any = None) -> InputSignature:
    """The version's recorded signature; for a version registered before signatures, one derived as
    pitstop fed it then (dtypes from `feature_types`, the frame or array by the model's attributes)."""
    if lineage.input_signature:
        return InputSignature.from_dict(lineage.input_signature)
    types = lineage.feature_types
    names = model_order(model, features)
    columns = tuple(Column(name, _legacy_dtype(types.get(name))) for name in names)
    return InputSignature(columns, takes_by_its_attributes(model) or "frame")


def _legacy_dtype(dtype: str | None) -> str:
    """An old version's recorded dtype; unknown, or categorical without categories: as the values come."""
    return ANY if dtype in (None, "category") else str(dtype)
