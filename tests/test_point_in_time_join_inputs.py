"""point_in_time_join refuses time and key columns it cannot compare, naming the column and the problem."""

from __future__ import annotations

import pandas as pd
import pytest

from pitstop.datasets import point_in_time_join
from pitstop.errors import UsageError


def _events(times: object, users: object = ("a", "a")) -> pd.DataFrame:
    return pd.DataFrame({"user": list(users), "t": times})  # type: ignore[call-overload]


def _features(times: object, users: object = ("a", "a")) -> pd.DataFrame:
    return pd.DataFrame({"user": list(users), "ft": times, "score": [1.0, 2.0]})  # type: ignore[call-overload]


AWARE = pd.to_datetime(["2026-01-02", "2026-01-04"], utc=True)
NAIVE = pd.to_datetime(["2026-01-01", "2026-01-03"])


def _join(events: pd.DataFrame, features: pd.DataFrame) -> pd.DataFrame:
    return point_in_time_join(events, features, on="user", event_time="t", feature_time="ft")


@pytest.mark.parametrize(
    ("events", "features", "message"),
    [
        (
            _events(pd.to_datetime(["2026-01-02", None], utc=True)),
            _features(AWARE),
            r"events column 't' has 1 missing time\(s\), the first at row 2; drop or fill",
        ),
        (
            _events(AWARE),
            _features(pd.to_datetime([None, "2026-01-01"], utc=True)),
            r"features column 'ft' has 1 missing time\(s\), the first at row 1",
        ),
        (_events(AWARE), _features(NAIVE), "events 't' is timezone-aware but features 'ft' is naive"),
        (_events(NAIVE), _features(AWARE), "features 'ft' is timezone-aware but events 't' is naive"),
        (
            _events(["2026-01-02", "2026-01-04"]),
            _features(AWARE),
            "events column 't' holds str values, not timestamps; convert it first",
        ),
        (_events(AWARE), _features([1, 2]), "features column 'ft' holds int64 values, not timestamps"),
        (
            _events(AWARE, users=(1, 1)),
            _features(AWARE),
            "key column 'user' is int64 in events but str in features",
        ),
    ],
)
def test_times_and_keys_that_cannot_be_compared_are_named(
    events: pd.DataFrame, features: pd.DataFrame, message: str
) -> None:
    with pytest.raises(UsageError, match=rf"point_in_time_join: {message}"):
        _join(events, features)


def test_other_columns_in_both_frames_are_refused_not_suffixed() -> None:
    events = _events(AWARE).assign(score=[0.0, 0.0])
    with pytest.raises(
        UsageError, match="column\\(s\\) 'score' are in both events and features; rename or drop"
    ):
        _join(events, _features(NAIVE.tz_localize("UTC")))


def test_aware_times_in_different_zones_and_resolutions_join_on_the_same_instant() -> None:
    # 2026-01-03T00:30 in Berlin is 2026-01-02T23:30 UTC: before the event at 2026-01-03T00:00 UTC
    berlin = pd.to_datetime(["2026-01-01T00:00", "2026-01-03T00:30"]).tz_localize("Europe/Berlin")
    events = _events(pd.to_datetime(["2026-01-02", "2026-01-03"], utc=True).as_unit("ns"))
    joined = _join(events, _features(berlin.as_unit("s")))
    assert joined["score"].tolist() == [1.0, 2.0]
    assert joined["ft"].dt.tz == berlin.tz and joined["t"].dtype == events["t"].dtype  # columns unchanged


def test_a_feature_time_named_like_an_event_column_comes_back_suffixed() -> None:
    events = _events(AWARE).rename(columns={"t": "time"})
    features = _features(NAIVE.tz_localize("UTC")).rename(columns={"ft": "time"})
    joined = point_in_time_join(events, features, on="user", event_time="time", feature_time="time")
    assert list(joined.columns) == ["user", "time", "time_feature", "score"]
    assert joined["score"].tolist() == [1.0, 2.0]
