"""The batched replay: recorded traffic routed, scored and judged interval by interval, in bulk.

What `gateway.Replay` does one request at a time, this does one controller interval at a time, with
the same parts where a decision is made: the routing table's hash and shares (`routing.table`), the
shadow's sample, the gateway's feature check, each model's `Predictor` and loss, and the real
`Controller` (lease, `decide`, transitions, events) on the replay's store. Only the evidence takes
another road: instead of logging every prediction and reading the window back with SQL at each look,
each interval's predictions are folded into a `rollout.ledger.Ledger`, so a look costs the window's
users and the replay's cost grows linearly with the traffic's length (issue 24).

Per interval (the requests between two looks, when the routing cannot change): the valid requests
are routed; each version scores all of its rows (served and shadow) in one call; a failed call is
split in halves until the rows that fail are found, so one bad row fails alone, as the gateway's
split does. Labels count once the clock reaches their `label_time`.

Latency is measured from real calls, a sample of them: per interval, up to `TIMED_CALLS` calls per
role and arm, each on the rows of one concurrency window (the micro-batch the gateway would have
made), and up to `TIMED_CALLS` single-row `timing` calls of the shadow's sample
(`serving.shadow_timing_sample`), as the gateway times its shadow. The latency rules count calls, so
they see fewer of them than live traffic would give them; every error-based number is exact.

Not replayed here: what only a live gateway does under load (shadow calls skipped for lack of
capacity, timeouts, the shadow's circuit breaker). A replay that must log every prediction (for a
report, or a kept store) runs through the gateway instead (`gateway.Replay`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from threadpoolctl import threadpool_limits

from pitstop import loading, model_input, registry
from pitstop.clock import ManualClock
from pitstop.losses import Scoring
from pitstop.registry import Task
from pitstop.replay.traffic import Progress, RequestIds, check_pace, traffic_request_ids
from pitstop.rollout.controller import Controller, evidence_window
from pitstop.rollout.evidence import Evidence
from pitstop.rollout.ledger import SERVED, SHADOW, TIMING, Ledger, Pairs, Predictions
from pitstop.rollout.phases import Phase
from pitstop.rollout.reads import phase_reads
from pitstop.rollout.records import StoredRollout, active_rollout
from pitstop.routing.store import current_routing
from pitstop.routing.table import RoutingTable, bucket
from pitstop.scoring import class_indices
from pitstop.serving.features import FeatureSchema, value_problem
from pitstop.serving.inprocess import Predictor
from pitstop.serving.remote import RemoteModel
from pitstop.workspace import Workspace

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Flags = npt.NDArray[np.bool_]

TIMED_CALLS = 8  # real calls timed per interval, role and arm (latency evidence)


class RemoteVersionError(Exception):
    """A version is served by a remote model server: only the gateway's replay calls one."""


@dataclass(frozen=True)
class Traffic:
    """The replay's requests as columns, in time order (see `traffic.prepare_traffic`)."""

    features: pd.DataFrame  # the traffic table itself (its feature columns are read, never copied)
    request_ids: RequestIds
    user_ids: npt.NDArray[np.object_]  # a user's id, or None
    units: Ints  # each request's unit: its user's, or its own without a user_id
    by_user: Flags
    times: Floats  # epoch seconds, as a gateway stamps a request
    label_times: Floats
    labels: Floats  # numbers; a multiclass model's: the class's index
    valid: Flags  # the gateway's feature check passes
    unit_count: int

    def __len__(self) -> int:
        return len(self.times)


def epoch_seconds(times: pd.Series) -> Floats:
    """UTC timestamps as the float epoch seconds `datetime.timestamp()` gives (whole microseconds)."""
    micros = times.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[us]")
    return np.asarray(micros.astype(np.int64), dtype=np.float64) / 1e6


def read_traffic(
    ws: Workspace, info: registry.ModelInfo, frame: pd.DataFrame, schema: FeatureSchema
) -> Traffic:
    """The columns a batched replay works on, from a prepared traffic table. A unit is a user, or, for
    a request without a user_id, the request itself (as `rows.unit` counts it)."""
    users = frame["user_id"].to_numpy(dtype=object)
    by_user = np.array([u is not None for u in users], dtype=bool)
    user_codes, known = pd.factorize(frame["user_id"])  # None: -1
    units = user_codes.astype(np.int64)
    anonymous = ~by_user
    units[anonymous] = len(known) + np.arange(int(anonymous.sum()))
    if info.task is Task.MULTICLASS:
        labels = class_indices(frame["label"], info.classes or [], "traffic: label").to_numpy(dtype=float)
    else:
        labels = frame["label"].to_numpy(dtype=float)
    return Traffic(
        features=frame,
        request_ids=traffic_request_ids(ws, info.name, frame),
        user_ids=users,
        units=units,
        by_user=by_user,
        times=epoch_seconds(frame["time"]),
        label_times=epoch_seconds(frame["label_time"]),
        labels=labels,
        valid=valid_rows(frame, schema),
        unit_count=len(known) + int(anonymous.sum()),
    )


def valid_rows(frame: pd.DataFrame, schema: FeatureSchema) -> Flags:
    """Which rows the gateway's feature check accepts (`FeatureSchema`): numeric columns checked at
    once, any other value by the gateway's own rule."""
    valid = np.ones(len(frame), dtype=bool)
    for name, kind in zip(schema.names, schema.kinds, strict=True):
        column = frame[name]
        numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
        if kind in ("float", "int", "any") and numeric:
            values = column.to_numpy(dtype=float)
            ok = np.isfinite(values)
            if kind == "int":
                ok &= values == np.floor(np.where(ok, values, 0.0))
                ok &= np.abs(values) < 2.0**63
            valid &= ok
        else:
            valid &= np.array([value_problem(v, kind) is None for v in column.tolist()], dtype=bool)
    return valid


class Scorer:
    """One version's model, scoring many rows per call; a failing call is split to find its rows."""

    def __init__(self, predictor: Predictor, traffic: pd.DataFrame, features: Sequence[str]) -> None:
        self.predictor = predictor
        self.traffic = traffic
        self.names = list(features)
        self.columns = [traffic[name].to_numpy() for name in self.names]  # views, not copies

    def score(self, rows: Ints) -> tuple[Any, Flags]:
        """The outputs for `rows` (a multiclass model's: a matrix) and which of them failed."""
        if not len(rows):
            return self._empty(), np.zeros(0, dtype=bool)
        try:
            output = self._call(rows)
        except Exception:  # the model's own failure: find the rows it fails on
            if len(rows) == 1:
                return self._empty(1), np.ones(1, dtype=bool)
            half = len(rows) // 2
            first, failed_first = self.score(rows[:half])
            second, failed_second = self.score(rows[half:])
            return np.concatenate([first, second]), np.concatenate([failed_first, failed_second])
        failed = ~np.isfinite(output).reshape(len(rows), -1).all(axis=1)
        return output, failed

    def timed(self, rows: Ints) -> float:
        """One real call on `rows` as the gateway makes it (JSON-like rows), its own duration in ms."""
        values = zip(*(column[rows].tolist() for column in self.columns), strict=True)  # Python scalars
        instances = [dict(zip(self.names, row, strict=True)) for row in values]
        try:
            return self.predictor.timed(instances).seconds * 1000.0
        except Exception:
            return math.nan  # a failed call's time says nothing of the model's speed

    def _call(self, rows: Ints) -> Any:
        return self.predictor.predict_table(self.traffic.iloc[rows])

    def _empty(self, rows: int = 0) -> Any:
        if self.predictor.task is Task.MULTICLASS:
            return np.full((rows, 2), np.nan)  # widened by concatenation only with its own kind
        return np.full(rows, np.nan)


def load_scorers(
    ws: Workspace, info: registry.ModelInfo, versions: Sequence[int], traffic: pd.DataFrame
) -> dict[int, Scorer]:
    """Each version's scorer; RemoteVersionError when one is served by a remote model server."""
    scorers = {}
    names = list(info.features or ws.version(info.name, versions[0]).lineage.features)
    for number in versions:
        version = ws.version(info.name, number)
        loaded = loading.load_version(ws, info, version)
        if isinstance(loaded, RemoteModel):
            raise RemoteVersionError(f"{info.name} version {number} is served by {loaded.url}")
        signature = model_input.from_lineage(names, version.lineage, loaded)
        scorers[number] = Scorer(Predictor(loaded, signature=signature, task=info.task), traffic, names)
    return scorers


class BatchedReplay:
    """Replays traffic interval by interval into a rollout of the replay's store (see the module)."""

    def __init__(
        self,
        ws: Workspace,
        model: str,
        frame: pd.DataFrame,
        clock: ManualClock,
        interval: timedelta,
        window: timedelta,
        progress: Progress | None,
    ) -> None:
        check_pace(interval, window)
        self.ws, self.clock, self.interval, self.window, self.progress = ws, clock, interval, window, progress
        self.info = ws.model(model)
        self.scoring = Scoring.of(self.info)
        with ws.reading() as conn:
            stored = active_rollout(conn, self.info.id)
        assert stored is not None, "a replay starts its rollout first"
        self.rollout = stored
        champion = ws.version(model, stored.state.champion_version)
        schema = FeatureSchema.from_lineage(
            list(self.info.features or champion.lineage.features), champion.lineage
        )
        self.traffic = read_traffic(ws, self.info, frame, schema)
        self.first_time: datetime = frame["time"].iloc[0].to_pydatetime()
        versions = (stored.state.champion_version, stored.state.challenger_version)
        self.scorers = load_scorers(ws, self.info, versions, self.traffic.features)
        self.ledger = Ledger(self.traffic.unit_count, stored.policy.ab_test.label_maturation)
        self.settings = ws.config.serving
        self.sent = self.failed = self.delivered = 0
        self.served = {"champion": 0, "challenger": 0}
        self.ended = False

    def run(self) -> None:
        """Every interval's requests, then a look, until the rollout ends or the traffic has ended and
        its labels have arrived (then one look more), as `gateway.Replay` paces its looks."""
        controller = Controller(self.ws, clock=self.clock, interval=self.interval, evidence=self._evidence)
        times, total = self.traffic.times, len(self.traffic)
        self._restart()
        # the models' native threads as a served runner has them (`inprocess.limit_native_threads`): idle
        # OpenMP threads spinning between the many small timed calls would cost more than they save
        limits = threadpool_limits(limits=self.settings.model_threads)
        try:
            tick = self.first_time + self.interval
            first = 0
            while not self.ended:
                last = int(np.searchsorted(times, tick.timestamp(), side="left"))
                self._replay(first, last)
                first = last
                if self.progress:
                    self.progress(first, total)
                self._look(controller, tick)
                tick += self.interval
                if first >= total and self.traffic.label_times.max() <= (tick - self.interval).timestamp():
                    break
            if not self.ended:
                self._look(controller, max(tick, self.clock.now()))
        finally:
            controller.release()
            limits.restore_original_limits()
        self.delivered = int((self.traffic.label_times <= self.clock.now().timestamp()).sum())

    def _evidence(self, stored: StoredRollout, now: datetime) -> Evidence:
        window = evidence_window(stored, self.info, now)
        return self.ledger.evidence(window, phase_reads(stored.state.phase, stored.policy))

    def _look(self, controller: Controller, at: datetime) -> None:
        self.clock.set(max(at, self.clock.now()))
        before = self.rollout.state.phase_routing_version
        results = controller.tick()
        if not any(r.applied and r.decision.changes_phase for r in results):
            return
        with self.ws.reading() as conn:
            stored = active_rollout(conn, self.info.id)
        if stored is None:
            self.ended = True
            return
        self.rollout = stored
        if stored.state.phase_routing_version != before:
            self._restart()

    def _restart(self) -> None:
        state = self.rollout.state
        matures = state.phase in (Phase.AB_TEST, Phase.RAMP)
        self.ledger.restart(state.phase_routing_version, state.phase_started_at, matures=matures)

    def _table(self) -> RoutingTable:
        with self.ws.reading() as conn:
            table = current_routing(conn, self.info.id)
        assert table is not None
        return table

    def _replay(self, first: int, last: int) -> None:
        """The requests [first, last) of one interval: routed, scored, counted."""
        if last <= first:
            return
        t = self.traffic
        rows = np.arange(first, last)[t.valid[first:last]]
        self.sent += last - first
        self.failed += (last - first) - len(rows)
        if not len(rows):
            return
        table = self._table()
        plan = _Routed.of(table, t, rows, self.settings.shadow_sample, self.settings.shadow_timing_sample)
        outputs = {v: self.scorers[v].score(plan.rows_of(v)) for v in plan.versions()}
        losses = {v: self._losses(plan.rows_of(v), *outputs[v]) for v in outputs}
        for role, arm, version, chosen in plan.parts():
            self._add(role, arm, version, chosen, plan.rows_of(version), losses[version])
        self._add_pairs(plan, losses)
        self._time_calls(plan)

    def _losses(self, rows: Ints, output: Any, failed: Flags) -> Floats:
        out = np.full(len(rows), np.nan)
        ok = ~failed
        if ok.any():
            out[ok] = self.scoring.loss.per_request(self.traffic.labels[rows[ok]], output[ok])
        return out

    def _add(self, role: str, arm: str, version: int, chosen: Ints, scored: Ints, losses: Floats) -> None:
        t = self.traffic
        at = np.searchsorted(scored, chosen)
        failed = np.isnan(losses[at])
        if role == SERVED:
            self.served[arm] += len(chosen)
            self.failed += int(failed.sum())
        self.ledger.add(
            Predictions(
                role, arm, t.units[chosen], t.by_user[chosen], t.times[chosen], t.label_times[chosen],
                failed, losses[at],
            )
        )  # fmt: skip

    def _add_pairs(self, plan: _Routed, losses: dict[int, Floats]) -> None:
        """The shadowed requests both versions predicted: the served one is the version not in shadow."""
        if plan.shadow is None or not len(plan.shadowed):
            return
        served = plan.challenger if plan.shadow == plan.champion else plan.champion
        shadowed = plan.shadowed
        on_served = losses[served][np.searchsorted(plan.rows_of(served), shadowed)]
        on_shadow = losses[plan.shadow][np.searchsorted(plan.rows_of(plan.shadow), shadowed)]
        a, b = (on_shadow, on_served) if plan.shadow == plan.champion else (on_served, on_shadow)
        both = ~np.isnan(a) & ~np.isnan(b)
        chosen, t = shadowed[both], self.traffic
        self.ledger.add_pairs(
            Pairs(t.units[chosen], t.times[chosen], t.label_times[chosen], a[both], b[both])
        )

    def _time_calls(self, plan: _Routed) -> None:
        """Up to `TIMED_CALLS` real calls per role and arm, each a concurrency window's rows."""
        groups = _windows(self.traffic.times, plan.rows, self.window.total_seconds())
        for role, arm, version, chosen in plan.parts():
            if role == TIMING:
                calls = [chosen[k : k + 1] for k in _spread(len(chosen), TIMED_CALLS)]
            else:
                in_group = [chosen[(chosen >= lo) & (chosen < hi)] for lo, hi in groups]
                filled = [g for g in in_group if len(g)]
                calls = [filled[k] for k in _spread(len(filled), TIMED_CALLS)]
            for rows in calls:
                latency = self.scorers[version].timed(rows)
                if not math.isnan(latency):
                    self.ledger.add_call(role, arm, latency, len(rows))


def _spread(count: int, most: int) -> list[int]:
    """Up to `most` indices spread evenly over range(count)."""
    if count <= most:
        return list(range(count))
    return sorted({int(k * count / most) for k in range(most)})


def _windows(times: Floats, rows: Ints, width: float) -> list[tuple[int, int]]:
    """The rows grouped as the gateway replay sends them: each group the requests within `width`
    seconds of its first (row-number bounds [lo, hi))."""
    groups, k = [], 0
    chosen_times = times[rows]
    while k < len(rows):
        end = int(np.searchsorted(chosen_times, chosen_times[k] + width, side="left"))
        end = max(end, k + 1)
        groups.append((int(rows[k]), int(rows[end - 1]) + 1))
        k = end
    return groups


def _served_by_challenger(table: RoutingTable, traffic: Traffic, rows: Ints) -> Flags:
    """Which of `rows` the table's challenger serves: `RoutingTable.route`, sticky by user, else by
    request id."""
    if table.challenger is None or table.challenger_share <= 0:
        return np.zeros(len(rows), dtype=bool)
    users, ids = traffic.user_ids, traffic.request_ids
    keys = [users[r] if users[r] is not None else ids[r] for r in rows.tolist()]
    return np.array([bucket(table.salt, key) < table.challenger_share for key in keys], dtype=bool)


def _sampled(rows: Ints, traffic: Traffic, salt: str, share: float) -> Ints:
    """The rows whose request id falls in the first `share` of `salt`'s buckets (the gateway's
    shadow and timing samples)."""
    if share >= 1.0 or not len(rows):
        return rows
    ids = traffic.request_ids.of(rows.tolist())
    chosen: Ints = rows[np.array([bucket(salt, i) < share for i in ids], dtype=bool)]
    return chosen


@dataclass(frozen=True)
class _Routed:
    """One interval's valid requests routed by a table: who serves each, who shadows which."""

    rows: Ints
    champion: int
    challenger: int
    challenger_served: Flags
    shadow: int | None
    shadowed: Ints
    timed: Ints

    @classmethod
    def of(cls, table: RoutingTable, traffic: Traffic, rows: Ints, sample: float, timing: float) -> _Routed:
        champion, challenger = table.champion, table.challenger if table.challenger is not None else -1
        by_challenger = _served_by_challenger(table, traffic, rows)
        shadowed = timed = np.zeros(0, dtype=np.int64)
        if table.shadow is not None:
            served_version = np.where(by_challenger, challenger, champion)
            shadowed = _sampled(rows[served_version != table.shadow], traffic, f"shadow:{table.salt}", sample)
            timed = _sampled(shadowed, traffic, f"timing:{table.salt}", timing)
        return cls(rows, champion, challenger, by_challenger, table.shadow, shadowed, timed)

    def arm_of(self, version: int) -> str:
        return "champion" if version == self.champion else "challenger"

    def parts(self) -> list[tuple[str, str, int, Ints]]:
        """(role, arm, version, rows) of every group of predictions the interval makes."""
        out = [
            (SERVED, "champion", self.champion, self.rows[~self.challenger_served]),
            (SERVED, "challenger", self.challenger, self.rows[self.challenger_served]),
        ]
        if self.shadow is not None:
            arm = self.arm_of(self.shadow)
            out += [(SHADOW, arm, self.shadow, self.shadowed), (TIMING, arm, self.shadow, self.timed)]
        return [part for part in out if len(part[3])]

    def versions(self) -> list[int]:
        return sorted({version for _, _, version, _ in self.parts() if version >= 0})

    def rows_of(self, version: int) -> Ints:
        """Every row `version` scores (served or shadow), ascending."""
        chosen = [rows for role, _, v, rows in self.parts() if v == version and role != TIMING]
        return np.unique(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)
