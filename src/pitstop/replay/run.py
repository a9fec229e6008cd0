"""Replay: recorded traffic through the same gateway, prediction log, label join and controller, on a
simulated clock, in a throwaway store. A week of traffic takes seconds; a team tries a policy on last
month's traffic before trusting it live.

Requests are sent in their time order; the ones within `concurrency_window` of each other are in flight
together (so micro-batching and latency behave as they would under that load). Labels are delivered when
the clock reaches their `label_time`. The controller looks every `interval` of simulated time. Model
latency is measured from the real calls.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import resource
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from time import perf_counter
from typing import Any

import numpy as np
import pandas as pd
import yaml

from pitstop import registry
from pitstop.clock import ManualClock
from pitstop.config import Config, Policy
from pitstop.datasets import file_format, parse_times, read_table
from pitstop.errors import PitstopError, UsageError
from pitstop.events import EventKind, list_events
from pitstop.losses import LossKind, check_percentage_labels
from pitstop.registry import Task
from pitstop.rollout.actions import start_rollout
from pitstop.rollout.controller import Controller
from pitstop.rollout.records import active_rollout, get_rollout
from pitstop.routing.store import current_routing
from pitstop.scoring import class_indices
from pitstop.serving.gateway import Gateway, Instance
from pitstop.serving.labels import Label
from pitstop.store.predictions import summaries
from pitstop.workspace import Workspace

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SimulationResult:
    model: str
    champion: int
    challenger: int
    outcome: str  # promoted | rejected | rolled_back | aborted | undecided (traffic ran out first)
    stage: str | None
    reason: str
    rule: str | None
    timeline: list[dict[str, Any]]
    served: dict[str, int]
    requests: int
    failed_requests: int
    labels: int
    simulated_hours: float
    wall_seconds: float
    rollout_id: int
    workspace: Path
    evidence: dict[str, Any] = field(default_factory=dict)
    peak_rss_bytes: int = 0  # the replaying process's peak resident memory, up to the replay's end

    @property
    def promoted(self) -> bool:
        return self.outcome == "promoted"

    @property
    def requests_per_second(self) -> float:
        """Requests replayed per second of wall time."""
        return self.requests / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "champion": self.champion,
            "challenger": self.challenger,
            "outcome": self.outcome,
            "stage": self.stage,
            "reason": self.reason,
            "rule": self.rule,
            "timeline": self.timeline,
            "served": self.served,
            "requests": self.requests,
            "failed_requests": self.failed_requests,
            "labels": self.labels,
            "simulated_hours": self.simulated_hours,
            "wall_seconds": self.wall_seconds,
            "requests_per_second": self.requests_per_second,
            "peak_rss_bytes": self.peak_rss_bytes,
            "rollout_id": self.rollout_id,
            "workspace": str(self.workspace),
        }


def load_traffic(path: str | Path, features: list[str], classes: list[Any] | None = None) -> pd.DataFrame:
    """A traffic table: `time`, `user_id`, the features, `label`; optional `request_id`, `label_time`."""
    source = Path(path)
    if not source.is_file():
        raise UsageError("no such file", field="traffic", given=str(source))
    frame = read_table(source, file_format(source), str(source))
    return prepare_traffic(frame, features, str(source), classes=classes)


def prepare_traffic(
    frame: pd.DataFrame, features: list[str], source: str = "traffic", *, classes: list[Any] | None = None
) -> pd.DataFrame:
    """Validate and normalise a traffic table: times parsed, labels numbers (a multiclass model's
    labels: its `classes`, kept as they are), request ids checked, sorted.

    Without a `request_id` column the table stays without one: the replay names its requests after
    its rollout (see `_replay_request_ids`), so that replays sharing a store never share an id.
    """
    missing = [c for c in ["time", "user_id", *features, "label"] if c not in frame.columns]
    if missing:
        raise UsageError(
            f"{source}: missing column(s) {', '.join(missing)} (a traffic table needs time, user_id, "
            "the model's features and label)"
        )
    if frame.empty:
        raise UsageError(f"{source}: no rows")
    out = frame.reset_index(drop=True)
    # Python datetimes (the clock's) hold microseconds: drop finer digits once, here.
    out["time"] = parse_times(out["time"], "time", source).dt.floor("us")
    out["label_time"] = (
        parse_times(out["label_time"], "label_time", source).dt.floor("us")
        if "label_time" in out
        else out["time"]
    )
    if (out["label_time"] < out["time"]).any():
        raise UsageError(f"{source}: a label_time is before its request's time")
    if classes is None:
        out["label"] = _labels(out["label"], source)
    else:
        class_indices(out["label"], classes, f"{source}: label")  # each one of the model's classes
    if "request_id" in out:
        out["request_id"] = _request_ids(out["request_id"], source)
    # A missing user stays missing (not the text "nan"): the request is then bucketed by its id.
    out["user_id"] = pd.Series([None if pd.isna(u) else str(u) for u in out["user_id"]], dtype=object)
    return out.sort_values("time", kind="stable").reset_index(drop=True)


def _labels(values: pd.Series, source: str) -> pd.Series:
    """The labels as floats; a missing, non-numeric or infinite one is named with its row."""
    if values.isna().any():
        raise UsageError(
            f"{source}: label is missing at {_rows(values.isna())}; every request needs its label"
        )
    numbers = pd.to_numeric(values, errors="coerce").astype(float)
    bad = numbers.isna() | numbers.abs().eq(np.inf)
    if bad.any():
        shown = ", ".join(repr(v) for v in values[bad].head(_SHOWN))
        raise UsageError(
            f"{source}: label is not a finite number at {_rows(bad)} ({shown}); "
            "labels are numbers (1 or 0 for a class)"
        )
    return numbers


def _request_ids(values: pd.Series, source: str) -> pd.Series:
    """The request ids as text; a blank or repeated one is named with its rows."""
    ids = pd.Series([None if pd.isna(v) else str(v).strip() for v in values], dtype=object)
    blank = ids.isna() | (ids == "")
    if blank.any():
        raise UsageError(
            f"{source}: request_id is missing at {_rows(blank)}; give every row an id, or drop the "
            "column and the replay names the requests"
        )
    repeated = ids.duplicated(keep=False)
    if repeated.any():
        first = ids[repeated].iloc[0]
        raise UsageError(
            f"{source}: request_id {first!r} is used more than once (at {_rows(ids == first)}); "
            "request ids must be unique"
        )
    return ids


_SHOWN = 5  # rows named in an error message; the rest are counted


def _rows(mask: pd.Series) -> str:
    """`row 3` or `rows 3, 7 (and 2 more)`: data rows counted from 1, the header not counted."""
    numbers = [str(i + 1) for i in mask.to_numpy().nonzero()[0]]
    more = f" (and {len(numbers) - _SHOWN} more)" if len(numbers) > _SHOWN else ""
    return f"row{'s' if len(numbers) > 1 else ''} {', '.join(numbers[:_SHOWN])}{more}"


def _throwaway_workspace(source: Workspace, policy: Policy, folder: Path, clock: ManualClock) -> Workspace:
    config = Config(**policy.model_dump(), serving=source.config.serving, controller=source.config.controller)
    data = config.model_dump(mode="json", exclude={"database_url", "artifact_store"})
    # Named in the file too, so `pitstop … -w FOLDER` opens a kept replay like any workspace.
    data["database_url"] = replay_store_url(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pitstop.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return Workspace.init(folder, clock=clock, database_url=replay_store_url(folder))


def replay_salt(seed: int) -> str:
    """The routing salt of a replay: fixed by its seed, so a replay can be repeated exactly."""
    return hashlib.sha256(f"pitstop-replay-{seed}".encode()).hexdigest()[:16]


def replay_store_url(folder: Path) -> str:
    """The replay's own SQLite store, never the user's (whatever PITSTOP_DATABASE_URL says)."""
    return f"sqlite:///{folder / 'replay.db'}"


def _copy_version(source: Workspace, target: Workspace, model: registry.ModelInfo, version: int) -> None:
    """The version's verified artifact and lineage, under the same version number."""
    details = source.version(model.name, version)
    source.load(model.name, version)  # re-checks the sha256 before anything is copied
    data = source.artifacts.read(details.artifact_uri)
    assert data is not None
    suffix = f".{details.format}"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"model{suffix}"
        path.write_bytes(data)
        uri, sha256, size = target.artifacts.put(path, "models", suffix)
    with target.writing() as conn:
        info = registry.get_model(conn, model.name, for_update=True)
        registry.add_version(
            conn,
            info,
            artifact_uri=uri,
            sha256=sha256,
            size_bytes=size,
            lineage=details.lineage,
            now=target.clock.now(),
            actor=details.created_by,
            fmt=details.format,
            trusted_types=details.trusted_types,
            signature=details.signature,
            number=version,
        )


def simulate(
    source: Workspace,
    model: str,
    *,
    champion: int | str,
    challenger: int | str,
    traffic: pd.DataFrame,
    policy: Policy | None = None,
    interval: timedelta = timedelta(minutes=5),
    concurrency_window: timedelta = timedelta(seconds=1),
    workdir: Path,
    progress: Progress | None = None,
    seed: int = 0,
) -> SimulationResult:
    """Replay `traffic` (see `prepare_traffic`) for one challenger; returns the outcome and timeline.

    The replay's own store and artifacts go to `workdir` (the caller keeps or deletes it). `seed`
    makes the routing salt, so the same traffic, versions, policy and seed split the same users and
    reach the same verdict (latency aside: it is measured from real calls).
    """
    check_pace(interval, concurrency_window)
    info = source.model(model)
    versions = (source.version(model, champion).version, source.version(model, challenger).version)
    if versions[0] == versions[1]:
        raise UsageError("must be another version than the champion", field="challenger")
    features = info.features or source.version(model, versions[0]).lineage.features
    frame = prepare_traffic(traffic, features, classes=info.classes if info.task is Task.MULTICLASS else None)
    if source.loss(info).kind is LossKind.PERCENTAGE:  # refused now, not by the gateway mid-replay
        check_percentage_labels(frame["label"], "traffic")
    start = frame["time"].iloc[0].to_pydatetime() - timedelta(seconds=1)
    clock = ManualClock(start)
    ws = _throwaway_workspace(source, policy or source.config.policy, workdir, clock)
    try:  # closed on every path, so the caller can remove `workdir` whatever happened
        rollout_id = _start_replay_rollout(source, ws, info, versions, seed)
        began = perf_counter()
        replay = Replay(ws, model, frame, features, clock, interval, concurrency_window, progress)
        asyncio.run(replay.run())
    finally:
        ws.close()
    return _result(
        Workspace(workdir, database_url=replay_store_url(workdir)),
        model,
        versions,
        rollout_id,
        replay,
        perf_counter() - began,
        start,
    )


def _start_replay_rollout(
    source: Workspace, ws: Workspace, info: registry.ModelInfo, versions: tuple[int, int], seed: int
) -> int:
    """The model and both versions copied into the replay's store, and the rollout started there."""
    ws.create_model(
        info.name,
        task=info.task,
        target=info.target,
        time_column=info.time_column,
        features=info.features if info.features is not None else "all",  # None: its first version fixes them
        id_columns=info.id_columns,
        allow_pickle=info.allow_pickle,
        loss=info.loss,
    )
    if info.classes is not None:
        with ws.writing() as conn:
            registry.set_classes(conn, registry.get_model(conn, info.name), info.classes)
    for number in sorted(versions):
        _copy_version(source, ws, info, number)
    ws.set_champion(info.name, versions[0], reason="replay: the champion of the recorded period")
    stored = start_rollout(
        ws,
        info.name,
        versions[1],
        skip_gate=True,
        salt=replay_salt(seed),
        actor="simulate",
        reason="replay of recorded traffic: stages 3-5 only (the offline gate is separate)",
    )
    return stored.state.id


def check_pace(interval: timedelta, window: timedelta) -> None:
    """A replay's controller interval must move the clock, and its concurrency window cannot be negative."""
    if interval <= timedelta(0):
        raise UsageError(
            f"interval must be longer than zero, got {interval} (the controller would never look)"
        )
    if window < timedelta(0):
        raise UsageError(f"concurrency window cannot be negative, got {window}")


def _replay_request_ids(ws: Workspace, model: str, count: int) -> list[str]:
    """Ids for traffic that has none, in time order: `r{rollout}-{i}` during a rollout, else
    `t{routing table version}-{i}` (traffic replayed with no rollout active).

    Labels are kept one per (model, request id), so replays sharing a store (the demo's rollouts, one
    after another, or several replays into one rollout) must never repeat an id, or each would
    overwrite the labels of the one before: a later replay continues the numbering. The ids are also
    the same on every run of the same replays: requests without a user_id are routed by them.
    """
    with ws.reading() as conn:
        info = registry.get_model(conn, model)
        stored = active_rollout(conn, info.id)
        table = current_routing(conn, info.id)
        prefix = f"r{stored.state.id}-" if stored else f"t{table.version if table else 0}-"
        used = summaries.request_ids_used(conn, info.id, prefix)
    return [f"{prefix}{i}" for i in range(used, used + count)]


class Replay:
    """Drives recorded traffic through a gateway (and, when given, a controller) on a manual clock."""

    def __init__(
        self,
        ws: Workspace,
        model: str,
        frame: pd.DataFrame,
        features: list[str],
        clock: ManualClock,
        interval: timedelta,
        window: timedelta,
        progress: Progress | None,
    ) -> None:
        check_pace(interval, window)
        self.ws, self.model, self.clock, self.interval, self.window = ws, model, clock, interval, window
        self.progress = progress
        self.times = [t.to_pydatetime() for t in frame["time"]]
        ids = (
            list(frame["request_id"]) if "request_id" in frame else _replay_request_ids(ws, model, len(frame))
        )
        self.instances = [
            Instance(features=dict(zip(features, values, strict=True)), user_id=user, request_id=rid)
            for values, user, rid in zip(
                frame[features].itertuples(index=False, name=None), frame["user_id"], ids, strict=True
            )
        ]
        self.labels: list[tuple[datetime, int, Label]] = [
            (
                t.to_pydatetime(),
                i,
                Label(rid, value if isinstance(value, str) else float(value), t.to_pydatetime()),
            )
            for i, (t, rid, value) in enumerate(zip(frame["label_time"], ids, frame["label"], strict=True))
        ]
        heapq.heapify(self.labels)
        self.failed = 0
        self.sent = 0  # requests replayed (the replay stops once the rollout has ended)
        self.delivered = 0
        self.ended = False

    async def run(self, *, decide: bool = True) -> None:
        """Send every request and label in time order; with `decide`, a controller looks every interval."""
        # Requests of one window are submitted together, so batches form without waiting on the wall clock.
        # Shadows on a thread: a replay has no users to protect, and at idle priority beside a replay that
        # keeps a CPU busy a shadow could wait past its timeout, making the outcome depend on the machine.
        settings = self.ws.config.serving.model_copy(
            update={"batch_max_wait": timedelta(0), "shadow_process": False}
        )
        gateway = Gateway(self.ws, clock=self.clock, poll=False, settings=settings, shadow_batch_wait=0.0)
        controller = Controller(self.ws, clock=self.clock, interval=self.interval) if decide else None
        await gateway.start()
        try:
            next_tick = self.times[0] + self.interval
            i, total = 0, len(self.times)
            while i < total and not self.ended:
                group_end = min(self.times[i] + self.window, next_tick)
                j = i
                while j < total and self.times[j] < group_end:
                    j += 1
                await self._deliver_labels(gateway, self.times[i])
                await self._send(gateway, i, max(j, i + 1))
                i = max(j, i + 1)
                if self.progress:
                    self.progress(i, total)
                upcoming = self.times[i] if i < total else None
                while not self.ended and (upcoming is None or upcoming >= next_tick):
                    await self._tick(gateway, controller, next_tick)
                    next_tick += self.interval
                    if upcoming is None and not self.labels:
                        break
            if not self.ended:
                await self._tick(gateway, controller, max(next_tick, self.clock.now()))
        finally:
            if controller is not None:
                controller.release()
            await gateway.stop()

    async def _send(self, gateway: Gateway, first: int, last: int) -> None:
        async def one(k: int) -> None:
            self.clock.set(max(self.times[k], self.clock.now()))
            try:
                await gateway.predict(self.model, [self.instances[k]])
            except PitstopError:
                self.failed += 1

        await asyncio.gather(*(one(k) for k in range(first, last)))
        self.sent += last - first
        await gateway.shadow.drain()  # the window's shadow work ends before the next window begins

    async def _deliver_labels(self, gateway: Gateway, until: datetime) -> None:
        """Labels whose time has come, received at `until` (the clock moves there first)."""
        self.clock.set(max(until, self.clock.now()))
        due = []
        while self.labels and self.labels[0][0] <= until:
            due.append(heapq.heappop(self.labels)[2])
        for start in range(0, len(due), 5000):
            await gateway.add_labels(self.model, due[start : start + 5000])
        self.delivered += len(due)

    async def _tick(self, gateway: Gateway, controller: Controller | None, at: datetime) -> None:
        self.clock.set(max(at, self.clock.now()))
        await self._deliver_labels(gateway, self.clock.now())
        await gateway.drain()
        if controller is None:
            return
        results = await asyncio.to_thread(controller.tick)
        if any(r.applied and r.decision.changes_phase for r in results):
            await gateway.refresh_routing()
            with self.ws.reading() as conn:
                self.ended = active_rollout(conn, registry.get_model(conn, self.model).id) is None


def _result(
    ws: Workspace,
    model: str,
    versions: tuple[int, int],
    rollout_id: int,
    replay: Replay,
    wall: float,
    start: datetime,
) -> SimulationResult:
    with ws.reading() as conn:
        info = registry.get_model(conn, model)
        stored = get_rollout(conn, rollout_id)
        events = [
            e
            for e in list_events(conn, info.id, rollout_id=rollout_id)
            if e.kind is EventKind.ROLLOUT_TRANSITION
        ]
        served = summaries.served_per_arm(conn, info.id)
    ws.close()
    state = stored.state
    last = events[-1] if events else None
    status = stored.status or {}
    return SimulationResult(
        model=model,
        champion=versions[0],
        challenger=versions[1],
        outcome=state.outcome.value if state.outcome else "undecided",
        stage=state.stage if state.outcome else state.phase.value,
        reason=state.reason or status.get("reason") or "the traffic ended before a decision",
        rule=last.rule if state.outcome and last else status.get("rule"),
        timeline=[
            {
                "time": e.time.isoformat(),
                "from": e.from_state,
                "to": e.to_state,
                "rule": e.rule,
                "reason": e.reason,
                "actor": e.actor,
                "numbers": e.data,
            }
            for e in events
        ],
        served={"champion": int(served.get("champion", 0)), "challenger": int(served.get("challenger", 0))},
        requests=replay.sent,
        failed_requests=replay.failed,
        labels=replay.delivered,
        simulated_hours=(replay.clock.now() - start).total_seconds() / 3600,
        wall_seconds=wall,
        rollout_id=rollout_id,
        workspace=ws.path,
        evidence=status.get("numbers") or {},
        peak_rss_bytes=peak_rss_bytes(),
    )


def peak_rss_bytes() -> int:
    """This process's peak resident set size so far, in bytes (`getrusage` counts kilobytes on Linux,
    bytes on macOS): what a replay's memory bound is checked against."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)
