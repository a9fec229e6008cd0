"""The batched replay's feature check accepts exactly the rows the gateway's accepts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pitstop.replay.columns import valid_rows
from pitstop.serving.features import FeatureSchema, Kind

ODD_FLOATS = [0.5, np.nan, np.inf, -np.inf, 3.0, -(2.0**63), 2.0**63, 1e300]
ODD_OBJECTS = [1, 2.5, None, "x", True, float("nan"), 2**63, -(2**63)]


def gateway_accepts(frame: pd.DataFrame, schema: FeatureSchema) -> list[bool]:
    """The gateway's check of each row's values as JSON carries them (Python scalars), as the gateway
    replay sends them."""
    names = list(schema.names)
    rows = [
        dict(zip(names, values, strict=True))
        for values in zip(*(frame[n].tolist() for n in names), strict=True)
    ]
    return [schema.accepts(row) or not schema.problems(row, "features") for row in rows]


@pytest.mark.parametrize("kind", ["float", "int", "any", "str", "bool"])
@pytest.mark.parametrize(
    "column",
    [
        pd.Series(ODD_FLOATS, dtype="float64"),
        pd.Series([1, -(2**63), 2**63 - 1, 0, 5, 6, 7, 8], dtype="int64"),
        pd.Series([1, None, 3, 4, 5, 6, 7, 8], dtype="Int64"),
        pd.Series(ODD_OBJECTS, dtype=object),
        pd.Series([True, False] * 4, dtype=bool),
        pd.Series([1, 2**64 - 1, 3, 4, 5, 6, 7, 8], dtype="uint64"),
    ],
    ids=["float64", "int64", "Int64", "object", "bool", "uint64"],
)
def test_a_column_is_checked_as_the_gateway_checks_each_value(column: pd.Series, kind: Kind) -> None:
    schema = FeatureSchema(("x",), (kind,))
    frame = pd.DataFrame({"x": column})
    assert valid_rows(frame, schema).tolist() == gateway_accepts(frame, schema)
