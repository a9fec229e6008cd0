"""A replay's traffic as the columns the batched replay works on: units, epoch times, labels, and
which rows the gateway's feature check accepts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from pitstop import registry
from pitstop.registry import Task
from pitstop.replay.traffic import RequestIds, traffic_request_ids
from pitstop.scoring import class_indices
from pitstop.serving.features import FeatureSchema, Kind, value_problem
from pitstop.workspace import Workspace

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Flags = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Traffic:
    """The replay's requests as columns, in time order (see `traffic.prepare_traffic`)."""

    features: pd.DataFrame  # the traffic table itself (its feature columns are read, never copied)
    request_ids: RequestIds
    user_ids: npt.NDArray[np.object_]  # a user's id, or None
    units: Ints  # each request's unit: its user's, or its own without a user_id
    by_user: Flags
    times: Floats  # epoch seconds, as a gateway stamps a request
    label_times: Floats
    labels: Floats  # numbers; a multiclass model's: the class's index
    valid: Flags  # the gateway's feature check passes
    unit_count: int

    def __len__(self) -> int:
        return len(self.times)


def epoch_seconds(times: pd.Series) -> Floats:
    """UTC timestamps as the float epoch seconds `datetime.timestamp()` gives (whole microseconds)."""
    micros = times.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[us]")
    return np.asarray(micros.astype(np.int64), dtype=np.float64) / 1e6


def read_traffic(
    ws: Workspace, info: registry.ModelInfo, frame: pd.DataFrame, schema: FeatureSchema
) -> Traffic:
    """The columns a batched replay works on, from a prepared traffic table. A unit is a user, or, for
    a request without a user_id, the request itself (as `rows.unit` counts it)."""
    users = frame["user_id"].to_numpy(dtype=object)
    by_user = np.array([u is not None for u in users], dtype=bool)
    user_codes, known = pd.factorize(frame["user_id"])  # None: -1
    units = user_codes.astype(np.int64)
    anonymous = ~by_user
    units[anonymous] = len(known) + np.arange(int(anonymous.sum()))
    if info.task is Task.MULTICLASS:
        labels = class_indices(frame["label"], info.classes or [], "traffic: label").to_numpy(dtype=float)
    else:
        labels = frame["label"].to_numpy(dtype=float)
    return Traffic(
        features=frame,
        request_ids=traffic_request_ids(ws, info.name, frame),
        user_ids=users,
        units=units,
        by_user=by_user,
        times=epoch_seconds(frame["time"]),
        label_times=epoch_seconds(frame["label_time"]),
        labels=labels,
        valid=valid_rows(frame, schema),
        unit_count=len(known) + int(anonymous.sum()),
    )


def valid_rows(frame: pd.DataFrame, schema: FeatureSchema) -> Flags:
    """Which rows the gateway's feature check accepts (`FeatureSchema`, `features.value_problem`)."""
    valid = np.ones(len(frame), dtype=bool)
    for name, kind in zip(schema.names, schema.kinds, strict=True):
        valid &= _valid_values(frame[name], kind)
    return valid


def _valid_values(column: pd.Series, kind: Kind) -> Flags:
    """A number column for a number feature at once (finite; whole and within int64 for an integer
    one); anything else value by value, by the gateway's own rule."""
    plain = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
    if kind not in ("float", "int") or not plain or pd.api.types.is_unsigned_integer_dtype(column):
        return np.array([value_problem(v, kind) is None for v in column.tolist()], dtype=bool)
    if pd.api.types.is_integer_dtype(column) and not column.hasnans:
        return np.ones(len(column), dtype=bool)  # whole int64 numbers: valid for either kind
    values = column.to_numpy(dtype=float, na_value=np.nan)
    ok = np.isfinite(values)
    if kind == "int":
        whole = np.where(ok, values, 0.0)
        ok &= (whole == np.floor(whole)) & (whole >= -(2.0**63)) & (whole < 2.0**63)
    checked: Flags = ok
    return checked
