"""A model served elsewhere, behind a pitstop-compatible `POST …/predict` endpoint, called with httpx."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from pitstop.errors import UsageError, mention
from pitstop.serving.batching import BatchedRunner, MicroBatcher
from pitstop.serving.errors import RemoteModelError

Row = dict[str, Any]
# Idle pooled connections are closed by us after this long, before a server's own keep-alive timeout
# (uvicorn 5 s, gunicorn 2 s) closes one just as we send on it: httpx's default is the same 5 s as
# uvicorn's, and that race fails the call with RemoteProtocolError ("Server disconnected").
KEEPALIVE_SECONDS = 1.0


class RemoteRunner(BatchedRunner):
    """Posts micro-batches as `{"instances": [{"features": …}, …]}` and reads `{"predictions": […]}`.

    Each prediction may be a number or an object with a `prediction` field (a pitstop gateway's
    answer). Up to `concurrency` batches are in flight at once over one pooled client.
    """

    def __init__(
        self,
        url: str,
        *,
        version: int,
        timeout: float = 10.0,
        headers: dict[str, str] | None = None,
        max_batch_size: int = 64,
        max_batch_wait: float = 0.002,
        patient_max_batch_size: int | None = None,
        concurrency: int = 8,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = url
        self.version = version
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

    async def _run_batch(self, rows: list[Row]) -> list[float]:
        try:
            response = await self._client.post(self.url, json={"instances": [{"features": r} for r in rows]})
        except httpx.HTTPError as error:
            raise RemoteModelError(f"{self.url}: {type(error).__name__}: {error}") from error
        if response.status_code != 200:
            raise RemoteModelError(f"{self.url} answered {response.status_code}: {response.text[:200]}")
        try:
            return [_number(item) for item in response.json()["predictions"]]
        except (ValueError, KeyError, TypeError) as error:
            raise RemoteModelError(f"{self.url}: unexpected answer ({error})") from error


def _number(item: Any) -> float:
    value = item["prediction"] if isinstance(item, dict) else item
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"prediction is not a number: {value!r}")
    return float(value)


class RemoteModel:
    """A registrable stand-in for a model served elsewhere: `joblib.dump` it and register it as a version.

    The gateway serves such a version with a `RemoteRunner` (async, micro-batched). Offline tools that
    call `predict` / `predict_proba` directly (the offline gate) reach the same URL synchronously.

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
        timeout: float = 10.0,
        headers: dict[str, str] | None = None,
        header_env: dict[str, str] | None = None,
        header_files: dict[str, str] | None = None,
    ) -> None:
        secret = [name for name in headers or {} if is_credential(name)]
        if secret:
            name = secret[0]
            example = mention("header_env", repr({name: "ETA_API_KEY"}))
            raise UsageError(
                f"header {name!r} would be saved in the model's artifact in plain text: name the "
                f"environment variable that holds it, e.g. {example}, or a file, {mention('header_files')}"
            )
        self.url, self.timeout, self.headers = url, timeout, dict(headers or {})
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

    def predict(self, frame: Any) -> Any:
        rows = frame.to_dict("records") if hasattr(frame, "to_dict") else [dict(r) for r in frame]
        body = {"instances": [{"features": row} for row in rows]}
        try:
            response = httpx.post(self.url, json=body, timeout=self.timeout, headers=self.call_headers())
        except httpx.HTTPError as error:
            raise RemoteModelError(f"{self.url}: {type(error).__name__}: {error}") from error
        if response.status_code != 200:
            raise RemoteModelError(f"{self.url} answered {response.status_code}: {response.text[:200]}")
        return np.asarray([_number(item) for item in response.json()["predictions"]], dtype=float)

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
