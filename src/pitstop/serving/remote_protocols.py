"""How a remote model is spoken to: the request a micro-batch becomes and the checks on its answer, per
protocol. Pure: the runner (`remote.py`) does the I/O.

- `pitstop`: another pitstop gateway's `POST /v1/models/{m}/predict` (`url` is that URL), each row
  with its request id, each answer's id checked;
- `oip`: the Open Inference Protocol (KServe V2: KServe, MLServer, Triton, Seldon Core 2, pitstop's
  own `/v2`): `POST {url}/v2/models/{name}[/versions/{v}]/infer`, one input per feature (MLServer's
  `pd` content type); the protocol's one `id` is the first row's request id, required back, and every
  row's id goes in `parameters.request_ids` (checked when the answer echoes them, as pitstop's does);
  the model name and version checked; with `tensor_input`, the rows go as one tensor
  `[rows, features]` of that name instead (a Triton model's input, MLServer's `np` content type);
- `kserve-v1`: `POST {url}/v1/models/{name}:predict` with `{"instances": [[…], …]}`, features in order;
- `mlflow`: an MLflow scoring server's `POST {url}/invocations` with `dataframe_split`.

A call of one row also carries its request id in the `X-Request-ID` header, whatever the protocol
(a batch has no one id to put there). Every answer must hold one number per row; a wrong count, id,
model name or version is an error of that call (the arm's failure, counted), never a prediction taken
from elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

Protocol = Literal["pitstop", "oip", "kserve-v1", "mlflow"]
PROTOCOLS: tuple[Protocol, ...] = ("pitstop", "oip", "kserve-v1", "mlflow")
REQUEST_ID_HEADER = "X-Request-ID"
OIP_OUTPUTS = ("predict", "prediction", "output", "output-0")  # read first, by name; else the only one
Row = dict[str, Any]


class RemoteAnswerError(ValueError):
    """The remote answered, but not for this call: wrong count, id, model or version, or not numbers."""


@dataclass(frozen=True)
class Endpoint:
    """Where and how a remote model is called."""

    protocol: Protocol
    url: str  # pitstop: the predict URL; the others: the server's base URL
    model_name: str | None = None  # oip, kserve-v1: the remote's name for the model (required)
    model_version: str | None = None  # oip: the version to call, and to require in every answer
    tensor_input: str | None = None  # oip: send one tensor [rows, features] of this name instead

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol {self.protocol!r}: one of {', '.join(PROTOCOLS)}")
        if self.protocol in ("oip", "kserve-v1") and not self.model_name:
            raise ValueError(f"a {self.protocol} endpoint needs the remote's model_name")
        if self.tensor_input is not None and (self.protocol != "oip" or not self.tensor_input):
            raise ValueError("tensor_input names an oip model's one input: a non-empty name, with oip")

    @property
    def _base(self) -> str:
        return self.url.rstrip("/")

    @property
    def _oip_model(self) -> str:
        version = f"/versions/{self.model_version}" if self.model_version else ""
        return f"{self._base}/v2/models/{self.model_name}{version}"

    def predict_url(self) -> str:
        return {
            "pitstop": self.url,
            "oip": f"{self._oip_model}/infer" if self.protocol == "oip" else "",
            "kserve-v1": f"{self._base}/v1/models/{self.model_name}:predict",
            "mlflow": f"{self._base}/invocations",
        }[self.protocol]

    def readiness_urls(self) -> list[str]:
        """What must answer 200 before the version is routed to (the metadata last, for `oip`)."""
        return {
            "pitstop": [],
            "oip": [f"{self._oip_model}/ready", self._oip_model],
            "kserve-v1": [f"{self._base}/v1/models/{self.model_name}"],
            "mlflow": [f"{self._base}/ping"],
        }[self.protocol]

    def request(self, rows: Sequence[Row], features: Sequence[str], ids: Sequence[str]) -> dict[str, Any]:
        """The body of one call for a micro-batch (rows in order, `ids` their request ids)."""
        names = list(features) or list(rows[0])
        if self.protocol == "pitstop":
            return {
                "instances": [
                    {"features": row, "request_id": rid} for row, rid in zip(rows, ids, strict=True)
                ]
            }
        if self.protocol == "kserve-v1":
            return {"instances": [[row[name] for name in names] for row in rows]}
        if self.protocol == "mlflow":
            return {"dataframe_split": {"columns": names, "data": [[row[n] for n in names] for row in rows]}}
        parameters: dict[str, Any] = {"request_ids": list(ids)}
        if self.tensor_input is not None:
            data = [[row[name] for name in names] for row in rows]
            kind = _datatype([value for row in data for value in row])
            inputs = [
                {"name": self.tensor_input, "shape": [len(rows), len(names)], "datatype": kind, "data": data}
            ]
            return {"id": ids[0], "parameters": parameters, "inputs": inputs}
        inputs = []
        for name in names:
            column = [row[name] for row in rows]
            inputs.append({"name": name, "shape": [len(rows)], "datatype": _datatype(column), "data": column})
        return {"id": ids[0], "parameters": {"content_type": "pd", **parameters}, "inputs": inputs}

    def headers(self, ids: Sequence[str]) -> dict[str, str]:
        """The headers of one call: a single row's request id in `X-Request-ID`."""
        return {REQUEST_ID_HEADER: ids[0]} if len(ids) == 1 else {}

    def read_answer(self, answer: Any, ids: Sequence[str]) -> list[float]:
        """One number per row from an answer, after checking it answers this call (`ids`: its rows')."""
        if not isinstance(answer, dict):
            raise RemoteAnswerError("the answer is not a JSON object")
        values = self._oip_values(answer, ids) if self.protocol == "oip" else answer.get("predictions")
        if not isinstance(values, list):
            raise RemoteAnswerError("the answer has no predictions list")
        numbers = [_number(item) for item in values]
        if len(numbers) != len(ids):
            raise RemoteAnswerError(f"{len(numbers)} predictions for {len(ids)} rows")
        if self.protocol == "pitstop":
            _same_ids([v.get("request_id") if isinstance(v, dict) else None for v in values], ids)
        return numbers

    def _oip_values(self, answer: dict[str, Any], ids: Sequence[str]) -> Any:
        if answer.get("id") != ids[0]:
            raise RemoteAnswerError(f"the answer's id {answer.get('id')!r} is not this call's {ids[0]!r}")
        parameters = answer.get("parameters")
        if isinstance(parameters, dict) and "request_ids" in parameters:
            echoed = parameters["request_ids"]
            if not isinstance(echoed, list) or len(echoed) != len(ids):
                raise RemoteAnswerError(f"its parameters.request_ids are not one per row: {str(echoed)[:80]}")
            _same_ids(echoed, ids)
        if answer.get("model_name") != self.model_name:
            raise RemoteAnswerError(
                f"answered by model {answer.get('model_name')!r}, not {self.model_name!r}"
            )
        if self.model_version is not None and str(answer.get("model_version")) != self.model_version:
            said = answer.get("model_version")
            raise RemoteAnswerError(f"answered by version {said!r}, not {self.model_version!r}")
        outputs = answer.get("outputs")
        if not isinstance(outputs, list) or not outputs or not all(isinstance(o, dict) for o in outputs):
            raise RemoteAnswerError("the answer has no outputs")
        named = {o.get("name"): o for o in outputs}
        chosen = next(
            (named[n] for n in OIP_OUTPUTS if n in named), outputs[0] if len(outputs) == 1 else None
        )
        if chosen is None:
            raise RemoteAnswerError(f"which output is the prediction? got {sorted(map(str, named))}")
        return _flat(chosen.get("data"))

    def metadata_problems(self, metadata: Any, features: Sequence[str]) -> list[str]:
        """What in an OIP model's metadata disagrees with the version's features (empty: agrees). A
        server that lists no inputs (MLServer without a model-settings signature) or no versions
        (MLServer, whatever version it serves) says nothing of them."""
        if not isinstance(metadata, dict):
            return ["the metadata is not a JSON object"]
        problems = []
        if metadata.get("name") not in (None, self.model_name):
            problems.append(f"it describes model {metadata.get('name')!r}, not {self.model_name!r}")
        versions = metadata.get("versions")
        if (
            self.model_version
            and isinstance(versions, list)
            and versions
            and self.model_version not in map(str, versions)
        ):
            problems.append(f"it serves versions {versions}, not {self.model_version!r}")
        inputs = metadata.get("inputs") or []
        names = {i.get("name") for i in inputs if isinstance(i, dict)}
        if self.tensor_input is not None:
            if names and self.tensor_input not in names:
                problems.append(
                    f"it has no input {self.tensor_input!r} (it has {', '.join(map(str, names))})"
                )
            return problems
        one_tensor = (
            len(inputs) == 1 and isinstance(inputs[0], dict) and inputs[0].get("name") not in features
        )
        if names and not one_tensor and (missing := [f for f in features if f not in names]):
            problems.append(f"its inputs lack the features {', '.join(missing)}")
        return problems


def _same_ids(echoed: Sequence[Any], ids: Sequence[str]) -> None:
    """Each echoed request id (None: not echoed) is its row's."""
    for row, (said, rid) in enumerate(zip(echoed, ids, strict=True)):
        if said is not None and said != rid:
            raise RemoteAnswerError(f"row {row} answers request {said!r}, not {rid!r}")


def _datatype(column: list[Any]) -> str:
    if all(isinstance(v, bool) for v in column):
        return "BOOL"
    if any(isinstance(v, str) for v in column):
        return "BYTES"
    return "FP64"


def _flat(data: Any) -> Any:
    """Row-major data, nested or flat, as one flat list ([[1.5], [2.0]] -> [1.5, 2.0])."""
    if not isinstance(data, list):
        return data
    out: list[Any] = []
    for item in data:
        out.extend(_flat(item) if isinstance(item, list) else [item])
    return out


def _number(item: Any) -> float:
    value = item["prediction"] if isinstance(item, dict) and "prediction" in item else item
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RemoteAnswerError(f"a prediction is not a number: {str(value)[:80]}")
    return float(value)
