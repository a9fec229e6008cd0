"""HTTP bodies: parsing requests into the gateway's values, and their schemas for `/openapi.json`.

Parsing is by hand rather than through FastAPI's body validation: invalid JSON must be a 400 (not
a 422), every bad field must be named, and the predict path is hot. The pydantic models below
document the bodies; the limits both use are the constants here (`TEXT_PATTERN`, `MAX_ID_LENGTH`,
the label time range), so the schema states what the parser accepts, and a test checks they agree.

Every text that can reach the store is refused at the edge when the store could not hold it: control
characters (NUL above all: PostgreSQL refuses it in text), lone surrogates (not encodable as UTF-8),
or more characters than its column.
"""

from __future__ import annotations

import json
import math
import re
import sys
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema

from pitstop.serving.errors import FieldProblem, InvalidInputError, InvalidJSONError
from pitstop.serving.features import FeatureSchema, Kind
from pitstop.serving.gateway import Instance
from pitstop.serving.labels import Label

MAX_ID_LENGTH = 200  # predictions.request_id, predictions.user_id, labels.request_id, events.actor
# No C0 or C1 control character (NUL, escape sequences, line breaks): one pattern for the schema and
# the parser, written so Python's `re`, ECMA and pydantic's Rust engine read it alike. A lone
# surrogate (not encodable as UTF-8) is refused too, though no pattern can say so in every engine:
# pydantic refuses it as an invalid string, the hand parser by encoding.
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
_INSTANCE_KEYS = frozenset({"features", "user_id", "request_id"})


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
    """The instances of a predict body, and whether it was a batch (`{"instances": […]}`)."""
    data = load_json(body)
    if not isinstance(data, dict):
        raise InvalidInputError([FieldProblem("body", "must be an object with features (or instances)")])
    problems: list[FieldProblem] = []
    if "instances" not in data:
        instance = _instance(data, "", problems)
        if problems:
            raise InvalidInputError(problems)
        return [instance], False
    problems.extend(
        FieldProblem(key, "unknown field next to instances") for key in data if key != "instances"
    )
    items = data["instances"]
    if not isinstance(items, list) or not items:
        raise InvalidInputError([*problems, FieldProblem("instances", "must be a non-empty list")])
    instances = [_instance(item, f"instances[{i}].", problems) for i, item in enumerate(items)]
    problems.extend(_repeated_request_ids(instances))
    if problems:
        raise InvalidInputError(problems)
    return instances, True


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


def _instance(item: Any, prefix: str, problems: list[FieldProblem]) -> Instance:
    if not isinstance(item, dict):
        problems.append(FieldProblem(prefix.rstrip(".") or "body", "must be an object with features"))
        return Instance({})
    unknown = item.keys() - _INSTANCE_KEYS
    problems.extend(
        FieldProblem(f"{prefix}{key}", "unknown field (expected features, user_id, request_id)")
        for key in sorted(unknown)
    )
    features = item.get("features")
    if features is None:
        problems.append(FieldProblem(f"{prefix}features", "missing"))
    elif not isinstance(features, dict):
        problems.append(
            FieldProblem(f"{prefix}features", "must be an object mapping feature names to values")
        )
    return Instance(
        features if isinstance(features, dict) else {},
        _identifier(item.get("user_id"), f"{prefix}user_id", problems),
        _identifier(item.get("request_id"), f"{prefix}request_id", problems),
    )


def _identifier(value: Any, field: str, problems: list[FieldProblem]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        problems.append(FieldProblem(field, "must be a non-empty string"))
        return None
    if problem := text_problem(value, MAX_ID_LENGTH):
        problems.append(FieldProblem(field, problem))
        return None
    return value


def parse_labels(body: bytes) -> list[Label]:
    """The labels of `{"labels": [{"request_id", "label", "time"?}, …]}`; every bad field named."""
    data = load_json(body)
    if not isinstance(data, dict) or not isinstance(data.get("labels"), list) or not data["labels"]:
        raise InvalidInputError(
            [FieldProblem("labels", "must be a non-empty list of {request_id, label, time?}")]
        )
    problems: list[FieldProblem] = []
    problems.extend(FieldProblem(key, "unknown field next to labels") for key in data if key != "labels")
    found = [_label(item, f"labels[{i}]", problems) for i, item in enumerate(data["labels"])]
    if problems:
        raise InvalidInputError(problems)
    return [label for label in found if label is not None]


def _label(item: Any, where: str, problems: list[FieldProblem]) -> Label | None:
    if not isinstance(item, dict):
        problems.append(FieldProblem(where, "must be an object {request_id, label, time?}"))
        return None
    before = len(problems)
    problems.extend(
        FieldProblem(f"{where}.{key}", "unknown field (expected request_id, label, time)")
        for key in sorted(item.keys() - {"request_id", "label", "time"})
    )
    request_id = item.get("request_id")
    if request_id is None:
        problems.append(FieldProblem(f"{where}.request_id", "missing"))
    else:
        request_id = _identifier(request_id, f"{where}.request_id", problems)
    value = _label_value(item.get("label"), f"{where}.label", problems)
    time = _label_time(item.get("time"), f"{where}.time", problems)
    if len(problems) > before or request_id is None or value is None:
        return None
    return Label(request_id, value, time)


def _label_value(value: Any, field: str, problems: list[FieldProblem]) -> float | str | None:
    """A number, true/false, or (a multiclass model's class) a string; the model checks it later."""
    if value is None:
        problems.append(FieldProblem(field, "missing"))
        return None
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, str):
        if problem := text_problem(value, MAX_ID_LENGTH):
            problems.append(FieldProblem(field, problem))
            return None
        return value
    finite = isinstance(value, float) and math.isfinite(value)
    if finite or (isinstance(value, int) and abs(value) <= _FLOAT_MAX):
        return float(value)
    problems.append(FieldProblem(field, f"expected a finite number (or true/false), got {_shown(value)}"))
    return None


def _label_time(value: Any, field: str, problems: list[FieldProblem]) -> datetime | None:
    if value is None:
        return None
    moment = _moment(value)
    if moment is not None:
        return moment
    problems.append(
        FieldProblem(
            field, f"expected an ISO 8601 time or epoch seconds from 1970 to 9998, got {_shown(value)}"
        )
    )
    return None


def _moment(value: Any) -> datetime | None:
    """`value` as a UTC time, or None when it is none or beyond what a datetime holds."""
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not MIN_TIME <= value < MAX_TIME:  # also NaN; and fromtimestamp(1e20) overflows
                return None
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, str) and _TIME.match(value):
            moment = datetime.fromisoformat(value)
            return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError, OSError):  # year 1 at +01:00 is year 0 in UTC: OverflowError
        pass
    return None


def _shown(value: Any, limit: int = 40) -> str:
    """A short, printable picture of a refused value (a 401-digit number is not echoed whole)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    text = ascii(value)
    return text if len(text) <= limit else f"{text[:limit]}..."


# -- schemas for /openapi.json --------------------------------------------------------------------

Scalar = float | int | str | bool
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_LENGTH, pattern=TEXT_PATTERN)]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=MAX_REASON_LENGTH, pattern=REASON_PATTERN)]
STRICT = ConfigDict(extra="forbid")


class PredictRequest(BaseModel):
    """One instance. Without user_id the request is bucketed by request_id (not sticky)."""

    model_config = STRICT
    features: dict[str, Scalar] = Field(
        min_length=1, description="every feature of the model, by name; no others"
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


class LabelIn(BaseModel):
    model_config = STRICT
    request_id: Identifier
    label: (
        Annotated[float, Field(ge=-_FLOAT_MAX, le=_FLOAT_MAX)]
        | bool
        | Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH)]
    ) = Field(
        description="the observed outcome: a number (1/0 or true/false for a binary classifier), or a "
        "multiclass model's class"
    )
    time: (
        Annotated[
            datetime, WithJsonSchema({"type": "string", "format": "date-time", "pattern": TIME_PATTERN})
        ]
        | Annotated[float, Field(ge=MIN_TIME, lt=MAX_TIME)]
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


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    ready: bool
    models: list[str]
    reasons: list[str]


REQUEST_MODELS: tuple[type[BaseModel], ...] = (PredictRequest, BatchPredictRequest, LabelsRequest)
