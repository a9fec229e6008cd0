"""The versions a gateway's routing asks for that fail to load here, kept for `/v1/health`, `/metrics`
and the store (`store.load_failures`), where the controller ends such a rollout.

The gateway retries every failing load at each routing refresh, so a refresh is one pass: a version
that failed in the last pass fails still; one not tried again loaded, or is no longer routed to. A
failure keeps its `first_seen` while it lasts: the controller's grace (`shadow.unavailable_after`)
runs from there.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from pitstop.serving.metrics import GatewayMetrics
from pitstop.store.load_failures import REPORT_EVERY, LoadFailure

Key = tuple[str, int, str]  # model, version, role


class LoadFailures:
    """What failed to load in the latest refresh, by model, version and role."""

    def __init__(self, metrics: GatewayMetrics, gateway: str) -> None:
        self.metrics, self.gateway = metrics, gateway
        self._current: dict[Key, LoadFailure] = {}
        self._seen: set[Key] = set()  # failed in the pass under way
        self._reported: tuple[Key, ...] | None = None  # what the store holds (None: nothing written yet)
        self._reported_at: datetime | None = None

    def begin(self) -> None:
        """A refresh starts: every load it tries again and that fails is noted."""
        self._seen = set()

    def failed(self, model: str, model_id: int, version: int, role: str, error: str, now: datetime) -> None:
        key = (model, version, role)
        self._seen.add(key)
        before = self._current.get(key)
        if before is None:
            failure = LoadFailure(model_id, version, role, error, now, now, 1, self.gateway)
        else:
            failure = replace(before, error=error, last_seen=now, attempts=before.attempts + 1)
        self._current[key] = failure
        self.metrics.version_load_failed.labels(model, str(version), role).set(1)

    def end(self) -> None:
        """The refresh is over: what was not tried again (or loaded) fails no more."""
        for key in [key for key in self._current if key not in self._seen]:
            del self._current[key]
            model, version, role = key
            self.metrics.version_load_failed.labels(model, str(version), role).set(0)

    def clear(self) -> None:
        """Nothing fails to load here any more (the gateway stops)."""
        self.begin()
        self.end()

    def failing_now(self, model: str, version: int) -> bool:
        """Whether `version` of `model` failed to load in the refresh under way (in any role)."""
        return any(name == model and v == version for name, v, _ in self._seen)

    def of(self, model: str) -> list[LoadFailure]:
        """The model's current failures, oldest first."""
        found = [failure for (name, _, _), failure in self._current.items() if name == model]
        return sorted(found, key=lambda f: (f.first_seen, f.version, f.role))

    def lines(self) -> list[str]:
        """`eta v7 (shadow): ModuleNotFoundError: …` for each current failure, as the dashboard lists them."""
        return [
            f"{model} v{version} ({role}): {failure.error}"
            for (model, version, role), failure in sorted(self._current.items())
        ]

    def report_due(self, now: datetime) -> bool:
        """Whether the store should hear from this gateway: its failures changed, or still fail and the
        last report is `REPORT_EVERY` old (so readers can tell a live report from a stale one)."""
        keys = tuple(sorted(self._current))
        if keys != self._reported:
            return True
        return bool(keys) and (self._reported_at is None or now - self._reported_at >= REPORT_EVERY)

    def to_report(self) -> tuple[tuple[Key, ...], list[LoadFailure]]:
        """What to write: the failures' keys (for `reported`) and the failures."""
        keys = tuple(sorted(self._current))
        return keys, [self._current[key] for key in keys]

    def reported(self, keys: tuple[Key, ...], now: datetime) -> None:
        """The store now holds the failures of `keys` (as `to_report` gave them)."""
        self._reported, self._reported_at = keys, now
