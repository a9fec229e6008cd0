"""The serving core, independent of HTTP: route, predict, shadow, log, label, refresh routing.

Per model the gateway holds one immutable `ModelState` (routing table, loaded runners, feature
schema). A request reads it once and uses that snapshot to the end, so a routing change, prepared
in full beforehand (models loaded and warmed), replaces it with a single assignment and requests in
flight finish on the table they started with (guarantee 3).

The same class runs live (`app.py`, with a poll loop and the wall clock) and in replay
(`pitstop simulate`: a `ManualClock`, `poll=False`, explicit `refresh_routing()` and `drain()`).
Prediction `time` is the clock's; latencies are real (`perf_counter`).

A live gateway (one that polls) also listens for pushed routing changes on PostgreSQL
(`routing_push.py`): a notification wakes the poll at once, so a change reaches every gateway without
waiting for `serving.poll_interval`, which stays the fallback. It records what it serves every
`serving.heartbeat_interval` and right after every switch (`heartbeat.py`), which the controller
waits on before it counts a step in force, and the versions it has warmed: the controller routes no
user to a version some live gateway has not warmed, so a warm-up that failed is tried again at every
poll (`warm_again`).

A live gateway keeps a local cache of what it serves (`routing_cache.py`), so that one started while
the store is down serves each cached champion alone, reports `degraded`, queues its prediction
records and returns to normal routing once the store answers. One running when the store goes away
keeps serving its last tables, and its prediction log spools records to disk (`spool.py`) until the
store answers: the gateway is then degraded (`/readyz` and `/v1/health` say why), not unready.

A version that fails to load is a failure this gateway reports, never a silent retry: with its error
in `GET /v1/health` (and `/readyz` for a champion), as `pitstop_version_load_failed` in `/metrics`,
and in the store (`load_report.py`), where the controller ends the rollout after a short grace. Users
get the champion meanwhile: a shadow that cannot load is skipped, a table whose challenger cannot load
is not applied (the previous table serves), and a gateway that has no previous table serves the
champion alone under routing version 0, whose records count as no phase's evidence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from time import perf_counter
from typing import Any, NamedTuple, Protocol

from sqlalchemy.exc import DBAPIError

from pitstop import loading, registry
from pitstop.clock import Clock
from pitstop.config import ServingSettings
from pitstop.context import Context
from pitstop.errors import StoreUnavailableError, VersionLoadError, describe
from pitstop.losses import Scoring
from pitstop.registry import ModelInfo, VersionInfo
from pitstop.routing.store import effective_routing
from pitstop.routing.table import Arm, BucketedBy, Route, RoutingTable
from pitstop.serving import routing_cache
from pitstop.serving.batching import MicroBatcher, model_seconds
from pitstop.serving.deadletter import workspace_dead_letters
from pitstop.serving.errors import InvalidInputError, ModelNotServedError, PredictionFailedError
from pitstop.serving.features import FeatureSchema
from pitstop.serving.health import GatewayHealth, LogHealth, ModelHealth, Part, SpoolHealth
from pitstop.serving.heartbeat import HeartbeatWriter
from pitstop.serving.labels import Label, encode_labels, upsert_labels
from pitstop.serving.load_report import LoadFailures
from pitstop.serving.metrics import GatewayMetrics
from pitstop.serving.outputs import Output, class_answer, read_output
from pitstop.serving.predlog import PredictionLog
from pitstop.serving.routing_push import RoutingListener
from pitstop.serving.runner import Row, Runner, make_runner
from pitstop.serving.shadow import ShadowRequest, ShadowScorer, ShadowTarget
from pitstop.serving.spool import workspace_spool
from pitstop.serving.timing import ShadowTimer
from pitstop.store.gateways import ServedModel
from pitstop.store.load_failures import replace_reported
from pitstop.store.predictions.write import PredictionRecord

log = logging.getLogger(__name__)


class RunnerFactory(Protocol):
    """Builds the runner of one version (`runner.make_runner`); `shadow` for shadow scoring only."""

    def __call__(
        self,
        ws: Context,
        model: ModelInfo,
        version: VersionInfo,
        settings: ServingSettings,
        *,
        shadow: bool,
    ) -> Runner: ...


class Instance(NamedTuple):
    """One thing to predict: its features, and optionally who asks and the caller's request id."""

    features: dict[str, Any]
    user_id: str | None = None
    request_id: str | None = None


class PredictionResult(NamedTuple):
    request_id: str
    model: str
    model_version: int
    prediction: float
    arm: Arm
    routing_version: int
    bucketed_by: BucketedBy
    classified: dict[str, Any] | None = None  # a classifier's class, classes, probabilities

    def to_dict(self) -> dict[str, Any]:
        """The HTTP answer for one instance."""
        return {
            "request_id": self.request_id,
            "model": self.model,
            "model_version": self.model_version,
            "prediction": self.prediction,
            **(self.classified or {}),
        }


@dataclass(frozen=True)
class ModelState:
    """Everything a request needs, replaced as one value when routing changes."""

    info: ModelInfo
    table: RoutingTable
    runners: Mapping[int, Runner]  # by version: every version that may serve a request
    schema: FeatureSchema
    shadow_runner: Runner | None = None  # the shadow version's own runner (isolated: `isolation.py`)
    shadow_problem: str | None = None  # why the table's shadow could not be loaded (it is retried)
    timing_runner: Runner | None = (
        None  # the shadow version as a served runner, timing a sample (`timing.py`)
    )

    def all_runners(self) -> list[Runner]:
        """Every runner this state holds, each once."""
        extra = [r for r in (self.shadow_runner, self.timing_runner) if r is not None]
        return list({id(r): r for r in (*self.runners.values(), *extra)}.values())

    @cached_property
    def shadow_target(self) -> ShadowTarget | None:
        """What shadow calls under this table score and record (None without a shadow)."""
        table = self.table
        if table.shadow is None:
            return None
        arm = "champion" if table.shadow == table.champion else "challenger"
        return ShadowTarget(self.info.name, self.info.id, table.shadow, arm, table.version)


class Gateway:
    """Serves every model of a workspace that has a champion (or only `models`, when given).

    Settings come from `settings` (default: the workspace's `serving` section). `poll=False` leaves
    routing refreshes to the caller (replay) and keeps no routing cache (`cache_dir`, default
    `serving.cache_dir`, used only when polling). `shadow_batch_wait` is how long a shadow call gathers
    requests, and may then wait in its runner for a bigger batch (default 20 ms, at most a quarter of
    the shadow timeout; 0 starts a call per event-loop turn).

    `pinned` serves the one model of `models` at that version alone, whatever its routing says, and
    records no prediction: a model runner (`pitstop serve-model`), whose gateway in front routes and
    records. Use it with `poll=False`, so it reports no heartbeat either.
    """

    def __init__(
        self,
        ws: Context,
        *,
        clock: Clock | None = None,
        settings: ServingSettings | None = None,
        runner_factory: RunnerFactory = make_runner,
        metrics: GatewayMetrics | None = None,
        poll: bool = True,
        models: list[str] | None = None,
        warm_timeout: float | None = None,
        shadow_batch_wait: float | None = None,
        cache_dir: Path | None = None,
        pinned: int | None = None,
    ) -> None:
        if pinned is not None and (models is None or len(models) != 1 or poll):
            raise ValueError("a pinned version serves exactly one model, without polling")
        self.ws = ws
        self._pinned = pinned
        self.clock = clock or ws.clock
        self.settings = settings or ws.config.serving
        self.metrics = metrics or GatewayMetrics()
        self._runner_factory = runner_factory
        self._poll_enabled = poll
        self._only = set(models) if models is not None else None
        s = self.settings
        self._warm_timeout = warm_timeout if warm_timeout is not None else s.shadow_timeout.total_seconds()
        self.identity = (
            f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"  # in the store's reports
        )
        self.log = PredictionLog(
            ws.engine,
            self.metrics,
            queue_size=s.log_queue_size,
            batch_size=s.log_batch_size,
            flush_interval=s.log_flush_interval.total_seconds(),
            dead_letters=workspace_dead_letters(ws.path),
            spool=workspace_spool(ws.path, s.spool_max_bytes) if s.spool and poll else None,
            identity=self.identity,
        )
        timeout = s.shadow_timeout.total_seconds()
        self.shadow = ShadowScorer(
            self.metrics,
            self.log.append,
            timeout=timeout,
            concurrency=s.shadow_concurrency,
            batch_wait=shadow_batch_wait if shadow_batch_wait is not None else min(0.02, timeout / 4),
        )
        self.timing = ShadowTimer(self.metrics, self.log.append, timeout=timeout)
        self._states: dict[str, ModelState] = {}
        self._problems: dict[str, str] = {}
        self.load_failures = LoadFailures(self.metrics, self.identity)
        self.heartbeat = HeartbeatWriter(
            ws,
            self.identity,
            self.served,
            self.metrics,
            clock=self.clock,
            interval=s.heartbeat_interval,
            timeout=s.gateway_timeout,
        )
        self._store_error: str | None = "not started"
        self._refresh_lock = asyncio.Lock()
        self._poll_task: asyncio.Task[None] | None = None
        self._stopping = False  # the poll ends at its next turn (a cancel alone can be lost in wait_for)
        self._wake = asyncio.Event()  # a pushed routing change: refresh now, not at the next poll
        self._listener: RoutingListener | None = None
        self._warmed: set[int] = set()  # id() of runners whose warm-up prediction succeeded
        self._cold: set[int] = set()  # id() of runners whose last warm-up failed (logged once)
        self._warming: dict[int, asyncio.Future[list[float]]] = {}  # warm-ups in flight, by runner id()
        self._retiring: set[asyncio.Task[None]] = set()
        if cache_dir is None and poll:
            cache_dir = routing_cache.cache_folder(ws.path, self.settings)
        self._cache_dir = cache_dir
        self._cached_key: tuple[object, ...] | None = None  # what the cache on disk holds
        self._from_cache: set[str] = set()  # models served from the cache, not yet from the store
        self._cache_written_at: datetime | None = None
        self._cache_problem: str | None = None  # why the last write failed (logged once)

    # -- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load every served model and start the log writer and the routing poll.

        When the store cannot be read, each champion of the routing cache serves alone (`degraded`
        says so) until the store answers; without a usable cache, StoreUnavailableError: nothing is
        known.
        """
        await self.refresh_routing()
        if self._store_error is not None:
            await self._start_from_cache()
        self.log.start()
        if self._poll_enabled:
            self._poll_task = asyncio.get_running_loop().create_task(
                self._poll(), name="pitstop-routing-poll"
            )
            self._start_listener()
            self.heartbeat.start()

    def _start_listener(self) -> None:
        """Listen for pushed routing changes (PostgreSQL with `serving.push`; else polling only)."""
        url = self.ws.engine.url
        if not self.settings.push or url.get_backend_name() != "postgresql":
            return
        loop = asyncio.get_running_loop()

        def up(listening: bool) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody to tell
                loop.call_soon_threadsafe(self.metrics.routing_push_up.set, 1 if listening else 0)

        def changed() -> None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._wake.set)

        self._listener = RoutingListener(url, changed, up)
        self._listener.start()

    async def drain(self) -> None:
        """Wait for all shadow work in flight, then write every queued prediction record."""
        await asyncio.gather(self.shadow.drain(), self.timing.drain())
        await self.log.flush()

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop polling, let shadow calls end (each is bounded), flush the log, release the models."""
        if self._listener is not None:
            await asyncio.to_thread(self._listener.stop)
            self._listener = None
        if self._poll_task is not None:
            self._stopping = True
            self._wake.set()
            self._poll_task.cancel()
            await asyncio.gather(self._poll_task, return_exceptions=True)
            self._poll_task = None
        await self.heartbeat.stop()
        try:
            drained = asyncio.gather(self.shadow.drain(), self.timing.drain())
            await asyncio.wait_for(drained, timeout=self.shadow.longest_call + 1.0)
        except TimeoutError:
            log.warning("stopping with %d shadow calls still in flight", self.shadow.inflight)
        await self.log.stop(timeout=timeout)
        if self.load_failures.to_report()[0]:  # a stopped gateway fails to load nothing
            self.load_failures.clear()
            await self._report_load_failures()
        for task in list(self._retiring):
            task.cancel()
        await asyncio.gather(*self._retiring, return_exceptions=True)
        runners = {id(r): r for state in self._states.values() for r in state.all_runners()}
        await asyncio.gather(*(r.close() for r in runners.values()), return_exceptions=True)
        self._states.clear()
        self._warmed.clear()
        self._cold.clear()
        self._warming.clear()

    def served(self) -> tuple[ServedModel, ...]:
        """What this gateway serves, per model, for its heartbeat."""
        out = []
        for name, state in sorted(self._states.items()):
            loaded = {id(r): r.version for r in state.all_runners()}
            warmed = {version for key, version in loaded.items() if key in self._warmed}
            out.append(
                ServedModel(
                    name, state.table.version, tuple(sorted(set(loaded.values()))), tuple(sorted(warmed))
                )
            )
        return tuple(out)

    # -- what is served -----------------------------------------------------------------------------

    @property
    def models(self) -> list[str]:
        return sorted(self._states)

    def state(self, model: str) -> ModelState:
        state = self._states.get(model)
        if state is None:
            raise ModelNotServedError(model, self.models)
        return state

    def routing(self, model: str) -> RoutingTable:
        return self.state(model).table

    @property
    def degraded(self) -> str | None:
        """Why the gateway serves less than routing asks (None when it does not): started while the
        store was down, it serves each cached champion alone until the store answers."""
        if not self._from_cache:
            return None
        written = self._cache_written_at.isoformat() if self._cache_written_at else "?"
        why = f"store unreachable: {self._store_error}" if self._store_error else "store routing not applied"
        return (
            f"serving {', '.join(sorted(self._from_cache))} from the routing cache written {written}, "
            f"each champion alone (no split, no shadow) until the store's routing applies; {why}"
        )

    def readiness(self) -> list[str]:
        """Why the gateway cannot serve (empty when it can): a model whose champion is not loaded.

        Only the champion counts: a challenger or shadow that cannot load, a failing prediction-log
        writer or a store outage leave the champion serving, and taking every replica out of a load
        balancer for them would stop the service they do not stop. `health()` reports those.
        """
        reasons = [
            f"{model}: {problem}"
            for model, problem in sorted(self._problems.items())
            if model not in self._states
        ]
        if not self._states and not reasons:
            reasons.append("no model with a champion to serve")
        return reasons

    def health(self) -> GatewayHealth:
        """Every part's state: per model champion, challenger and shadow; the log writer; the store.

        Also sets the `pitstop_component_up` and `pitstop_ready` gauges, so `/metrics` agrees with it.
        """
        models = {name: self._model_health(name, state) for name, state in sorted(self._states.items())}
        for name, problem in sorted(self._problems.items()):
            if name not in models:
                models[name] = ModelHealth(None, Part(None, "unavailable", problem), None, None, problem)
        health = GatewayHealth(
            self.readiness(),
            models,
            LogHealth(
                self.log.healthy,
                self.log.depth,
                self.log.queue_size,
                self.log.last_error,
                self.log.dead_lettered,
                self.log.last_dead_letter,
                self._spool_health(),
            ),
            self._store_error,
            self.degraded,
        )
        self._export(health)
        return health

    def _spool_health(self) -> SpoolHealth | None:
        spool = self.log.spool
        if spool is None:
            return None
        size = self.log.spool_size
        return SpoolHealth(size.files, size.bytes, spool.max_bytes, self.log.spooled, self.log.spool_dropped)

    def _model_health(self, name: str, state: ModelState) -> ModelHealth:
        table = state.table
        challenger = None
        if table.challenger is not None and table.challenger != table.shadow:
            loaded = table.challenger in state.runners
            challenger = Part(table.challenger, "ok" if loaded else "not_loaded", None)
        shadow = None
        if table.shadow is not None:
            shadow = Part(
                table.shadow, "ok" if state.shadow_runner is not None else "unavailable", state.shadow_problem
            )
        champion = Part(table.champion, "ok", None)
        process = None if state.shadow_runner is None else state.shadow_runner.memory()
        return ModelHealth(
            table.version,
            champion,
            challenger,
            shadow,
            self._problems.get(name),
            process,
            tuple(self.load_failures.of(name)),
        )

    def _export(self, health: GatewayHealth) -> None:
        up = self.metrics.component_up
        self.metrics.ready.set(0 if health.reasons else 1)
        up.labels("-", "prediction_log").set(1 if health.log.healthy else 0)
        for name, model in health.models.items():
            for role, part in (
                ("champion", model.champion),
                ("challenger", model.challenger),
                ("shadow", model.shadow),
            ):
                if part is not None:
                    up.labels(name, role).set(1 if part.status == "ok" else 0)
            up.labels(name, "routing").set(0 if model.problem else 1)

    # -- predictions --------------------------------------------------------------------------------

    async def predict(
        self, model: str, instances: list[Instance], *, batch: bool | None = None
    ) -> list[PredictionResult]:
        """Predict each instance with the arm its routing picks; log each prediction; start shadows.

        Field names in errors are `features.x` for a single instance and `instances[i].features.x`
        for a batch (`batch` defaults to more than one instance).
        """
        started = perf_counter()
        state = self.state(model)
        is_batch = len(instances) != 1 if batch is None else batch
        rows = self._validated_rows(state, instances, is_batch)
        table = state.table
        now = self.clock.now().timestamp()
        request_ids = [inst.request_id or uuid.uuid4().hex for inst in instances]
        routes = [table.route(inst.user_id, rid) for inst, rid in zip(instances, request_ids, strict=True)]
        groups: dict[int, list[int]] = {}
        for i, r in enumerate(routes):
            groups.setdefault(r.version, []).append(i)
        submitted = perf_counter()
        futures = {
            v: state.runners[v].submit([rows[i] for i in idx], request_ids=[request_ids[i] for i in idx])
            for v, idx in groups.items()
        }
        results: list[PredictionResult | None] = [None] * len(instances)
        failures: list[tuple[int, int, str]] = []
        for version, idx in groups.items():
            values, cause = await _outcome(futures[version], len(idx))
            seconds = model_seconds(futures[version], perf_counter() - submitted)
            for i, value in zip(idx, values, strict=True):
                r, inst = routes[i], instances[i]
                output = read_output(value) if cause is None else Output(None)
                error = cause if cause is not None else output.problem
                self.metrics.prediction(
                    model, version, r.arm, "served", r.bucketed_by, seconds, error is None
                )
                if self._pinned is None:  # a runner's predictions are recorded by the gateway in front
                    self.log.append(
                        PredictionRecord(
                            state.info.id,
                            request_ids[i],
                            inst.user_id,
                            now,
                            version,
                            r.arm,
                            "served",
                            table.version,
                            r.bucketed_by,
                            None if error else output.prediction,
                            seconds * 1000.0,
                            error,
                            None if error else output.logged_probabilities,
                        )
                    )
                if error is not None:
                    failures.append((i, version, error))
                else:
                    assert output.prediction is not None
                    classified = class_answer(state.info.task, state.info.classes, output)
                    results[i] = PredictionResult(
                        request_ids[i],
                        model,
                        version,
                        output.prediction,
                        r.arm,
                        table.version,
                        r.bucketed_by,
                        classified or None,
                    )
        self._start_shadows(state, table, rows, instances, request_ids, routes, now)
        self.metrics.request_seconds(model, perf_counter() - started)
        if failures:
            _, version, cause = failures[0]
            raise PredictionFailedError(model, version, [request_ids[i] for i, _, _ in failures], cause)
        return results  # type: ignore[return-value]  # every slot is filled when nothing failed

    def _validated_rows(self, state: ModelState, instances: list[Instance], is_batch: bool) -> list[Row]:
        schema = state.schema
        problems = []
        for i, inst in enumerate(instances):
            if schema.accepts(inst.features):
                continue
            where = f"instances[{i}].features" if is_batch else "features"
            problems.extend(schema.problems(inst.features, where))
        if problems:
            raise InvalidInputError(problems)
        return [inst.features for inst in instances]

    def _start_shadows(
        self,
        state: ModelState,
        table: RoutingTable,
        rows: list[Row],
        instances: list[Instance],
        request_ids: list[str],
        routes: list[Route],
        now: float,
    ) -> None:
        if table.shadow is None:
            return
        sample = self.settings.shadow_sample
        chosen = [
            i
            for i, r in enumerate(routes)
            if r.version != table.shadow
            and (sample >= 1.0 or table.sampled("shadow", request_ids[i], sample))
        ]
        if not chosen:
            return
        target = state.shadow_target
        assert target is not None  # the table has a shadow
        if state.shadow_runner is None:  # it failed to load (logged, retried at every refresh)
            self.metrics.shadow_skipped.labels(target.model, str(target.version), "unavailable").inc(
                len(chosen)
            )
            return
        request = ShadowRequest(
            now,
            [rows[i] for i in chosen],
            [request_ids[i] for i in chosen],
            [instances[i].user_id for i in chosen],
            [routes[i].bucketed_by for i in chosen],
        )
        self.shadow.score(state.shadow_runner, target, request)
        timing = self.settings.shadow_timing_sample
        if state.timing_runner is not None and table.sampled("timing", request.request_ids[0], timing):
            self.timing.time(state.timing_runner, target, request)

    # -- labels -------------------------------------------------------------------------------------

    async def add_labels(self, model: str, labels: list[Label]) -> int:
        """Store labels (upsert by request_id); returns how many were accepted. Waits for the store."""
        state = self.state(model)
        labels = encode_labels(labels, Scoring.of(state.info), state.info.classes)
        received = self.clock.now()

        def write() -> int:
            try:
                with self.ws.writing() as conn:
                    return upsert_labels(conn, state.info.id, labels, received_at=received)
            except DBAPIError as error:  # refused or unreachable: the labels were not stored
                raise StoreUnavailableError(f"labels not stored: {error.orig}") from error

        await asyncio.to_thread(write)
        self.metrics.labels_accepted.labels(model).inc(len(labels))
        return len(labels)

    # -- routing ------------------------------------------------------------------------------------

    async def refresh_routing(self) -> list[str]:
        """Re-read routing; prepare and swap in every changed table. Returns the models that changed.

        A store failure keeps the current tables (and is reported by `readiness`); a change that
        cannot be prepared (a version fails to load) keeps the old table and is counted.
        """
        async with self._refresh_lock:
            try:
                wanted = await asyncio.to_thread(self._read_routing, self.clock.now())
            except Exception as error:  # the store is down or refuses: keep serving what we have
                self._store_error = f"{type(error).__name__}: {error}"
                self.metrics.store_up.set(0)
                log.warning("routing refresh failed, keeping current tables: %s", self._store_error)
                return []
            self._store_error = None
            self.metrics.store_up.set(1)
            changed = []
            self.load_failures.begin()
            for info, table in wanted:
                current = self._states.get(info.name)
                if (
                    current is not None
                    and current.table.same_routing(table)
                    and current.shadow_problem is None
                ):
                    continue
                if await self._switch(info, table, current):
                    changed.append(info.name)
            self.load_failures.end()
            await self._report_load_failures()
            self._from_cache &= set(self._problems)  # a cached state the store's table could not replace
            if not self._from_cache:
                await self._save_cache()
            return changed

    def _read_routing(self, now: datetime) -> list[tuple[ModelInfo, RoutingTable]]:
        if self.ws.store_problem is not None:  # opened while the store was down: check it as opening does
            self.ws.check_store()
        with self.ws.reading() as conn:
            wanted = []
            for info in registry.list_models(conn):
                if self._only is not None and info.name not in self._only:
                    continue
                if self._pinned is not None:
                    registry.get_version(conn, info, self._pinned)  # NotFoundError: not registered
                    wanted.append((info, RoutingTable.initial(info.name, self._pinned, now)))
                    continue
                table = effective_routing(conn, info, now)
                if table is not None:
                    wanted.append((info, table))
            return wanted

    async def _switch(self, info: ModelInfo, table: RoutingTable, current: ModelState | None) -> bool:
        try:
            state = await self._prepare(info, table, current)
        except Exception as error:  # keep the old table; retried at the next poll
            problem = f"routing v{table.version} not applied: {type(error).__name__}: {error}"
            if self._problems.get(info.name) != problem:
                log.error("%s: %s", info.name, problem)
            self._problems[info.name] = problem
            self.metrics.routing_errors.labels(info.name).inc()
            if current is None and not self.load_failures.failing_now(info.name, table.champion):
                await self._serve_champion_alone(info, table)
            return False
        if current is not None and current.table.same_routing(table) and state.shadow_runner is None:
            return False  # its shadow failed to load again: nothing changes
        self._states[info.name] = state  # the switch: one assignment
        self.heartbeat.beat_now()  # acknowledge it at once
        self._problems.pop(info.name, None)
        self.metrics.routing_version.labels(info.name).set(table.version)
        self.metrics.challenger_share.labels(info.name).set(table.challenger_share)
        log.info("%s: routing %s (champion v%s)", info.name, table.describe(), table.champion)
        if current is not None:
            kept = {id(r) for r in state.all_runners()}
            unused = [r for r in current.all_runners() if id(r) not in kept]
            if unused:
                self._retire(unused)
        return True

    async def _serve_champion_alone(self, info: ModelInfo, table: RoutingTable) -> None:
        """Serve the champion of a table that could not be applied (another of its versions fails to
        load) under routing version 0: users get the champion, and no phase counts its records."""
        alone = RoutingTable.initial(info.name, table.champion, self.clock.now())
        try:
            self._states[info.name] = await self._prepare(info, alone, None)
        except Exception as error:  # the champion fails too: not ready, said by `readiness`
            log.error(
                "%s: champion v%s not loaded either: %s: %s",
                info.name,
                table.champion,
                type(error).__name__,
                error,
            )
            return
        log.warning(
            "%s: serving champion v%s alone until routing v%s applies",
            info.name,
            table.champion,
            table.version,
        )

    async def _report_load_failures(self) -> None:
        """Tell the store what fails to load here when that changed (or is due again); best effort."""
        now = self.clock.now()
        if not self.load_failures.report_due(now):
            return
        keys, failures = self.load_failures.to_report()

        def write() -> None:
            with self.ws.writing() as conn:
                replace_reported(conn, self.identity, failures)

        try:
            await asyncio.to_thread(write)
        except Exception as error:  # serving goes on; the next refresh tries again
            log.warning("load failures not reported to the store: %s: %s", type(error).__name__, error)
            return
        self.load_failures.reported(keys, now)

    # -- the routing cache ---------------------------------------------------------------------------

    async def _save_cache(self) -> None:
        """Write what is served to the routing cache when it changed; a failure is logged, not raised."""
        key = tuple(sorted((name, state.table.key()) for name, state in self._states.items()))
        if self._cache_dir is None or key == self._cached_key or not self._states:
            return
        tables = [state.table for state in self._states.values()]
        infos = {name: state.info for name, state in self._states.items()}
        folder = self._cache_dir

        def write() -> None:
            models = []
            for table in tables:
                champion = loading.version_info(self.ws, table.model, table.champion)
                kept = routing_cache.keep_artifact(folder, self.ws.artifacts, champion)
                models.append(routing_cache.CachedModel(infos[table.model], table, kept))
            routing_cache.write(folder, routing_cache.RoutingCache(self.clock.now(), tuple(models)))

        try:
            await asyncio.to_thread(write)
        except Exception as error:  # serving goes on; the next refresh tries again
            problem = f"{type(error).__name__}: {error}"
            if problem != self._cache_problem:
                log.warning("routing cache not written to %s: %s", folder, problem)
            self._cache_problem = problem
            return
        self._cached_key, self._cache_problem = key, None

    async def _start_from_cache(self) -> None:
        """Serve each cached champion alone; StoreUnavailableError when there is nothing to serve."""
        problem = f"cannot read routing from the store: {self._store_error}"
        folder = self._cache_dir
        cache = await asyncio.to_thread(routing_cache.read, folder) if folder is not None else None
        if cache is None:
            raise StoreUnavailableError(f"{problem} (and no routing cache to start from in {folder})")
        for cached in cache.models:
            if self._only is not None and cached.info.name not in self._only:
                continue
            try:
                self._states[cached.info.name] = await self._cached_state(cached, cache.written_at)
            except Exception as error:
                log.error(
                    "%s: cached champion not loaded: %s: %s", cached.info.name, type(error).__name__, error
                )
                continue
            self._from_cache.add(cached.info.name)
        if not self._states:
            raise StoreUnavailableError(f"{problem} (and no cached champion could be loaded from {folder})")
        self._cache_written_at = cache.written_at
        log.warning("%s", self.degraded)

    async def _cached_state(self, cached: routing_cache.CachedModel, written_at: datetime) -> ModelState:
        """The champion alone under table version 0: its records never count as a rollout phase's
        evidence, since the split or shadow the cached table had cannot be honoured faithfully."""
        info, champion = cached.info, cached.champion
        table = RoutingTable.initial(info.name, champion.version, written_at)
        factory = self._runner_factory
        runner = await asyncio.to_thread(factory, self.ws, info, champion, self.settings, shadow=False)
        runner = _observed(runner, self.metrics, info.name)
        schema = FeatureSchema.from_lineage(info.features or champion.lineage.features, champion.lineage)
        await self._warm(info.name, runner, schema)
        self.metrics.routing_version.labels(info.name).set(table.version)
        self.metrics.challenger_share.labels(info.name).set(0)
        return ModelState(info, table, {champion.version: runner}, schema)

    async def _prepare(self, info: ModelInfo, table: RoutingTable, current: ModelState | None) -> ModelState:
        """A complete new state: every version of the table loaded and warmed before it is used.

        Versions that may serve get served runners (kept from `current` when it has them); a shadow
        gets a runner of its own, for shadow scoring only, kept while the shadow version stays. A
        shadow that cannot be loaded (its artifact, or its process failing to start) does not stop
        the table: the champion serves, shadow requests are skipped (`unavailable`, counted) and the
        shadow is loaded again at every refresh until it works. A served version that cannot be
        loaded fails the whole table.
        """
        old = dict(current.runners) if current is not None else {}
        champion = await asyncio.to_thread(loading.version_info, self.ws, info.name, table.champion)
        schema = FeatureSchema.from_lineage(info.features or champion.lineage.features, champion.lineage)
        runners: dict[int, Runner] = {}
        shadow_runner: Runner | None = None
        shadow_problem: str | None = None
        timing_runner: Runner | None = None
        fresh: list[Runner] = []
        try:
            for version in sorted(table.served_versions):
                if version in old:
                    runners[version] = old[version]
                    continue
                try:
                    runners[version] = await asyncio.to_thread(self._load, info, version, False)
                except Exception as error:
                    self._load_failed(info, version, _served_role(table, version), error)
                    raise
                fresh.append(runners[version])
            if table.shadow is not None:
                if current is not None and current.table.shadow == table.shadow:
                    shadow_runner = current.shadow_runner
                if shadow_runner is None:
                    shadow_runner, shadow_problem = await self._load_shadow(info, table, current)
                    if shadow_runner is not None:
                        fresh.append(shadow_runner)
                if shadow_runner is not None and self.settings.shadow_timing_sample > 0:
                    timing_runner = await self._timing_runner(info, table, current, runners)
                    known = {id(r) for r in (*runners.values(), *(current.all_runners() if current else ()))}
                    if timing_runner is not None and id(timing_runner) not in known:
                        fresh.append(timing_runner)
        except BaseException:
            await asyncio.gather(*(r.close() for r in fresh), return_exceptions=True)
            raise
        await asyncio.gather(*(self._warm(info.name, r, schema) for r in fresh))
        return ModelState(info, table, runners, schema, shadow_runner, shadow_problem, timing_runner)

    async def _timing_runner(
        self, info: ModelInfo, table: RoutingTable, current: ModelState | None, runners: Mapping[int, Runner]
    ) -> Runner | None:
        """The shadow version as a served runner, to time a sample of shadow requests (`timing.py`): the
        one serving it when it also serves, else one of its own (kept while the shadow stays). None when
        it cannot be loaded in this process: then the shadow's latency is not judged (logged)."""
        assert table.shadow is not None
        if table.shadow in runners:
            return runners[table.shadow]
        if current is not None and current.table.shadow == table.shadow and current.timing_runner is not None:
            return current.timing_runner
        try:  # not `_observed`: its batches of one are no shadow batches (`pitstop_batch_rows`)
            details = await asyncio.to_thread(loading.version_info, self.ws, info.name, table.shadow)
            return await asyncio.to_thread(
                self._runner_factory, self.ws, info, details, self.settings, shadow=False
            )
        except Exception as error:
            log.error(
                "%s: shadow v%s not loaded in the gateway's process to time it as served calls are "
                "(its latency goes unjudged): %s: %s",
                info.name,
                table.shadow,
                type(error).__name__,
                error,
            )
            return None

    async def _load_shadow(
        self, info: ModelInfo, table: RoutingTable, current: ModelState | None
    ) -> tuple[Runner | None, str | None]:
        """The shadow's runner, or None and why it could not be loaded (logged when the reason is new)."""
        assert table.shadow is not None
        try:
            return await asyncio.to_thread(self._load, info, table.shadow, True), None
        except Exception as error:
            self._load_failed(info, table.shadow, "shadow", error)
            problem = f"shadow v{table.shadow} not loaded: {type(error).__name__}: {error}"
            if current is None or current.shadow_problem != problem:
                log.error(
                    "%s: %s; the champion serves without it, retried at every refresh", info.name, problem
                )
            return None, problem

    def _load_failed(self, info: ModelInfo, version: int, role: str, error: Exception) -> None:
        # the loader's own error first (`ModuleNotFoundError: No module named 'x'`), then the hint
        said = describe(error)
        if isinstance(error, VersionLoadError):
            said = f"{error.cause}; {error.hint}" if error.hint else error.cause
        self.load_failures.failed(info.name, info.id, version, role, said[:500], self.clock.now())

    def _load(self, info: ModelInfo, version: int, shadow: bool) -> Runner:
        details = loading.version_info(self.ws, info.name, version)
        runner = self._runner_factory(self.ws, info, details, self.settings, shadow=shadow)
        return _observed(runner, self.metrics, info.name)

    async def _warm(self, model: str, runner: Runner, schema: FeatureSchema) -> None:
        """One prediction on a made-up row, so the first real request pays no first-call costs.

        Best effort, waited for at most the warm-up timeout: a model that fails or is slow here still
        goes live (a broken shadow is measured, not hidden). A warm-up still running then is left to
        finish, since a shadow's idle-priority process may wait long for a CPU: the runner counts as
        warmed (in the heartbeat; the controller routes no users to a version some live gateway has
        not warmed, `health.not_warm`) once a warm-up succeeds, and one that failed is tried again at
        every poll (`warm_again`).
        """
        with contextlib.suppress(Exception):  # the outcome is `_warm_ended`'s
            await asyncio.wait_for(
                asyncio.shield(self._start_warm(model, runner, schema)), self._warm_timeout
            )

    def warm_again(self) -> None:
        """Start a warm-up of every served runner not warmed and not warming now (a live gateway does at
        every poll), without waiting for it: at most one warm-up per runner is in flight."""
        for name, state in self._states.items():
            for runner in state.all_runners():
                if id(runner) not in self._warmed and id(runner) not in self._warming:
                    self._start_warm(name, runner, state.schema)

    def _start_warm(self, model: str, runner: Runner, schema: FeatureSchema) -> asyncio.Future[list[float]]:
        future = runner.submit([schema.example()])
        self._warming[id(runner)] = future
        future.add_done_callback(lambda done: self._warm_ended(model, runner, done))
        return future

    def _warm_ended(self, model: str, runner: Runner, future: asyncio.Future[list[float]]) -> None:
        """Record a warm-up's outcome: warmed (and said in a heartbeat at once), or failed (logged once)."""
        key = id(runner)
        if self._warming.get(key) is future:
            del self._warming[key]
        error = asyncio.CancelledError("cancelled") if future.cancelled() else future.exception()
        if error is not None:
            if key not in self._cold:
                log.info(
                    "%s v%s: warm-up failed (%s: %s)", model, runner.version, type(error).__name__, error
                )
            self._cold.add(key)
            return
        self._cold.discard(key)
        if key not in self._warmed:
            self._warmed.add(key)
            self.heartbeat.beat_now()

    def _retire(self, runners: list[Runner]) -> None:
        """Close runners no longer routed to, once requests that picked them up have finished."""

        async def close_later() -> None:
            try:
                await asyncio.sleep(self.shadow.timeout + 1.0)
            finally:  # also when the gateway stops first
                self._warmed.difference_update(id(r) for r in runners)
                self._cold.difference_update(id(r) for r in runners)
                await asyncio.gather(*(r.close() for r in runners), return_exceptions=True)

        task = asyncio.get_running_loop().create_task(close_later())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _poll(self) -> None:
        """Refresh every `poll_interval`, or at once when a pushed change wakes it; then warm what is
        still cold."""
        interval = self.settings.poll_interval.total_seconds()
        while not self._stopping:
            with contextlib.suppress(TimeoutError):  # not wait_for: it can lose a cancellation (3.11)
                async with asyncio.timeout(interval):
                    await self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            try:
                await self.refresh_routing()
                self.warm_again()
            except Exception:  # the poll must never die
                log.exception("routing refresh crashed")


async def _outcome(future: asyncio.Future[list[float]], n: int) -> tuple[list[float], str | None]:
    try:
        return await future, None
    except Exception as error:
        return [math.nan] * n, f"{type(error).__name__}: {error}"[:500]


def _served_role(table: RoutingTable, version: int) -> str:
    if version == table.champion:
        return "champion"
    return "challenger" if version == table.challenger else "standby"


def _observed(runner: Runner, metrics: GatewayMetrics, model: str) -> Runner:
    """Count rows per predict call when the runner exposes its micro-batcher (both built-in ones do)."""
    batcher = getattr(runner, "batcher", None)
    if isinstance(batcher, MicroBatcher):
        batcher.on_batch = metrics.batch_size.labels(model, str(runner.version)).observe
    return runner
