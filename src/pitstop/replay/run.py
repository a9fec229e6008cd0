"""`simulate`: a challenger's rollout replayed on recorded traffic, on a simulated clock, in a
throwaway store, through the real routing, models, decisions and controller. A month of traffic takes
seconds to minutes; a team tries a policy on last month's traffic before trusting it live.

By default the replay is batched (`batched.py`): each controller interval's requests are routed and
scored in bulk and the evidence folded in memory. `through_gateway` sends every request through the
real gateway instead (`gateway.py`), logging every prediction to the replay's store, which a report or
a kept store needs; both reach the same decisions on the same traffic (tests/replay/test_batched.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import resource
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from time import perf_counter
from typing import Any

import pandas as pd
import yaml

from pitstop import registry
from pitstop.clock import ManualClock
from pitstop.config import Config, Policy
from pitstop.errors import UsageError
from pitstop.events import EventKind, list_events
from pitstop.losses import LossKind, check_percentage_labels
from pitstop.registry import Task
from pitstop.replay.batched import TIMED_CALLS, BatchedReplay
from pitstop.replay.gateway import Replay
from pitstop.replay.scorer import RemoteVersionError
from pitstop.replay.traffic import Progress, check_pace, prepare_traffic
from pitstop.rollout.actions import start_rollout
from pitstop.rollout.records import get_rollout
from pitstop.store.predictions import summaries
from pitstop.workspace import Workspace


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
    way: str = "batched"  # batched | gateway (`through_gateway`, or a version on a remote model server)
    # batched only (None through the gateway, which times every call): the champion's calls timed, and
    # the first look at which they bounded its p99, from which the latency rules could act (None: never)
    champion_calls_timed: int | None = None
    latency_rules_from: datetime | None = None

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
            "way": self.way,
            "champion_calls_timed": self.champion_calls_timed,
            "latency_rules_from": None
            if self.latency_rules_from is None
            else self.latency_rules_from.isoformat(),
            "rollout_id": self.rollout_id,
            "workspace": str(self.workspace),
        }


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
    through_gateway: bool = False,
    timed_calls: int = TIMED_CALLS,
) -> SimulationResult:
    """Replay `traffic` (see `prepare_traffic`) for one challenger; returns the outcome and timeline.

    The replay's own store and artifacts go to `workdir` (the caller keeps or deletes it). `seed`
    makes the routing salt, so the same traffic, versions, policy and seed split the same users and
    reach the same verdict (latency aside: it is measured from real calls). `through_gateway` sends
    each request through the gateway and logs it (slower; what a report of the replay reads); a
    version served by a remote model server is always replayed that way. `timed_calls`: the real
    model calls a batched replay times per look interval, role and arm, for the latency rules.
    """
    check_pace(interval, concurrency_window)
    if timed_calls < 0:
        raise UsageError(f"cannot be negative, got {timed_calls}", field="timed_calls")
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
        pace = _Pace(interval, concurrency_window, timed_calls, through_gateway)
        counts = _replay(ws, model, frame, features, clock, pace, progress)
        wall = perf_counter() - began
    finally:
        ws.close()
    return _result(
        Workspace(workdir, database_url=replay_store_url(workdir)),
        model,
        versions,
        rollout_id,
        counts,
        wall,
        start,
    )


@dataclass(frozen=True)
class _Counts:
    """What a replay sent and served, whichever way it ran."""

    sent: int
    failed: int
    labels: int
    served: dict[str, int] | None  # None: count the prediction log's
    ended_at: datetime
    way: str
    champion_calls_timed: int | None = None
    latency_rules_from: datetime | None = None


@dataclass(frozen=True)
class _Pace:
    """How a replay is run: looks every `interval`, requests in flight together within `window`."""

    interval: timedelta
    window: timedelta
    timed_calls: int
    through_gateway: bool


def _replay(
    ws: Workspace,
    model: str,
    frame: pd.DataFrame,
    features: list[str],
    clock: ManualClock,
    pace: _Pace,
    progress: Progress | None,
) -> _Counts:
    interval, window = pace.interval, pace.window
    if not pace.through_gateway:
        try:
            batched = BatchedReplay(
                ws, model, frame, clock, interval, window, progress, timed_calls=pace.timed_calls
            )
        except RemoteVersionError:
            pass  # a remote model server is called by the gateway's runner only
        else:
            batched.run()
            return _Counts(
                batched.sent,
                batched.failed,
                batched.delivered,
                batched.served,
                clock.now(),
                "batched",
                batched.champion_calls_timed,
                batched.latency_rules_from,
            )
    replay = Replay(ws, model, frame, features, clock, interval, window, progress)
    asyncio.run(replay.run())
    return _Counts(replay.sent, replay.failed, replay.delivered, None, clock.now(), "gateway")


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


def _result(
    ws: Workspace,
    model: str,
    versions: tuple[int, int],
    rollout_id: int,
    counts: _Counts,
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
        served = counts.served if counts.served is not None else summaries.served_per_arm(conn, info.id)
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
        requests=counts.sent,
        failed_requests=counts.failed,
        labels=counts.labels,
        simulated_hours=(counts.ended_at - start).total_seconds() / 3600,
        wall_seconds=wall,
        rollout_id=rollout_id,
        workspace=ws.path,
        evidence=status.get("numbers") or {},
        peak_rss_bytes=peak_rss_bytes(),
        way=counts.way,
        champion_calls_timed=counts.champion_calls_timed,
        latency_rules_from=counts.latency_rules_from,
    )


def peak_rss_bytes() -> int:
    """This process's peak resident set size so far, in bytes (`getrusage` counts kilobytes on Linux,
    bytes on macOS): what a replay's memory bound is checked against."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)
