"""Feature validation and body parsing: every bad field named, types from the version's lineage."""

from __future__ import annotations

from typing import Any

import pytest

from pitstop.http.payloads import parse_labels, parse_predict
from pitstop.records.lineage import Lineage
from pitstop.serving.errors import InvalidInputError, InvalidJSONError
from pitstop.serving.features import FeatureSchema

SCHEMA = FeatureSchema.from_lineage(
    ["speed", "stops", "rush", "zone", "extra"],
    Lineage.from_json(
        {"feature_types": {"speed": "float64", "stops": "int64", "rush": "bool", "zone": "str"}}
    ),
)
VALID = {"speed": 3.5, "stops": 2, "rush": False, "zone": "north", "extra": "anything"}


def test_a_valid_instance_has_no_problems() -> None:
    assert SCHEMA.problems(VALID, "features") == []
    assert SCHEMA.problems({**VALID, "stops": 2.0, "speed": 3}, "features") == []
    assert SCHEMA.problems({**VALID, "stops": -(2**63), "speed": 1e308}, "features") == []


@pytest.mark.parametrize(
    ("changes", "field", "problem"),
    [
        ({"speed": "fast"}, "features.speed", "expected a number, got the string 'fast'"),
        ({"speed": True}, "features.speed", "expected a number, got a boolean"),
        ({"speed": None}, "features.speed", "must not be null"),
        ({"speed": float("nan")}, "features.speed", "expected a finite number, got nan"),
        ({"stops": 2.5}, "features.stops", "expected a whole number, got 2.5"),
        # an integer column is int64: 1e23 used to pass and fail the model call (a 500)
        (
            {"stops": 1e23},
            "features.stops",
            "expected a whole number between -9223372036854775808 and 9223372036854775807, "
            "got the number 1e+23",
        ),
        (
            {"stops": 2**63},
            "features.stops",
            "expected a whole number between -9223372036854775808 and 9223372036854775807, "
            "got the number 9223372036854775808",
        ),
        ({"speed": 10**400}, "features.speed", "expected a finite number, got a 401-character number"),
        ({"rush": 1}, "features.rush", "expected true or false, got the number 1"),
        ({"zone": 7}, "features.zone", "expected a string, got the number 7"),
        ({"extra": [1]}, "features.extra", "expected a scalar, got a list"),
        (
            {"colour": "red"},
            "features.colour",
            "unknown feature (this model uses speed, stops, rush, zone, extra)",
        ),
    ],
)
def test_each_bad_field_is_named(changes: dict[str, Any], field: str, problem: str) -> None:
    problems = SCHEMA.problems({**VALID, **changes}, "features")
    assert [(p.field, p.problem) for p in problems] == [(field, problem)]


def test_a_quick_accept_never_passes_what_problems_refuses() -> None:
    """`accepts` is a shortcut for the common case only: whatever it passes, `problems` passes too."""
    floats = {"speed": 3.5, "zone": "north", "extra": 0.25}
    schema = FeatureSchema.from_lineage(
        ["speed", "zone", "extra"], Lineage.from_json({"feature_types": {"speed": "float64", "zone": "str"}})
    )
    assert schema.accepts(floats)
    values: list[Any] = [1.5, -0.0, 2, True, None, "s", float("inf"), float("nan"), 2**70, [1.0], {}]
    for name in floats:
        for value in values:
            for changed in ({**floats, name: value}, {k: v for k, v in floats.items() if k != name}):
                if schema.accepts(changed):
                    assert schema.problems(changed, "features") == [], changed
    assert not schema.accepts({**floats, "colour": 1.0})
    assert not schema.accepts([floats])


def test_missing_features_are_each_named() -> None:
    problems = SCHEMA.problems({"speed": 1.0}, "instances[3].features")
    assert [p.field for p in problems] == [
        f"instances[3].features.{n}" for n in ("stops", "rush", "zone", "extra")
    ]
    assert {p.problem for p in problems} == {"missing"}


def test_the_example_row_is_valid() -> None:
    assert SCHEMA.problems(SCHEMA.example(), "features") == []


def test_predict_bodies_parse_to_instances() -> None:
    (one,), batch = parse_predict(b'{"features": {"a": 1}, "user_id": "u", "request_id": "r"}')
    assert (one.features, one.user_id, one.request_id, batch) == ({"a": 1}, "u", "r", False)
    many, batch = parse_predict(
        b'{"instances": [{"features": {"a": 1}}, {"features": {"a": 2}, "user_id": "u"}]}'
    )
    assert batch and [i.features["a"] for i in many] == [1, 2] and many[1].user_id == "u"


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        (b"[1, 2]", ["body"]),
        (b'{"user_id": "u"}', ["features"]),
        (b'{"features": [1]}', ["features"]),
        (b'{"features": {}, "user_id": 5, "colour": 1}', ["colour", "user_id"]),
        (b'{"instances": []}', ["instances"]),
        (b'{"instances": [{"features": {}}, 3], "x": 1}', ["x", "instances[1]"]),
        (b'{"features": {}, "request_id": "' + b"r" * 201 + b'"}', ["request_id"]),
    ],
)
def test_bad_predict_bodies_name_each_field(body: bytes, fields: list[str]) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_predict(body)
    assert [p.field for p in caught.value.problems] == fields


def test_invalid_json_is_its_own_error() -> None:
    with pytest.raises(InvalidJSONError):
        parse_predict(b'{"features": ')
    with pytest.raises(InvalidJSONError):
        parse_labels(b"\xff\xfe")


def test_labels_parse_numbers_booleans_and_times() -> None:
    labels = parse_labels(
        b'{"labels": [{"request_id": "r1", "label": 2.5, "time": "2026-03-01T10:00:00Z"},'
        b' {"request_id": "r2", "label": true, "time": 1772359200}, {"request_id": "r3", "label": 0}]}'
    )
    assert [(x.request_id, x.value) for x in labels] == [("r1", 2.5), ("r2", 1.0), ("r3", 0.0)]
    assert labels[0].time == labels[1].time and labels[0].time is not None
    assert labels[0].time.isoformat() == "2026-03-01T10:00:00+00:00"
    assert labels[2].time is None


def test_bad_labels_name_each_field() -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_labels(
            b'{"labels": [{"label": 1}, {"request_id": "r", "label": {"class": "high"}},'
            b' {"request_id": "r", "label": 1, "time": "yesterday", "x": 1}]}'
        )
    assert [p.field for p in caught.value.problems] == [
        "labels[0].request_id",
        "labels[1].label",
        "labels[2].x",
        "labels[2].time",
    ]
