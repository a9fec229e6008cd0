"""Dataset snapshots (content-hashed, copied into the store) and point-in-time-correct joins."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Connection, func, select

from pitstop.errors import ConflictError, NotFoundError, UsageError, mention
from pitstop.events import EventKind, record_event
from pitstop.registry import validate_name
from pitstop.store.tables import datasets

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
CATEGORY = "category"


@dataclass(frozen=True)
class DatasetSnapshot:
    id: int
    name: str
    version: int
    sha256: str
    format: str
    uri: str
    source_path: str
    rows: int
    columns: dict[str, str]
    time_column: str | None
    time_min: datetime | None
    time_max: datetime | None
    created_at: datetime
    created_by: str

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def categorical(self) -> list[str]:
        """The columns loaded as pandas `category` (declared for a CSV, as stored in a Parquet file)."""
        return [name for name, dtype in self.columns.items() if dtype == CATEGORY]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "sha256": self.sha256,
            "format": self.format,
            "rows": self.rows,
            "columns": self.columns,
            "categorical": self.categorical,
            "time_column": self.time_column,
            "time_min": self.time_min.isoformat() if self.time_min else None,
            "time_max": self.time_max.isoformat() if self.time_max else None,
            "uri": self.uri,
            "source_path": self.source_path,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
        }


def parse_ref(text: str) -> tuple[str, int | None]:
    """`NAME` or `NAME:VERSION` (a missing version means the latest).

    >>> parse_ref("orders:3")
    ('orders', 3)
    >>> parse_ref("orders")
    ('orders', None)
    """
    name, _, version = text.partition(":")
    if not version:
        return name, None
    if not version.isdigit():
        raise UsageError(f"dataset reference {text!r}: the version after ':' must be a number")
    return name, int(version)


def file_format(path: Path) -> str:
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise UsageError(f"{path}: unsupported file type {path.suffix!r}; use .csv or .parquet") from None


def read_table(data: bytes | Path, fmt: str, source: str) -> pd.DataFrame:
    """Read CSV or Parquet, turning every parser failure into one clear line."""
    try:
        if fmt == "csv":
            frame = pd.read_csv(_handle(data))
            _refuse_duplicate_headers(pd.read_csv(_handle(data), header=None, nrows=1, dtype=str), source)
            return frame
        return pd.read_parquet(_handle(data))
    except (ValueError, OSError, pd.errors.ParserError, ImportError) as error:
        raise UsageError(f"{source}: cannot read as {fmt}: {str(error).splitlines()[0]}") from None


def _handle(data: bytes | Path) -> io.BytesIO | Path:
    return io.BytesIO(data) if isinstance(data, bytes) else data


def _refuse_duplicate_headers(header: pd.DataFrame, source: str) -> None:
    """pandas renames a repeated header `a` to `a.1`: the data would silently hold a column nobody named."""
    names = header.iloc[0].dropna().tolist() if len(header) else []
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise UsageError(
            f"{source}: the header names column(s) {', '.join(map(repr, repeated))} more than once; "
            "give every column its own name"
        )


def parse_times(values: pd.Series, column: str, source: str) -> pd.Series:
    """A column as timezone-aware UTC timestamps; naive values are taken as UTC.

    Numbers are refused: pandas would read 1700000000 as nanoseconds (1970-01-01T00:00:01.7), and
    seconds, milliseconds or days would each be a guess."""
    if pd.api.types.is_numeric_dtype(values):
        example = values.dropna().iloc[0] if values.notna().any() else None
        raise UsageError(
            f"{source}: time column {column!r} holds numbers ({values.dtype}"
            + (f", such as {example}" if example is not None else "")
            + "), not timestamps; write them in ISO 8601 such as 2026-01-31T12:00:00Z"
        )
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values
    else:
        try:
            parsed = pd.to_datetime(values, utc=True, format="mixed")
        except (ValueError, TypeError) as error:
            raise UsageError(
                f"{source}: time column {column!r} has values that are not timestamps ({error}); "
                "use ISO 8601 such as 2026-01-31T12:00:00Z"
            ) from None
    parsed = parsed.dt.tz_localize("UTC") if parsed.dt.tz is None else parsed.dt.tz_convert("UTC")
    if parsed.isna().any():
        first = int(parsed.isna().to_numpy().nonzero()[0][0])
        raise UsageError(f"{source}: time column {column!r} is empty or invalid at row {first + 1}")
    return pd.Series(parsed)


def as_categorical(frame: pd.DataFrame, columns: list[str], source: str) -> pd.DataFrame:
    """The frame with `columns` as pandas `category` (categories: the sorted distinct values), as a
    snapshot declared with them loads every time: a CSV cannot say a column is categorical."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise UsageError(
            f"{source}: no column {missing[0]!r} to make categorical; columns are "
            f"{', '.join(map(str, frame.columns))}"
        )
    return frame.astype({column: CATEGORY for column in columns}) if columns else frame


def describe_frame(frame: pd.DataFrame, time_column: str | None, source: str) -> dict[str, Any]:
    """Row count, column types and the time range of a table."""
    if frame.empty:
        raise UsageError(f"{source}: the table has no rows")
    info: dict[str, Any] = {
        "rows": len(frame),
        "columns": {str(name): str(dtype) for name, dtype in frame.dtypes.items()},
        "time_min": None,
        "time_max": None,
    }
    if time_column is not None:
        if time_column not in frame.columns:
            raise UsageError(
                f"{source}: no time column {time_column!r}; columns are {', '.join(map(str, frame.columns))}"
            )
        times = parse_times(frame[time_column], time_column, source)
        info["columns"][str(time_column)] = str(times.dtype)  # as parsed: a CSV column reads as text
        info["time_min"] = times.min().floor("us").to_pydatetime()
        info["time_max"] = times.max().floor("us").to_pydatetime()
    return info


def insert_snapshot(
    conn: Connection,
    *,
    name: str,
    sha256: str,
    fmt: str,
    uri: str,
    source_path: str,
    info: dict[str, Any],
    time_column: str | None,
    now: datetime,
    actor: str,
) -> tuple[DatasetSnapshot, bool]:
    """Record a snapshot; identical content returns the existing one. Returns (snapshot, created).

    A snapshot's time column is part of what it is: identical content asked for with another time
    column is refused rather than silently returned with the old one (`time_column=None` asks for none
    in particular)."""
    validate_name("dataset", name)
    existing = conn.execute(
        select(datasets).where(datasets.c.name == name, datasets.c.sha256 == sha256)
    ).first()
    if existing is not None:
        snapshot = _snapshot(existing)
        _refuse_other_categories(snapshot, info["columns"])
        if time_column is not None and time_column != snapshot.time_column:
            if snapshot.time_column is None:
                recorded, same = "without a time column", f"leave out {mention('time_column')}"
            else:
                recorded = f"with time column {snapshot.time_column!r}"
                same = f"give {mention('time_column', snapshot.time_column)}"
            raise ConflictError(
                f"dataset {snapshot.ref} already holds this content {recorded}; {same} to get that "
                f"snapshot, or add the file under another name to use time column {time_column!r}"
            )
        return snapshot, False
    latest = conn.execute(select(func.max(datasets.c.version)).where(datasets.c.name == name)).scalar()
    result = conn.execute(
        datasets.insert().values(
            name=name,
            version=(latest or 0) + 1,
            sha256=sha256,
            format=fmt,
            uri=uri,
            source_path=source_path,
            rows=info["rows"],
            columns=info["columns"],
            time_column=time_column,
            time_min=info["time_min"],
            time_max=info["time_max"],
            created_at=now,
            created_by=actor,
        )
    )
    assert result.inserted_primary_key is not None
    row = conn.execute(select(datasets).where(datasets.c.id == result.inserted_primary_key[0])).one()
    snapshot = _snapshot(row)
    record_event(
        conn,
        time=now,
        model_id=None,
        kind=EventKind.DATASET_ADDED,
        actor=actor,
        to_state=snapshot.ref,
        data={"sha256": sha256, "rows": snapshot.rows},
    )
    return snapshot, True


def _refuse_other_categories(snapshot: DatasetSnapshot, columns: dict[str, str]) -> None:
    """Identical content declared with other categorical columns is another schema: refused, as
    another time column is."""
    asked = sorted(name for name, dtype in columns.items() if dtype == CATEGORY)
    if asked != sorted(snapshot.categorical):
        recorded = ", ".join(snapshot.categorical) or "none"
        raise ConflictError(
            f"dataset {snapshot.ref} already holds this content with categorical column(s) {recorded}; "
            f"declare the same to get that snapshot, or add the file under another name"
        )


def get_snapshot(conn: Connection, ref: str) -> DatasetSnapshot:
    name, version = parse_ref(ref)
    query = select(datasets).where(datasets.c.name == name)
    query = (
        query.order_by(datasets.c.version.desc())
        if version is None
        else query.where(datasets.c.version == version)
    )
    row = conn.execute(query.limit(1)).first()
    if row is None:
        known = conn.execute(select(func.max(datasets.c.version)).where(datasets.c.name == name)).scalar()
        if known is None:
            raise NotFoundError(
                f"unknown dataset {name!r}; register it with `pitstop dataset add {name} FILE`"
            )
        raise NotFoundError(f"dataset {name!r} has no version {version} (latest is {known})")
    return _snapshot(row)


def list_snapshots(conn: Connection, name: str | None = None) -> list[DatasetSnapshot]:
    query = select(datasets).order_by(datasets.c.name, datasets.c.version)
    if name is not None:
        query = query.where(datasets.c.name == name)
    return [_snapshot(row) for row in conn.execute(query)]


def _snapshot(row: Any) -> DatasetSnapshot:
    return DatasetSnapshot(
        id=row.id,
        name=row.name,
        version=row.version,
        sha256=row.sha256,
        format=row.format,
        uri=row.uri,
        source_path=row.source_path,
        rows=row.rows,
        columns=dict(row.columns),
        time_column=row.time_column,
        time_min=row.time_min,
        time_max=row.time_max,
        created_at=row.created_at,
        created_by=row.created_by,
    )


def frame_from_bytes(snapshot: DatasetSnapshot, data: bytes | None) -> pd.DataFrame:
    """The snapshot's table from its stored bytes, verified against the recorded sha256."""
    if data is None:
        raise NotFoundError(f"dataset {snapshot.ref}: stored copy {snapshot.uri} is missing")
    actual = hashlib.sha256(data).hexdigest()
    if actual != snapshot.sha256:
        raise UsageError(
            f"dataset {snapshot.ref}: stored copy changed (expected sha256 {snapshot.sha256}, found {actual})"
        )
    frame = read_table(data, snapshot.format, snapshot.ref)
    frame = as_categorical(frame, snapshot.categorical, snapshot.ref)  # a CSV's declared ones
    if snapshot.time_column is not None:
        frame[snapshot.time_column] = parse_times(
            frame[snapshot.time_column], snapshot.time_column, snapshot.ref
        )
    return frame


def point_in_time_join(
    events: pd.DataFrame,
    features: pd.DataFrame,
    on: str | list[str],
    event_time: str,
    feature_time: str,
) -> pd.DataFrame:
    """Attach to each event the latest feature row of its entity recorded strictly before the event.

    A feature value stamped at exactly the event time is not yet known then, so it is not joined
    (`allow_exact_matches=False`); events without an earlier feature row get missing values.
    Rows come back in the events' original order. Both time columns must be timestamps without
    missing values, both timezone-aware (any zones) or both naive. The feature time comes back as
    `feature_time`, or `<feature_time>_feature` when the events have a column of that name; any other
    column in both frames is refused rather than suffixed `_x`/`_y` behind the caller's back.

    >>> ev = pd.DataFrame({"user": ["a", "a"], "t": pd.to_datetime(["2026-01-02", "2026-01-03"])})
    >>> ft = pd.DataFrame({"user": ["a", "a"], "x": [1, 2]})
    >>> ft["ft"] = pd.to_datetime(["2026-01-01", "2026-01-03"])
    >>> point_in_time_join(ev, ft, on="user", event_time="t", feature_time="ft")["x"].tolist()
    [1, 1]
    """
    keys = [on] if isinstance(on, str) else list(on)
    for frame, column, what in ((events, event_time, "events"), (features, feature_time, "features")):
        missing = [c for c in [*keys, column] if c not in frame.columns]
        if missing:
            raise UsageError(f"point_in_time_join: {what} has no column(s) {', '.join(missing)}")
    _check_join_columns(events, features, keys, feature_time)
    event_key, feature_key = _comparable_times(events, event_time, features, feature_time)
    feature_time_out = feature_time if feature_time not in events.columns else f"{feature_time}_feature"
    left = events.reset_index(drop=True).assign(_pitstop_order=range(len(events)), _pitstop_time=event_key)
    right = features.reset_index(drop=True).rename(columns={feature_time: feature_time_out})
    joined = pd.merge_asof(
        left.sort_values("_pitstop_time", kind="stable"),
        right.assign(_pitstop_time=feature_key).sort_values("_pitstop_time", kind="stable"),
        on="_pitstop_time",
        by=keys,
        direction="backward",
        allow_exact_matches=False,
    )
    joined = joined.sort_values("_pitstop_order").drop(columns=["_pitstop_order", "_pitstop_time"])
    return joined.reset_index(drop=True)


def _check_join_columns(
    events: pd.DataFrame, features: pd.DataFrame, keys: list[str], feature_time: str
) -> None:
    """Entity keys of one type on both sides, and no other column name in both frames."""
    for key in keys:
        if events[key].dtype != features[key].dtype:
            raise UsageError(
                f"point_in_time_join: key column {key!r} is {events[key].dtype} in events but "
                f"{features[key].dtype} in features; convert one so both have the same type"
            )
    shared = [c for c in features.columns if c in events.columns and c not in (*keys, feature_time)]
    if shared:
        raise UsageError(
            f"point_in_time_join: column(s) {', '.join(map(repr, shared))} are in both events and "
            "features; rename or drop them on one side"
        )


def _comparable_times(
    events: pd.DataFrame, event_time: str, features: pd.DataFrame, feature_time: str
) -> tuple[pd.Series, pd.Series]:
    """Both time columns on one clock and one resolution, as merge_asof needs (the originals are kept)."""
    left = _join_time(events[event_time], event_time, "events")
    right = _join_time(features[feature_time], feature_time, "features")
    if (left.dt.tz is None) != (right.dt.tz is None):
        aware, naive = (f"events {event_time!r}", f"features {feature_time!r}")
        if left.dt.tz is None:
            aware, naive = naive, aware
        raise UsageError(
            f"point_in_time_join: {aware} is timezone-aware but {naive} is naive; localize the naive "
            "one (e.g. .dt.tz_localize('UTC')) so both are on one clock"
        )
    if left.dt.tz is not None:
        left, right = left.dt.tz_convert("UTC"), right.dt.tz_convert("UTC")
    unit = max(left.dt.unit, right.dt.unit, key=["s", "ms", "us", "ns"].index)
    return left.dt.as_unit(unit).reset_index(drop=True), right.dt.as_unit(unit).reset_index(drop=True)


def _join_time(values: pd.Series, column: str, what: str) -> pd.Series:
    if not pd.api.types.is_datetime64_any_dtype(values):
        raise UsageError(
            f"point_in_time_join: {what} column {column!r} holds {values.dtype} values, not timestamps; "
            "convert it first, e.g. with pandas.to_datetime(..., utc=True)"
        )
    if values.isna().any():
        first = int(values.isna().to_numpy().nonzero()[0][0])
        raise UsageError(
            f"point_in_time_join: {what} column {column!r} has {int(values.isna().sum())} missing time(s), "
            f"the first at row {first + 1}; drop or fill those rows first"
        )
    return values
