"""Exceptions of the serving gateway, named for the condition; `app.py` maps them to HTTP statuses."""

from __future__ import annotations

from dataclasses import dataclass

from pitstop.errors import NotFoundError, PitstopError, UsageError


@dataclass(frozen=True)
class FieldProblem:
    """One invalid field: where it is (`features.a`, `instances[2].user_id`) and what is wrong."""

    field: str
    problem: str

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "problem": self.problem}


class InvalidJSONError(UsageError):
    """The body is not valid JSON (HTTP 400)."""


class InvalidInputError(UsageError):
    """The body is JSON but breaks the schema; every bad field is named (HTTP 422)."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        self.problems = problems
        listed = "; ".join(f"{p.field}: {p.problem}" for p in problems[:10])
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        super().__init__(f"invalid input: {listed}{more}")


class IncompleteBodyError(UsageError):
    """The client hung up before sending its whole body (HTTP 400, which it will not read)."""

    def __init__(self, received: int) -> None:
        self.received = received
        super().__init__(f"the client disconnected after {received} bytes of its body")


class PayloadTooLargeError(UsageError):
    """The body exceeds `serving.max_body_bytes` (HTTP 413)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"request body exceeds {limit} bytes (serving.max_body_bytes)")


class ModelNotServedError(NotFoundError):
    """The model is unknown, or has no champion, so this gateway does not serve it (HTTP 404)."""

    def __init__(self, model: str, served: list[str]) -> None:
        self.model, self.served = model, served
        known = ", ".join(served) or "none"
        super().__init__(f"model {model!r} is not served here (served: {known})")


class PredictionFailedError(PitstopError):
    """The serving model raised or returned a non-finite value (HTTP 500, with the request ids)."""

    def __init__(self, model: str, version: int, request_ids: list[str], cause: str) -> None:
        self.model, self.version, self.request_ids, self.cause = model, version, request_ids, cause
        super().__init__(f"{model} version {version} failed: {cause}")


class RunnerClosedError(PitstopError):
    """A model runner was used after it was closed (a retired version)."""


class RemoteModelError(PitstopError):
    """A remote model could not be reached or answered with an error."""


class ModelProcessError(PitstopError):
    """An isolated model's child process died, or could not start (`isolation.py`)."""
