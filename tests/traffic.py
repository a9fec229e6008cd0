"""A steady stream of predictions over HTTP on a thread of its own, for tests that change what is
underneath while requests keep coming (a store outage, a killed controller, a rolling restart)."""

from __future__ import annotations

import itertools
import random
import threading
from typing import Any

import httpx


class Traffic:
    """Predictions of `model` round-robin over the gateways at `bases`, one at a time, each with a
    request id of its own (`{prefix}-{n}`) and one of `users` users. With `labels_token`, their labels
    (3 a - 2 b plus noise) go in batches of 20; a batch refused (503 while the store is down) is sent
    again with the next one. A request that got no answer (the connection failed) is recorded with
    status 0."""

    def __init__(
        self,
        bases: list[str],
        model: str,
        *,
        prefix: str,
        users: int = 50,
        labels_token: str | None = None,
    ) -> None:
        self.bases, self.model, self.prefix, self.users = bases, model, prefix, users
        self.labels_token = labels_token
        self.predictions: list[tuple[str, int]] = []  # (request_id, HTTP status)
        self.label_statuses: list[int] = []
        self.pending: list[dict[str, Any]] = []  # labels not yet acknowledged
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="traffic", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        rng = random.Random(0)
        with httpx.Client(timeout=30) as client:
            for n in itertools.count():
                if self._stop.is_set():
                    return
                base = self.bases[n % len(self.bases)]
                a, b = rng.gauss(0, 1), rng.gauss(0, 1)
                request_id = f"{self.prefix}-{n}"
                body = {"features": {"a": a, "b": b}, "user_id": f"u{rng.randrange(self.users)}"}
                try:
                    answer = client.post(
                        f"{base}/v1/models/{self.model}/predict", json={**body, "request_id": request_id}
                    )
                except httpx.TransportError:  # no answer at all: a failed request, status 0
                    self.predictions.append((request_id, 0))
                    continue
                self.predictions.append((request_id, answer.status_code))
                if self.labels_token is None:
                    continue
                if answer.status_code == 200:
                    self.pending.append(
                        {"request_id": request_id, "label": 3 * a - 2 * b + rng.gauss(0, 0.5)}
                    )
                if len(self.pending) >= 20:
                    self._label(client, base)

    def _label(self, client: httpx.Client, base: str) -> None:
        answer = client.post(
            f"{base}/v1/models/{self.model}/labels",
            json={"labels": self.pending},
            headers={"Authorization": f"Bearer {self.labels_token}"},
        )
        self.label_statuses.append(answer.status_code)
        if answer.status_code == 200:
            self.pending = []

    def stop(self) -> list[tuple[str, int]]:
        """Stop sending (after the request in flight); every (request_id, HTTP status) sent."""
        self._stop.set()
        self._thread.join(60)
        return list(self.predictions)
