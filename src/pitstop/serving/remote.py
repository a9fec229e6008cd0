"""A model served elsewhere, called with httpx in the protocol its server speaks (`remote_protocols`):
another pitstop gateway, an Open Inference Protocol server (KServe, MLServer, Triton, Seldon), KServe
V1 or an MLflow scoring server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from pitstop.errors import UsageError, mention
from pitstop.serving.batching import BatchedRunner, MicroBatcher, RowIds
from pitstop.serving.errors import RemoteModelError
from pitstop.serving.remote_protocols import Endpoint, Protocol, RemoteAnswerError

Row = dict[str, Any]
# Idle pooled connections are closed by us after this long, before a server's own keep-alive timeout
# (uvicorn 5 s, gunicorn 2 s) closes one just as we send on it: httpx's default is the same 5 s as
# uvicorn's, and that race fails the call with RemoteProtocolError ("Server disconnected").
KEEPALIVE_SECONDS = 1.0


class RemoteRunner(BatchedRunner):
    """Posts micro-batches to `url` in its endpoint's protocol (default: a pitstop gateway's predict,
    `{"instances": [{"features": …}, …]}`) and reads one number per row, after checking the answer is
    this call's (`Endpoint.read_answer`). Each call carries its rows' request ids as its protocol
    allows (`remote_protocols`); a row submitted without one (a warm-up call) gets a fresh id. Up to
    `concurrency` batches are in flight at once over one pooled client.
    """

    def __init__(
        self,
        url: str,
        *,
        version: int,
        endpoint: Endpoint | None = None,
        features: Sequence[str] = (),
        timeout: float = 10.0,
        headers: dict[str, str] | None = None,
        max_batch_size: int = 64,
        max_batch_wait: float = 0.002,
        patient_max_batch_size: int | None = None,
        concurrency: int = 8,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.endpoint = endpoint or Endpoint("pitstop", url)
        self.url = self.endpoint.predict_url()
        self.version = version
        self.features = list(features)
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(
            timeout=timeout,
            headers=headers,
            limits=httpx.Limits(
                max_connections=concurrency,
                max_keepalive_connections=concurrency,
                keepalive_expiry=KEEPALIVE_SECONDS,
            ),
        )
        self.batcher = MicroBatcher(
            self._run_batch,
            max_size=max_batch_size,
            max_wait=max_batch_wait,
            patient_max_size=patient_max_batch_size,
            concurrency=concurrency,
        )

    def cpu_time(self) -> None:
        """None: the model runs on another server; waiting for it is its latency."""
        return None

    def memory(self) -> None:
        """None: the model runs on another server, in memory of its own."""
        return None

    async def close(self) -> None:
        await self.batcher.close()
        if self._owns_client:
            await self._client.aclose()

    async def _run_batch(self, rows: list[Row], ids: RowIds) -> list[float]:
        call_ids = [rid or uuid.uuid4().hex for rid in ids]
        body = self.endpoint.request(rows, self.features, call_ids)
        try:
            response = await self._client.post(self.url, json=body, headers=self.endpoint.headers(call_ids))
        except httpx.HTTPError as error:
            raise RemoteModelError(f"{self.url}: {type(error).__name__}: {error}") from error
        return _predictions(self.endpoint, response, call_ids)


def _predictions(endpoint: Endpoint, response: httpx.Response, ids: list[str]) -> list[float]:
    url = endpoint.predict_url()
    if response.status_code != 200:
        raise RemoteModelError(f"{url} answered {response.status_code}: {response.text[:200]}")
    try:
        return endpoint.read_answer(response.json(), ids)
    except (ValueError, RemoteAnswerError) as error:
        raise RemoteModelError(f"{url}: unexpected answer ({error})") from error


class RemoteModel:
    """A registrable stand-in for a model served elsewhere: `joblib.dump` it and register it as a version.

    The gateway serves such a version with a `RemoteRunner` (async, micro-batched). Offline tools that
    call `predict` / `predict_proba` directly (the offline gate) reach the same URL synchronously.

    An `oip` model is sent one input per feature (MLServer's `pd` content type), or with
    `tensor_input` one tensor `[rows, features]` of that name (a Triton model's input).

    The artifact keeps the URL and plain headers, never a credential: a header that carries one
    (`Authorization`, an API key, a token, a cookie) is named with the environment variable
    (`header_env`) or the file (`header_files`) that holds its value, read when a gateway loads the
    version and at each offline call; given as a value it is refused, since the artifact (and every
    copy of it) would hold it in plain text.
    """

    def __init__(
        self,
        url: str,
        *,
        protocol: Protocol = "pitstop",
        model_name: str | None = None,
        model_version: str | None = None,
        tensor_input: str | None = None,
        timeout: float = 10.0,
        headers: dict[str, str] | None = None,
        header_env: dict[str, str] | None = None,
        header_files: dict[str, str] | None = None,
    ) -> None:
        try:
            Endpoint(protocol, url, model_name, model_version, tensor_input)
        except ValueError as error:
            raise UsageError(str(error)) from None
        secret = [name for name in headers or {} if is_credential(name)]
        if secret:
            name = secret[0]
            example = mention("header_env", repr({name: "ETA_API_KEY"}))
            raise UsageError(
                f"header {name!r} would be saved in the model's artifact in plain text: name the "
                f"environment variable that holds it, e.g. {example}, or a file, {mention('header_files')}"
            )
        self.url, self.timeout, self.headers = url, timeout, dict(headers or {})
        self.protocol, self.model_name, self.model_version = protocol, model_name, model_version
        self.tensor_input = tensor_input
        self.header_env, self.header_files = dict(header_env or {}), dict(header_files or {})

    def call_headers(self) -> dict[str, str]:
        """The headers of a call: the plain ones, and each credential read now from its variable or file."""
        out = dict(self.headers)
        for name, variable in getattr(self, "header_env", {}).items():  # artifacts older than header_env
            value = os.environ.get(variable)
            if value is None:
                raise RemoteModelError(
                    f"{self.url}: environment variable {variable} (header {name}) is not set"
                )
            out[name] = value
        for name, file in getattr(self, "header_files", {}).items():
            try:
                out[name] = Path(file).read_text(encoding="utf-8").strip()
            except OSError as error:
                raise RemoteModelError(
                    f"{self.url}: header {name}'s file {file}: {error.strerror}"
                ) from error
        return out

    def endpoint(self) -> Endpoint:
        """Where and how it is called (artifacts older than `protocol` speak pitstop's predict)."""
        return Endpoint(
            getattr(self, "protocol", "pitstop"),
            self.url,
            getattr(self, "model_name", None),
            getattr(self, "model_version", None),
            getattr(self, "tensor_input", None),  # artifacts older than tensor_input
        )

    def check_ready(self, features: Sequence[str]) -> None:
        """Before the version is routed to: its server says the model is ready and (OIP) its metadata
        agrees with the version's features. RemoteModelError says what is wrong."""
        endpoint = self.endpoint()
        for url in endpoint.readiness_urls():
            try:
                response = httpx.get(url, timeout=self.timeout, headers=self.call_headers())
            except httpx.HTTPError as error:
                raise RemoteModelError(f"{url}: {type(error).__name__}: {error}") from error
            if response.status_code != 200:
                raise RemoteModelError(f"{url} answered {response.status_code}: not ready")
        if endpoint.protocol == "oip":
            problems = endpoint.metadata_problems(response.json(), features)
            if problems:
                raise RemoteModelError(
                    f"{url}: its metadata disagrees with this version: {'; '.join(problems)}"
                )

    def predict(self, frame: Any) -> Any:
        """Offline calls (the gate's): rows without request ids, so each gets a fresh one."""
        rows = frame.to_dict("records") if hasattr(frame, "to_dict") else [dict(r) for r in frame]
        if not rows:
            return np.empty(0, dtype=float)
        endpoint, ids = self.endpoint(), [uuid.uuid4().hex for _ in rows]
        body = endpoint.request(rows, list(rows[0]), ids)
        headers = {**self.call_headers(), **endpoint.headers(ids)}
        try:
            response = httpx.post(endpoint.predict_url(), json=body, timeout=self.timeout, headers=headers)
        except httpx.HTTPError as error:
            raise RemoteModelError(f"{self.url}: {type(error).__name__}: {error}") from error
        return np.asarray(_predictions(endpoint, response, ids), dtype=float)

    def predict_proba(self, frame: Any) -> Any:
        positive = self.predict(frame)
        return np.column_stack([1.0 - positive, positive])


CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key", "api-key"})


def is_credential(header: str) -> bool:
    """Whether a header's value is a secret: `Authorization`, `X-API-Key`, `X-Auth-Token`, a cookie.

    >>> [is_credential(h) for h in ("Authorization", "x-api-key", "X-Auth-Token", "Accept", "X-Tenant")]
    [True, True, True, False, False]
    """
    name = header.lower()
    return name in CREDENTIAL_HEADERS or any(word in name for word in ("token", "secret", "password", "key"))
