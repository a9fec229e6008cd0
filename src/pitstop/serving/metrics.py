"""The gateway's Prometheus metrics, in a registry of its own (several gateways can share a process).

With `--workers N` each worker process counts for itself. When `PROMETHEUS_MULTIPROC_DIR` is set
(`pitstop serve --workers N` sets it to a fresh folder when unset), prometheus-client keeps the
values in files there, and `/metrics` on any worker aggregates every worker's values.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
PREDICTION_LABELS = ("model", "version", "arm", "role")


MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def process_exiting() -> None:
    """In multiprocess mode, drop this worker's live gauges (call when a worker stops)."""
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


class GatewayMetrics:
    """Every metric the gateway exports; label children are cached because lookups sit on the hot path."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "pitstop_predictions",
            "Predictions made, by model, version, arm, role and what the request was bucketed by",
            (*PREDICTION_LABELS, "bucketed_by"),
            registry=r,
        )
        self.errors = Counter(
            "pitstop_prediction_errors",
            "Predictions that failed (raised or non-finite)",
            PREDICTION_LABELS,
            registry=r,
        )
        self.latency = Histogram(
            "pitstop_prediction_latency_seconds",
            "Duration of the model call that answered the prediction (its micro-batch's own time; "
            "a failed or timed-out call: the time waited)",
            PREDICTION_LABELS,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.request_latency = Histogram(
            "pitstop_request_latency_seconds",
            "Time the gateway spent on a predict call, validation to answer",
            ("model",),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.invalid = Counter(
            "pitstop_invalid_requests",
            "Requests refused with a 4xx, by model and HTTP status",
            ("model", "status"),
            registry=r,
        )
        self.unhandled = Counter(
            "pitstop_http_unhandled_errors",
            "Requests answered 500 internal_error: an unexpected exception, logged with its request_id",
            ("model",),
            registry=r,
        )
        self.shadow_timeouts = Counter(
            "pitstop_shadow_timeouts",
            "Shadow calls dropped after serving.shadow_timeout",
            ("model", "version"),
            registry=r,
        )
        self.shadow_errors = Counter(
            "pitstop_shadow_errors",
            "Shadow calls that raised or returned non-finite values",
            ("model", "version"),
            registry=r,
        )
        self.shadow_skipped = Counter(
            "pitstop_shadow_skipped",
            "Shadow requests not scored: saturated (serving.shadow_concurrency calls in flight), backlog, "
            "circuit_open, starved (the shadow's process was refused the CPU past its timeout), unavailable "
            "(the shadow could not be loaded) or closed",
            ("model", "version", "reason"),
            registry=r,
        )
        self.shadow_inflight = Gauge(
            "pitstop_shadow_inflight",
            "Shadow calls in flight (a call carries the shadow requests of one batch wait, 20 ms by default)",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.shadow_rss = Gauge(
            "pitstop_shadow_rss_bytes",
            "Resident memory of a shadow model's process at its last reading (at most a second old while "
            "it scores)",
            ("model", "version"),
            registry=r,
            multiprocess_mode="liveall",
        )
        self.shadow_restarts = Counter(
            "pitstop_shadow_restarts",
            "Shadow model processes replaced by a new one: memory (over serving.shadow_memory_limit) or "
            "exited (died on its own)",
            ("model", "version", "reason"),
            registry=r,
        )
        self.batch_size = Histogram(
            "pitstop_batch_rows",
            "Rows per model predict call (micro-batching)",
            ("model", "version"),
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.log_queue = Gauge(
            "pitstop_predlog_queue_depth",
            "Prediction records waiting to be written",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.log_written = Counter("pitstop_predlog_written", "Prediction records written", registry=r)
        self.log_retries = Counter(
            "pitstop_predlog_write_failures", "Failed prediction-log writes (each is retried)", registry=r
        )
        self.log_dropped = Counter(
            "pitstop_predlog_dropped",
            "Prediction records not written: queue_full, spool_full, spool_unreadable (a spooled file "
            "that does not decode, set aside), or unwritten at shutdown",
            ("reason",),
            registry=r,
        )
        self.log_spooled = Counter(
            "pitstop_predlog_spooled",
            "Prediction records moved to the local spool while the store could not be written "
            "(<workspace>/.pitstop/spool/predictions/; written to the store once it answers)",
            registry=r,
        )
        self.log_spool_bytes = Gauge(
            "pitstop_predlog_spool_bytes",
            "Bytes of prediction records in the local spool, waiting for the store (every process's "
            "files; at most serving.spool_max_bytes)",
            registry=r,
            multiprocess_mode="max",
        )
        self.log_spool_files = Gauge(
            "pitstop_predlog_spool_files",
            "Batches of prediction records in the local spool, waiting for the store",
            registry=r,
            multiprocess_mode="max",
        )
        self.log_dead_letters = Counter(
            "pitstop_predlog_dead_letters",
            "Prediction records the store refused for their data, set aside in the dead-letter file "
            "(<workspace>/.pitstop/dead-letters/), by the refusal's type (UnicodeEncodeError, DataError, …)",
            ("reason",),
            registry=r,
        )
        self.log_dead_letters_unsaved = Counter(
            "pitstop_predlog_dead_letters_unsaved",
            "Dead letters that could not be saved to the dead-letter file (counted as dead letters too)",
            registry=r,
        )
        self.labels_accepted = Counter("pitstop_labels_accepted", "Labels stored", ("model",), registry=r)
        self.routing_version = Gauge(
            "pitstop_routing_version",
            "Routing table version in use",
            ("model",),
            registry=r,
            multiprocess_mode="liveall",
        )
        self.challenger_share = Gauge(
            "pitstop_routing_challenger_share",
            "Share of users served by the challenger",
            ("model",),
            registry=r,
            multiprocess_mode="liveall",
        )
        self.routing_errors = Counter(
            "pitstop_routing_errors",
            "Routing changes that could not be prepared (kept the old table)",
            ("model",),
            registry=r,
        )
        self.store_up = Gauge(
            "pitstop_store_up", "1 when the last store access worked", registry=r, multiprocess_mode="liveall"
        )
        self.ready = Gauge(
            "pitstop_ready",
            "1 when every served model's champion can be served (/readyz)",
            registry=r,
            multiprocess_mode="liveall",
        )
        self.component_up = Gauge(
            "pitstop_component_up",
            "1 when the part works: a model's champion, challenger, shadow or routing; the prediction log",
            ("model", "component"),
            registry=r,
            multiprocess_mode="liveall",
        )
        self.version_load_failed = Gauge(
            "pitstop_version_load_failed",
            "1 while a version the routing asks for fails to load on this gateway (role champion, "
            "challenger, standby or shadow; its error is in GET /v1/health), 0 once it loads or is no "
            "longer asked for",
            ("model", "version", "role"),
            registry=r,
            multiprocess_mode="liveall",
        )
        self.gateways_live = Gauge(
            "pitstop_gateways_live",
            "Live gateways (heartbeat within serving.gateway_timeout, this one included) serving the model "
            "under each routing version, as this gateway last read their heartbeats",
            ("model", "routing_version"),
            registry=r,
            multiprocess_mode="liveall",
        )
        self.heartbeat_errors = Counter(
            "pitstop_heartbeat_errors",
            "Gateway heartbeats that could not be written to the store (serving goes on)",
            registry=r,
        )
        self.routing_push_up = Gauge(
            "pitstop_routing_push_up",
            "1 while the gateway listens for pushed routing changes (PostgreSQL LISTEN); 0: polling only",
            registry=r,
            multiprocess_mode="liveall",
        )
        self.notifications = Counter(
            "pitstop_notifications",
            "Notification delivery attempts made by this process's sender, by receiver and outcome: "
            "delivered, pending (retried later) or failed (given up; see pitstop notify log)",
            ("receiver", "outcome"),
            registry=r,
        )
        self._children: dict[tuple[Any, ...], Any] = {}

    def _series(self, model: str, version: int, arm: str, role: str, bucketed_by: str) -> tuple[Any, ...]:
        """The (requests, errors, latency) children of one label set, looked up once and kept."""
        key = (model, version, arm, role, bucketed_by)
        children = self._children.get(key)
        if children is None:
            labels = (model, str(version), arm, role)
            children = (
                self.requests.labels(*labels, bucketed_by),
                self.errors.labels(*labels),
                self.latency.labels(*labels),
            )
            self._children[key] = children
        return children

    def prediction(
        self, model: str, version: int, arm: str, role: str, bucketed_by: str, seconds: float, ok: bool
    ) -> None:
        requests, errors, latency = self._series(model, version, arm, role, bucketed_by)
        requests.inc()
        latency.observe(seconds)
        if not ok:
            errors.inc()

    def shadow_predictions(
        self, model: str, version: int, arm: str, seconds: float, by_bucket: Mapping[str, int], failed: int
    ) -> None:
        """Count one shadow call's predictions (how many per `bucketed_by`), all `seconds` long.

        The counters move once per call, not once per row; the latency histogram still gets one
        observation per prediction, as served predictions do.
        """
        series: tuple[Any, ...] = ()
        for by, count in by_bucket.items():
            series = self._series(model, version, arm, "shadow", by)
            series[0].inc(count)
        if not series:
            return
        series[1].inc(failed)  # also when 0: the series exists from the first call
        observe = series[2].observe
        for _ in range(sum(by_bucket.values())):
            observe(seconds)

    def request_seconds(self, model: str, seconds: float) -> None:
        child = self._children.get((model,))
        if child is None:
            child = self._children[(model,)] = self.request_latency.labels(model)
        child.observe(seconds)

    def count_notification(self, receiver: str, outcome: str) -> None:
        """One notification attempt by this process's sender (`notify.sender.Sender`'s `on_attempt`)."""
        self.notifications.labels(receiver, str(outcome)).inc()

    def render(self) -> bytes:
        """The Prometheus text exposition: this gateway's, or every worker's in multiprocess mode."""
        if multiprocess_dir() is None:
            return generate_latest(self.registry)
        aggregate = CollectorRegistry()
        multiprocess.MultiProcessCollector(aggregate)  # type: ignore[no-untyped-call]
        return generate_latest(aggregate)
