"""Recorded traffic for a replay: read, checked and put in time order."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from pitstop import registry
from pitstop.datasets import file_format, parse_times, read_table
from pitstop.errors import UsageError
from pitstop.rollout.records import active_rollout
from pitstop.routing.store import current_routing
from pitstop.scoring import class_indices
from pitstop.store.predictions import summaries
from pitstop.workspace import Workspace

Progress = Callable[[int, int], None]  # (requests replayed, requests in all)


def load_traffic(path: str | Path, features: list[str], classes: list[Any] | None = None) -> pd.DataFrame:
    """A traffic table: `time`, `user_id`, the features, `label`; optional `request_id`, `label_time`."""
    source = Path(path)
    if not source.is_file():
        raise UsageError("no such file", field="traffic", given=str(source))
    frame = read_table(source, file_format(source), str(source))
    return prepare_traffic(frame, features, str(source), classes=classes)


def prepare_traffic(
    frame: pd.DataFrame, features: list[str], source: str = "traffic", *, classes: list[Any] | None = None
) -> pd.DataFrame:
    """Validate and normalise a traffic table: times parsed, labels numbers (a multiclass model's
    labels: its `classes`, kept as they are), request ids checked, sorted.

    Without a `request_id` column the table stays without one: the replay names its requests after
    its rollout (see `replay_request_ids`), so that replays sharing a store never share an id.
    """
    missing = [c for c in ["time", "user_id", *features, "label"] if c not in frame.columns]
    if missing:
        raise UsageError(
            f"{source}: missing column(s) {', '.join(missing)} (a traffic table needs time, user_id, "
            "the model's features and label)"
        )
    if frame.empty:
        raise UsageError(f"{source}: no rows")
    out = frame.reset_index(drop=True)
    # Python datetimes (the clock's) hold microseconds: drop finer digits once, here.
    out["time"] = parse_times(out["time"], "time", source).dt.floor("us")
    out["label_time"] = (
        parse_times(out["label_time"], "label_time", source).dt.floor("us")
        if "label_time" in out
        else out["time"]
    )
    if (out["label_time"] < out["time"]).any():
        raise UsageError(f"{source}: a label_time is before its request's time")
    if classes is None:
        out["label"] = _labels(out["label"], source)
    else:
        class_indices(out["label"], classes, f"{source}: label")  # each one of the model's classes
    if "request_id" in out:
        out["request_id"] = _request_ids(out["request_id"], source)
    # A missing user stays missing (not the text "nan"): the request is then bucketed by its id.
    out["user_id"] = pd.Series([None if pd.isna(u) else str(u) for u in out["user_id"]], dtype=object)
    return out.sort_values("time", kind="stable").reset_index(drop=True)


def _labels(values: pd.Series, source: str) -> pd.Series:
    """The labels as floats; a missing, non-numeric or infinite one is named with its row."""
    if values.isna().any():
        raise UsageError(
            f"{source}: label is missing at {_rows(values.isna())}; every request needs its label"
        )
    numbers = pd.to_numeric(values, errors="coerce").astype(float)
    bad = numbers.isna() | numbers.abs().eq(np.inf)
    if bad.any():
        shown = ", ".join(repr(v) for v in values[bad].head(_SHOWN))
        raise UsageError(
            f"{source}: label is not a finite number at {_rows(bad)} ({shown}); "
            "labels are numbers (1 or 0 for a class)"
        )
    return numbers


def _request_ids(values: pd.Series, source: str) -> pd.Series:
    """The request ids as text; a blank or repeated one is named with its rows."""
    ids = pd.Series([None if pd.isna(v) else str(v).strip() for v in values], dtype=object)
    blank = ids.isna() | (ids == "")
    if blank.any():
        raise UsageError(
            f"{source}: request_id is missing at {_rows(blank)}; give every row an id, or drop the "
            "column and the replay names the requests"
        )
    repeated = ids.duplicated(keep=False)
    if repeated.any():
        first = ids[repeated].iloc[0]
        raise UsageError(
            f"{source}: request_id {first!r} is used more than once (at {_rows(ids == first)}); "
            "request ids must be unique"
        )
    return ids


_SHOWN = 5  # rows named in an error message; the rest are counted


def _rows(mask: pd.Series) -> str:
    """`row 3` or `rows 3, 7 (and 2 more)`: data rows counted from 1, the header not counted."""
    numbers = [str(i + 1) for i in mask.to_numpy().nonzero()[0]]
    more = f" (and {len(numbers) - _SHOWN} more)" if len(numbers) > _SHOWN else ""
    return f"row{'s' if len(numbers) > 1 else ''} {', '.join(numbers[:_SHOWN])}{more}"


def check_pace(interval: timedelta, window: timedelta) -> None:
    """A replay's controller interval must move the clock, and its concurrency window cannot be negative."""
    if interval <= timedelta(0):
        raise UsageError(
            f"interval must be longer than zero, got {interval} (the controller would never look)"
        )
    if window < timedelta(0):
        raise UsageError(f"concurrency window cannot be negative, got {window}")


@dataclass(frozen=True)
class RequestIds:
    """A traffic's request ids: its own `request_id` column, or `{prefix}{first + i}` for row i
    (`replay_request_ids`), made when asked for, so a long traffic holds no column of them."""

    given: npt.NDArray[np.object_] | None
    prefix: str = ""
    first: int = 0

    def __getitem__(self, row: int) -> str:
        return str(self.given[row]) if self.given is not None else f"{self.prefix}{self.first + row}"

    def of(self, rows: Sequence[int]) -> list[str]:
        return [self[row] for row in rows]


def traffic_request_ids(ws: Workspace, model: str, frame: pd.DataFrame) -> RequestIds:
    """The table's request ids, or the replay's numbering (`replay_request_ids`) when it has none."""
    if "request_id" in frame:
        return RequestIds(frame["request_id"].to_numpy(dtype=object))
    return RequestIds(None, *_numbering(ws, model))


def replay_request_ids(ws: Workspace, model: str, count: int) -> list[str]:
    """Ids for traffic that has none, in time order: `r{rollout}-{i}` during a rollout, else
    `t{routing table version}-{i}` (traffic replayed with no rollout active).

    Labels are kept one per (model, request id), so replays sharing a store (the demo's rollouts, one
    after another, or several replays into one rollout) must never repeat an id, or each would
    overwrite the labels of the one before: a later replay continues the numbering. The ids are also
    the same on every run of the same replays: requests without a user_id are routed by them.
    """
    prefix, used = _numbering(ws, model)
    return [f"{prefix}{i}" for i in range(used, used + count)]


def _numbering(ws: Workspace, model: str) -> tuple[str, int]:
    """The prefix of the replay's request ids, and how many of them the model's log already holds."""
    with ws.reading() as conn:
        info = registry.get_model(conn, model)
        stored = active_rollout(conn, info.id)
        table = current_routing(conn, info.id)
        prefix = f"r{stored.state.id}-" if stored else f"t{table.version if table else 0}-"
        return prefix, summaries.request_ids_used(conn, info.id, prefix)
