"""HTTP bodies: parsing requests into the gateway's values, and their schemas for `/openapi.json`.

The pydantic models below are the one definition of every body: `/openapi.json` publishes their
schema and the same models validate each request; `tests/http/test_schema_agreement.py` checks that
what each endpoint accepts is exactly what the published schema allows. Predict and labels bodies are
read with `load_json` first (invalid JSON is a 400, not a 422, and the body's size is limited as it
is read; a valid one-instance predict body skips it, `parse_predict`), and pydantic's errors are
worded here, one problem per field (`_problems`). A predict
body's `features` values are each served model's to check (`FeatureSchema.problems`), and its
published schema is narrowed to the served models' features (`features_schema`).

There is no hand parser: `bench/body_parsing.py` measured the one this replaced against pydantic on
the predict path, and pydantic was as fast for one instance and faster for a batch.

Every text that can reach the store is refused at the edge when the store could not hold it: control
characters (NUL above all: PostgreSQL refuses it in text), lone surrogates (not encodable as UTF-8),
or more characters than its column.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
)

from pitstop.serving.errors import FieldProblem, InvalidInputError, InvalidJSONError
from pitstop.serving.features import FeatureSchema, Kind
from pitstop.serving.gateway import Instance
from pitstop.serving.labels import Label

MAX_ID_LENGTH = 200  # predictions.request_id, predictions.user_id, labels.request_id, events.actor
# No C0 or C1 control character (NUL, escape sequences, line breaks): one pattern for the schema and
# the parser, written so Python's `re`, ECMA and pydantic's Rust engine read it alike. A lone
# surrogate (not encodable as UTF-8) is refused too, though no pattern can say so in every engine:
# `Identifier` refuses it by encoding (`_encodable`), and a key holding one is an unknown field.
_CONTROL = r"\x00-\x1f\x7f-\x9f"
TEXT_PATTERN = f"^[^{_CONTROL}]*$"
_TEXT = re.compile(TEXT_PATTERN)
TEXT_PROBLEM = "must not contain control characters or lone surrogates"
# A reason (events.reason, rollouts.reason: text) has a bound of its own, and some visible character:
# leading spaces, then one character that is neither space nor control. Spelt out rather than `\s`,
# which means more in ECMA than in Python; and linear to match, whatever the input.
MAX_REASON_LENGTH = 2000
_SPACE = r" \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
REASON_PATTERN = f"^[{_SPACE}]*[^{_SPACE}{_CONTROL}][^{_CONTROL}]*$"
# A label's event time lies in the years 1970 to 9998: as epoch seconds, or as an ISO 8601 text whose
# year says so (whatever its offset, it is then a time a datetime holds; year 1 at +01:00 is not).
MIN_TIME = 0.0
MAX_TIME = datetime(9999, 1, 1, tzinfo=UTC).timestamp()
TIME_PATTERN = "^(19[7-9][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-"
_TIME = re.compile(TIME_PATTERN)
_FLOAT_MAX = sys.float_info.max


def load_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidJSONError(f"body is not valid JSON: {error}") from None
    except RecursionError:
        raise InvalidJSONError("body is not valid JSON: nested too deeply") from None


def text_problem(value: str, max_length: int) -> str | None:
    """Why `value` cannot be stored as a text of at most `max_length` characters, or None."""
    if len(value) > max_length:
        return f"must be at most {max_length} characters"
    if not _TEXT.match(value):
        return TEXT_PROBLEM
    try:
        value.encode()
    except UnicodeEncodeError:
        return TEXT_PROBLEM
    return None


def parse_predict(body: bytes) -> tuple[list[Instance], bool]:
    """The instances of a predict body, and whether it was a batch (`{"instances": […]}`), validated by
    `PredictRequest` or `BatchPredictRequest`; every bad field named. The features' values are each
    served model's to check (`FeatureSchema.problems`), as its published schema says.

    A body that is one valid instance, as nearly every one is, is parsed and validated in one step by
    pydantic's own JSON parser (less than half the CPU of `json.loads` and then validating); any
    other body, a batch, a refused one or one that parser will not read (a lone surrogate, a BOM),
    takes the path that words every problem (`json.loads` first).
    """
    try:
        item = PredictRequest.model_validate_json(body)
    except ValidationError:
        return _parse_predict_fully(body)
    return [Instance(item.features, item.user_id, item.request_id)], False


def _parse_predict_fully(body: bytes) -> tuple[list[Instance], bool]:
    data = load_json(body)
    if not isinstance(data, dict):
        raise InvalidInputError([FieldProblem("body", "must be an object with features (or instances)")])
    batch = "instances" in data
    try:
        if batch:
            items = BatchPredictRequest.model_validate(data).instances
        else:
            items = [PredictRequest.model_validate(data)]
    except ValidationError as error:
        raise InvalidInputError(_problems(error, _BATCH_WORDS if batch else _PREDICT_WORDS)) from None
    instances = [Instance(item.features, item.user_id, item.request_id) for item in items]
    if problems := _repeated_request_ids(instances):
        raise InvalidInputError(problems)
    return instances, batch


def _repeated_request_ids(instances: list[Instance]) -> list[FieldProblem]:
    """A request id names one prediction (labels join on it): the same id twice in a call is refused."""
    first: dict[str, int] = {}
    problems = []
    for i, instance in enumerate(instances):
        if instance.request_id is None:
            continue
        earlier = first.setdefault(instance.request_id, i)
        if earlier != i:
            problems.append(
                FieldProblem(f"instances[{i}].request_id", f"repeats instances[{earlier}].request_id")
            )
    return problems


def parse_labels(body: bytes) -> list[Label]:
    """The labels of `{"labels": [{"request_id", "label", "time"?}, …]}`, validated by `LabelsRequest`
    (the schema `/openapi.json` publishes); every bad field named."""
    data = load_json(body)
    try:
        request = LabelsRequest.model_validate(data)
    except ValidationError as error:
        raise InvalidInputError(_problems(error, _LABEL_WORDS)) from None
    return [
        Label(item.request_id, _label_value(item.label), _label_time(item.time)) for item in request.labels
    ]


def _label_value(value: float | bool | str) -> float | str:
    """true/false is a binary classifier's 1/0; a number or a multiclass model's class as it is."""
    return (1.0 if value else 0.0) if isinstance(value, bool) else value


def _label_time(value: datetime | float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if isinstance(value, float) else value


@dataclass(frozen=True)
class _Words:
    """How one body's problems are worded: its list (`labels`, `instances`), an item's fields, and
    what a refused value of each non-text field should have been."""

    items: str
    fields: tuple[str, ...]
    expected: dict[str, str]
    top: tuple[str, ...] = ()  # the fields of a lone (not batched) item at the top level


_LABEL_WORDS = _Words(
    "labels",
    ("request_id", "label", "time"),
    {
        "label": "expected a finite number (or true/false)",
        "time": "expected an ISO 8601 time or epoch seconds from 1970 to 9998",
    },
)
_BATCH_WORDS = _Words(
    "instances",
    ("features", "user_id", "request_id"),
    {"features": "must be an object mapping feature names to values"},
)
_PREDICT_WORDS = replace(_BATCH_WORDS, top=_BATCH_WORDS.fields)


def _problems(error: ValidationError, words: _Words) -> list[FieldProblem]:
    """pydantic's errors as the gateway words them: one problem per field (a union's branches all
    fail on one value), named as `labels[0].time`; unknown fields first, then in the body's order."""
    problems: dict[tuple[int, int, int, str], str] = {}
    listed = f"{{{', '.join(words.fields)}?}}"
    for item in error.errors():
        loc, kind = item["loc"], item["type"]
        if kind == "string_unicode" and len(loc) in (0, 2):  # a key no UTF-8 can hold: no field's name
            loc, kind = (*loc, item["input"]), "extra_forbidden"
        if words.top and loc and loc[0] in words.top:  # a lone item's own field
            name = str(loc[0])
            rank = 0 if kind == "extra_forbidden" else 1 + words.fields.index(name)
            problems.setdefault((0, 0, rank, name), _problem(words, name, kind, item["input"]))
        elif len(loc) == 1 and kind == "extra_forbidden":
            unknown = _problem(words, "", kind, None) if words.top else f"unknown field next to {words.items}"
            problems.setdefault((0, 0, 0, str(loc[0])), unknown)
        elif len(loc) < 2 or loc[0] != words.items:
            problems.setdefault((0, 0, 9, words.items), f"must be a non-empty list of {listed}")
        elif len(loc) == 2:
            where = f"{words.items}[{loc[1]}]"
            problems.setdefault((1, int(loc[1]), 0, where), f"must be an object {listed}")
        else:
            name, field = str(loc[2]), f"{words.items}[{loc[1]}].{loc[2]}"
            rank = 0 if kind == "extra_forbidden" else 1 + words.fields.index(name)
            problems.setdefault((1, int(loc[1]), rank, field), _problem(words, name, kind, item["input"]))
    return [FieldProblem(key[3], problems[key]) for key in sorted(problems)]


def _problem(words: _Words, name: str, kind: str, value: Any) -> str:
    if kind == "extra_forbidden":
        return f"unknown field (expected {', '.join(words.fields)})"
    if kind == "missing":
        return "missing"
    if name not in words.expected or (name == "label" and isinstance(value, str)):
        return _text_problem(value)
    shown = "" if name == "features" else f", got {_shown(value)}"
    return f"{words.expected[name]}{shown}"


def _text_problem(value: Any) -> str:
    """What is wrong with a text field, in the words `text_problem` uses."""
    if not isinstance(value, str) or not value:
        return "must be a non-empty string"
    return text_problem(value, MAX_ID_LENGTH) or TEXT_PROBLEM


def _shown(value: Any, limit: int = 40) -> str:
    """A short, printable picture of a refused value (a 401-digit number is not echoed whole)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    text = ascii(value)
    return text if len(text) <= limit else f"{text[:limit]}..."


# -- schemas for /openapi.json --------------------------------------------------------------------


def _encodable(value: str) -> str:
    """A lone surrogate passes every pattern; the store could not hold it."""
    value.encode()  # UnicodeEncodeError is a ValueError: pydantic reports it as the field's problem
    return value


Identifier = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_ID_LENGTH, pattern=TEXT_PATTERN),
    AfterValidator(_encodable),
]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=MAX_REASON_LENGTH, pattern=REASON_PATTERN)]
STRICT = ConfigDict(extra="forbid")


_ANY_FEATURES = {
    "type": "object",
    "additionalProperties": {"anyOf": [{"type": "number"}, {"type": "string"}, {"type": "boolean"}]},
    "minProperties": 1,
}


class PredictRequest(BaseModel):
    """One instance. Without user_id the request is bucketed by request_id (not sticky)."""

    model_config = STRICT
    # Its values are each served model's to check (`FeatureSchema.problems`); `/openapi.json` states
    # them per served model (`features_schema`), narrowing this generic form.
    features: Annotated[dict[str, Any], WithJsonSchema(_ANY_FEATURES)] = Field(
        description="every feature of the model, by name; no others"
    )
    user_id: Identifier | None = Field(
        None, description="sticky routing key: the same user always sees the same arm"
    )
    request_id: Identifier | None = Field(
        None, description="your id for joining labels later; generated when absent"
    )


_NUMBER = {"type": "number", "minimum": -_FLOAT_MAX, "maximum": _FLOAT_MAX}
_KIND_SCHEMAS: dict[Kind, dict[str, Any]] = {
    "float": _NUMBER,
    "int": {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1},
    "bool": {"type": "boolean"},
    "str": {"type": "string"},
    "any": {"anyOf": [_NUMBER, {"type": "string"}, {"type": "boolean"}]},
}


def features_schema(schema: FeatureSchema) -> dict[str, Any]:
    """The JSON schema of one served model's `features`: what `FeatureSchema.problems` accepts."""
    return {
        "type": "object",
        "properties": {
            name: dict(_KIND_SCHEMAS[kind]) for name, kind in zip(schema.names, schema.kinds, strict=True)
        },
        "required": list(schema.names),
        "additionalProperties": False,
    }


class BatchPredictRequest(BaseModel):
    model_config = STRICT
    instances: list[PredictRequest] = Field(min_length=1)


class Prediction(BaseModel):
    request_id: str
    model: str
    model_version: int
    prediction: float = Field(
        description="the prediction; for a binary classifier the positive-class probability, for a "
        "multiclass one the predicted class's index in `classes`"
    )
    # classifiers only (binary and multiclass): the predicted class and every class's probability
    predicted_class: int | float | str | None = Field(
        None, alias="class", description="a classifier's predicted class (the most probable)"
    )
    classes: list[int | float | str] | None = Field(None, description="a classifier's classes, in order")
    probabilities: list[float] | None = Field(
        None, description="each class's probability, in `classes` order"
    )


class BatchPrediction(BaseModel):
    predictions: list[Prediction]


def _iso_time(value: Any) -> Any:
    """Only a text is a time here (a number is epoch seconds, the other branch), and only from 1970
    to 9998, the years the schema's pattern states."""
    if not isinstance(value, str) or not _TIME.match(value):
        raise ValueError("expected an ISO 8601 time")
    return value


def _in_utc(moment: datetime) -> datetime:
    """The time in UTC (a naive one is UTC); year 1 at +01:00 is year 0 in UTC, which cannot be."""
    try:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("beyond the years a time can have") from None


class LabelIn(BaseModel):
    model_config = STRICT
    request_id: Identifier
    label: Annotated[float, Strict(), Field(ge=-_FLOAT_MAX, le=_FLOAT_MAX)] | bool | Identifier = Field(
        description="the observed outcome: a number (1/0 or true/false for a binary classifier), or a "
        "multiclass model's class"
    )
    time: (
        Annotated[
            datetime,
            BeforeValidator(_iso_time),
            AfterValidator(_in_utc),
            WithJsonSchema({"type": "string", "format": "date-time", "pattern": TIME_PATTERN}),
        ]
        | Annotated[float, Strict(), Field(ge=MIN_TIME, lt=MAX_TIME)]
        | None
    ) = Field(None, description="event time, ISO 8601 or epoch seconds, from 1970 to 9998; default now")


class LabelsRequest(BaseModel):
    model_config = STRICT
    labels: list[LabelIn] = Field(min_length=1)


class LabelsAccepted(BaseModel):
    accepted: int


class Routing(BaseModel):
    model: str
    version: int = Field(description="routing table version; 0 before any explicit routing")
    mode: str = Field(description="off | shadow | split")
    champion: int
    challenger: int | None
    challenger_share: float
    shadow: int | None
    standby: int | None
    salt: str | None = Field(None, description="the hash salt: only for a caller with the operator token")
    rollout_id: int | None
    step: int | None
    created_at: datetime


class Problem(BaseModel):
    field: str
    problem: str


class ErrorBody(BaseModel):
    error: str = Field(description="a stable code, e.g. invalid_input, model_not_served, prediction_failed")
    message: str
    fields: list[Problem] | None = None
    request_id: str | None = Field(
        None,
        description="prediction_failed: the (first) failed prediction's; internal_error: a fresh id, "
        "also in the X-Request-ID header, under which the gateway logged the traceback",
    )
    request_ids: list[str] | None = None
    field: str | None = Field(
        None, description="the request field a 4xx error is about, as a JSON pointer (RFC 6901), e.g. /reason"
    )
    hint: str | None = Field(None, description="how to fix it, when the error says")


def error_docs(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for error statuses: each answers an `ErrorBody`."""
    return {status: {"model": ErrorBody} for status in statuses}


class OipError(BaseModel):
    """An Open Inference Protocol error: one string, as the protocol says (`/v2/…`)."""

    error: str = Field(description="what is wrong, with each bad field (inputs[1].shape: …) and a hint")


def oip_error_docs(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the error statuses of an Open Inference Protocol endpoint (and 500)."""
    return {status: {"model": OipError} for status in (*statuses, 500)}


class OipReadiness(BaseModel):
    """`GET /v2/health/ready`: 200 when every model's champion can be served, 503 with the reasons."""

    ready: bool
    reasons: list[str]


class InferInputTensor(BaseModel):
    """One input of an Open Inference Protocol request: a feature's column, or every feature."""

    name: str = Field(description="a feature's name, or any other name for one tensor of all features")
    shape: list[Annotated[int, Field(ge=0)]] = Field(description="[rows] or [rows, 1]; [rows, features]")
    datatype: str = Field(description="FP64, FP32, INT64 … for numbers, BOOL, BYTES for strings")
    data: list[Any] = Field(description="the values, row-major, flat or nested")
    parameters: dict[str, Any] | None = None


class InferenceRequest(BaseModel):
    """`POST /v2/models/{m}/infer`: the Open Inference Protocol's request."""

    id: str | None = Field(
        None,
        description="the request id (row i of a batch: {id}-{i}, unless parameters.request_ids); labels "
        "join on it",
    )
    parameters: dict[str, Any] | None = Field(
        None,
        description="user_id: who asks, for the sticky split (else the serving.user_id_header header); "
        "request_ids: each row's request id, one per row, none repeated",
    )
    inputs: list[InferInputTensor] = Field(min_length=1)
    outputs: list[dict[str, Any]] | None = Field(None, description="ignored: the one output is prediction")


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    ready: bool
    status: str = Field(description="ok | degraded (serving; see `degraded`) | unavailable (503)")
    models: list[str]
    reasons: list[str] = Field(description="why a champion cannot be served (503)")
    degraded: list[str] = Field(
        description="what is wrong while every champion serves, e.g. the store unreachable, records spooled"
    )


REQUEST_MODELS: tuple[type[BaseModel], ...] = (
    PredictRequest,
    BatchPredictRequest,
    LabelsRequest,
    InferenceRequest,
)
