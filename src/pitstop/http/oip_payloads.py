"""The Open Inference Protocol (KServe V2) in pitstop's terms: an inference request read into
instances, a result written as the protocol's answer, a model's metadata from its input signature.

Two shapes of request are read (what MLServer's `pd` content type and a tensor server send):

- **one input per feature**: each input named as a feature, shape `[n]` or `[n, 1]`, so row `i` is
  the `i`-th value of every input;
- **one tensor** `[n, n_features]` of numbers (any name that is not a feature's), columns in the
  model's feature order (`GET /v2/models/{m}` lists them).

`data` may be flat (row-major) or nested. The request's `id` is the request id (row `i` of a batch of
`n > 1` gets `{id}-{i}`), so labels join on it, unless `parameters.request_ids` gives one per row (as
pitstop's remote runner sends a micro-batch of several requests); the user for the sticky split comes from
`parameters.user_id` or a header (`serving.user_id_header`). Pure: no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, TypeGuard

from pitstop.serving.errors import FieldProblem, InvalidInputError
from pitstop.serving.features import FeatureSchema, Kind
from pitstop.serving.gateway import Instance, PredictionResult

DATATYPES: dict[Kind, str] = {"float": "FP64", "int": "INT64", "bool": "BOOL", "str": "BYTES", "any": "BYTES"}
NUMBER_TYPES = frozenset(
    {"FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
)
KNOWN_TYPES = NUMBER_TYPES | {"BOOL", "BYTES"}
OUTPUT = "prediction"  # the one output: pitstop's prediction, as `/v1/models/{m}/predict` answers it
MAX_ID_CHARS = 200


@dataclass(frozen=True)
class Inference:
    """An inference request, read: the rows as instances, the caller's id (None: one per row is made)."""

    instances: list[Instance]
    request_id: str | None


@dataclass(frozen=True)
class _Input:
    name: str
    datatype: str
    shape: list[int]
    values: list[Any]  # flattened, row-major


def read_inference(data: Any, schema: FeatureSchema, header_user: str | None) -> Inference:
    """The instances of an OIP inference request body (already JSON-decoded); every bad field named
    (`inputs[1].shape`), as InvalidInputError."""
    if not isinstance(data, dict):
        raise InvalidInputError([FieldProblem("body", "must be an inference request object with inputs")])
    request_id = _request_id(data.get("id"))
    user = _user(data.get("parameters"), header_user)
    raw = data.get("inputs")
    if not isinstance(raw, list) or not raw:
        raise InvalidInputError([FieldProblem("inputs", "must be a non-empty list of input tensors")])
    inputs = [_input(item, f"inputs[{i}]") for i, item in enumerate(raw)]
    rows = (
        _tensor_rows(inputs[0], schema) if len(inputs) == 1 and inputs[0].name not in schema.names else None
    )
    if rows is None:
        rows = _column_rows(inputs, schema)
    given = _row_ids(data.get("parameters"), len(rows))
    if given is not None:
        ids: list[str | None] = list(given)
    elif request_id is None:
        ids = [None] * len(rows)
    elif len(rows) == 1:
        ids = [request_id]
    else:
        ids = [f"{request_id}-{i}" for i in range(len(rows))]
    return Inference([Instance(row, user, rid) for row, rid in zip(rows, ids, strict=True)], request_id)


def _request_id(value: Any) -> str | None:
    if value is None:
        return None
    if not _valid_id(value):
        raise InvalidInputError([FieldProblem("id", f"must be a string of 1 to {MAX_ID_CHARS} characters")])
    return value


def _row_ids(parameters: Any, rows: int) -> list[str] | None:
    """`parameters.request_ids`, one per row, when given (`_user` has checked `parameters`)."""
    if not isinstance(parameters, dict) or parameters.get("request_ids") is None:
        return None
    ids = parameters["request_ids"]
    if not (isinstance(ids, list) and len(ids) == rows and all(_valid_id(i) for i in ids)):
        problem = f"must be a list of {rows} strings (one per row) of 1 to {MAX_ID_CHARS} characters"
        raise InvalidInputError([FieldProblem("parameters.request_ids", problem)])
    if len(set(ids)) != rows:
        raise InvalidInputError([FieldProblem("parameters.request_ids", "must not repeat an id")])
    return ids


def _valid_id(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and 0 < len(value) <= MAX_ID_CHARS


def _user(parameters: Any, header_user: str | None) -> str | None:
    if parameters is None:
        return header_user
    if not isinstance(parameters, dict):
        raise InvalidInputError([FieldProblem("parameters", "must be an object")])
    user = parameters.get("user_id", header_user)
    if user is not None and not isinstance(user, str | int):
        raise InvalidInputError([FieldProblem("parameters.user_id", "must be a string")])
    return None if user is None else str(user)


def _input(item: Any, where: str) -> _Input:
    if not isinstance(item, dict):
        raise InvalidInputError(
            [FieldProblem(where, "must be an object with name, shape, datatype and data")]
        )
    problems = []
    name, datatype, shape = item.get("name"), item.get("datatype"), item.get("shape")
    if not isinstance(name, str) or not name:
        problems.append(FieldProblem(f"{where}.name", "must be a non-empty string"))
    if not isinstance(datatype, str) or datatype not in KNOWN_TYPES:  # a set: an object is unhashable
        known = ", ".join(sorted(KNOWN_TYPES))
        problems.append(FieldProblem(f"{where}.datatype", f"must be one of {known}"))
    if not (isinstance(shape, list) and shape and all(_whole(s) and s >= 0 for s in shape)):
        problems.append(FieldProblem(f"{where}.shape", "must be a list of non-negative integers"))
    if "data" not in item:
        problems.append(FieldProblem(f"{where}.data", "is required"))
    if problems:
        raise InvalidInputError(problems)
    sizes: list[int] = [int(s) for s in shape or ()]  # checked above, as are name and datatype
    values, size = _flatten(item["data"]), math.prod(sizes)
    if len(values) != size:
        problem = f"holds {len(values)} values, shape {sizes} needs {size}"
        raise InvalidInputError([FieldProblem(f"{where}.data", problem)])
    return _Input(str(name), str(datatype), sizes, [_value(v, str(datatype)) for v in values])


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    out: list[Any] = []
    for item in data:
        out.extend(_flatten(item))
    return out


def _value(value: Any, datatype: str) -> Any:
    """A value as the feature schema checks it: BOOL 0/1 as booleans; others as sent."""
    if datatype == "BOOL" and value in (0, 1) and not isinstance(value, float):
        return bool(value)
    return value


def _tensor_rows(tensor: _Input, schema: FeatureSchema) -> list[dict[str, Any]]:
    width = len(schema.names)
    if len(tensor.shape) != 2 or tensor.shape[1] != width:
        problem = (
            f"a single tensor must have shape [rows, {width}] (one column per feature, in the order "
            f"GET /v2/models/… lists them), or name each input after a feature; got {tensor.shape}"
        )
        raise InvalidInputError([FieldProblem("inputs[0].shape", problem)])
    if tensor.datatype not in NUMBER_TYPES:
        raise InvalidInputError(
            [FieldProblem("inputs[0].datatype", "a tensor of all features must be numeric")]
        )
    values = tensor.values
    return [
        dict(zip(schema.names, values[r * width : (r + 1) * width], strict=True))
        for r in range(tensor.shape[0])
    ]


def _column_rows(inputs: list[_Input], schema: FeatureSchema) -> list[dict[str, Any]]:
    problems = []
    by_name: dict[str, _Input] = {}
    for i, tensor in enumerate(inputs):
        if tensor.name not in schema.names:
            problems.append(
                FieldProblem(f"inputs[{i}].name", f"{tensor.name!r} is not a feature of this model")
            )
        elif tensor.name in by_name:
            problems.append(FieldProblem(f"inputs[{i}].name", f"{tensor.name!r} is given twice"))
        elif len(tensor.shape) > 2 or (len(tensor.shape) == 2 and tensor.shape[1] != 1):
            problems.append(
                FieldProblem(f"inputs[{i}].shape", "a feature's input must have shape [rows] or [rows, 1]")
            )
        else:
            by_name[tensor.name] = tensor
    missing = [name for name in schema.names if name not in by_name]
    if missing and not problems:
        problems.append(FieldProblem("inputs", f"missing features: {', '.join(missing)}"))
    counts = {len(t.values) for t in by_name.values()}
    if len(counts) > 1 and not problems:
        problems.append(FieldProblem("inputs", "every feature's input must hold the same number of rows"))
    if problems:
        raise InvalidInputError(problems)
    rows = counts.pop()
    return [{name: by_name[name].values[r] for name in schema.names} for r in range(rows)]


def inference_answer(model: str, inference: Inference, results: list[PredictionResult]) -> dict[str, Any]:
    """The protocol's inference response: one FP64 output `prediction` of shape [rows]; the version
    that served (when one served every row), and each row's request id and version in `parameters`."""
    versions = sorted({r.model_version for r in results})
    answer: dict[str, Any] = {
        "model_name": model,
        "id": inference.request_id or results[0].request_id,
        "parameters": {
            "request_ids": [r.request_id for r in results],
            "model_versions": [r.model_version for r in results],
        },
        "outputs": [
            {
                "name": OUTPUT,
                "datatype": "FP64",
                "shape": [len(results)],
                "data": [r.prediction for r in results],
            }
        ],
    }
    if len(versions) == 1:
        answer["model_version"] = str(versions[0])
    return answer


def model_metadata(model: str, versions: list[int], schema: FeatureSchema) -> dict[str, Any]:
    """`GET /v2/models/{m}`: the versions this gateway serves it with, one input per feature (name,
    datatype from the version's input signature, shape [-1]) and the one output."""
    return {
        "name": model,
        "versions": [str(v) for v in versions],
        "platform": "pitstop",
        "inputs": [
            {"name": name, "datatype": DATATYPES[kind], "shape": [-1]}
            for name, kind in zip(schema.names, schema.kinds, strict=True)
        ],
        "outputs": [{"name": OUTPUT, "datatype": "FP64", "shape": [-1]}],
        "parameters": {"content_type": "pd"},
    }
