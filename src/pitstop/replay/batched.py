"""The batched replay: recorded traffic routed, scored and judged interval by interval, in bulk.

What `gateway.Replay` does one request at a time, this does one controller interval at a time, with
the same parts where a decision is made: the routing table's hash, shares and samples
(`routing.table`), the gateway's feature check, each model's `Predictor` and loss, and the real
`Controller` (lease, `decide`, transitions, events) on the replay's store. Only the evidence takes
another road: instead of logging every prediction and reading the window back with SQL at each look,
each interval's predictions are folded into a `rollout.ledger.Ledger`, so a look costs the window's
users and the replay's cost grows linearly with the traffic's length (issue 24).

Per interval (the requests between two looks, when the routing cannot change): the valid requests
are routed (`routed.py`); each version scores all of its rows (served and shadow) in one call
(`scorer.py`), a failing call split in halves until the rows that fail are found. Labels count once
the clock reaches their `label_time`.

Latency is measured from real calls, a sample of them: per interval, up to `timed_calls` calls per
role and arm, each on the rows of one concurrency window (the micro-batch the gateway would have
made), and up to `timed_calls` single-row `timing` calls of the shadow's sample
(`serving.shadow_timing_sample`), as the gateway times its shadow. The latency rules count calls, so
they see fewer than live traffic gives them; every error-based number is the gateway replay's.

Not replayed: the gateway's reactions to failures and load, which depend on how requests happened to
be batched and on the machine. A gateway whose micro-batch failed row by row fails its next failing
batch whole; after 20 failed shadow calls in a row its breaker skips shadow calls but a probe; under
load it skips shadow calls and times out slow ones; its timing calls are bounded by a CPU budget
(each of these counted where it happens). Here each row fails alone, every sampled shadow is scored
and every sampled timing row counted. A replay that must log every prediction (for a report, or a
kept store) runs through the gateway (`gateway.Replay`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt
import pandas as pd
from threadpoolctl import threadpool_limits

from pitstop.clock import ManualClock
from pitstop.losses import Scoring
from pitstop.replay.columns import read_traffic
from pitstop.replay.routed import Routed
from pitstop.replay.scorer import load_scorers
from pitstop.replay.traffic import Progress, check_pace
from pitstop.rollout.controller import Controller, evidence_window
from pitstop.rollout.evidence import Evidence
from pitstop.rollout.guardrails import latency_baseline
from pitstop.rollout.ledger import Ledger, Pairs, Predictions
from pitstop.rollout.phases import Phase
from pitstop.rollout.reads import phase_reads
from pitstop.rollout.records import StoredRollout, active_rollout
from pitstop.routing.store import current_routing
from pitstop.routing.table import SERVED, TIMING, RoutingTable
from pitstop.serving.features import FeatureSchema
from pitstop.workspace import Workspace

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Flags = npt.NDArray[np.bool_]

TIMED_CALLS = 8  # the default of real calls timed per interval, role and arm (latency evidence)


@dataclass(frozen=True)
class _Scored:
    """One version's interval: the rows it scored (ascending), which failed, and their losses."""

    rows: Ints
    failed: Flags
    losses: Floats

    def at(self, rows: Ints) -> Ints:
        """Where `rows` (a subset) sit among the scored rows."""
        found: Ints = np.searchsorted(self.rows, rows)
        return found


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
        *,
        timed_calls: int = TIMED_CALLS,
    ) -> None:
        check_pace(interval, window)
        self.timed_calls = timed_calls
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
        self.scorers = load_scorers(ws, self.info, versions, frame)
        self.ledger = Ledger(self.traffic.unit_count, stored.policy.ab_test.label_maturation)
        self.settings = ws.config.serving
        self.sent = self.failed = self.delivered = 0
        self.served = {"champion": 0, "challenger": 0}
        self.ended = False
        # the first look whose champion calls bound its p99 (`guardrails.latency_baseline`): before it
        # no latency rule can act, and with few timed calls a replay may decide before it
        self.latency_rules_from: datetime | None = None

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
        evidence = self.ledger.evidence(window, phase_reads(stored.state.phase, stored.policy))
        if self.latency_rules_from is None and latency_baseline(evidence.champion_calls, stored.policy):
            self.latency_rules_from = now
        return evidence

    @property
    def champion_calls_timed(self) -> int:
        """The champion's served calls timed since the rollout began (its latency baseline's sample)."""
        return self.ledger.champion_history.summary().latency_call_count

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
        plan = Routed.of(table, t, rows, self.settings.shadow_sample, self.settings.shadow_timing_sample)
        scored = {v: self._score(v, plan.rows_of(v)) for v in plan.versions()}
        for role, arm, version, chosen in plan.parts():
            self._add(role, arm, chosen, scored[version])
        self._add_pairs(plan, scored)
        self._time_calls(plan)

    def _score(self, version: int, rows: Ints) -> _Scored:
        output, failed = self.scorers[version].score(rows)
        losses = np.full(len(rows), np.nan)
        ok = ~failed
        if ok.any():
            losses[ok] = self.scoring.loss.per_request(self.traffic.labels[rows[ok]], output[ok])
        return _Scored(rows, failed, losses)

    def _add(self, role: str, arm: str, chosen: Ints, scored: _Scored) -> None:
        t, at = self.traffic, scored.at(chosen)
        failed = scored.failed[at]
        if role == SERVED:
            self.served[arm] += len(chosen)
            self.failed += int(failed.sum())
        self.ledger.add(
            Predictions(
                role, arm, t.units[chosen], t.by_user[chosen], t.times[chosen], t.label_times[chosen],
                failed, scored.losses[at],
            )
        )  # fmt: skip

    def _add_pairs(self, plan: Routed, scored: dict[int, _Scored]) -> None:
        """The shadowed requests both versions predicted: the served one is the version not in shadow."""
        if plan.shadow is None or not len(plan.shadowed):
            return
        served, shadow, shadowed = scored[plan.other_than(plan.shadow)], scored[plan.shadow], plan.shadowed
        on_served, on_shadow = served.at(shadowed), shadow.at(shadowed)
        both = ~served.failed[on_served] & ~shadow.failed[on_shadow]
        losses = served.losses[on_served][both], shadow.losses[on_shadow][both]
        a, b = losses[::-1] if plan.shadow == plan.champion else losses
        chosen, t = shadowed[both], self.traffic
        self.ledger.add_pairs(Pairs(t.units[chosen], t.times[chosen], t.label_times[chosen], a, b))

    def _time_calls(self, plan: Routed) -> None:
        """Up to `timed_calls` real calls per role and arm, each a concurrency window's rows."""
        groups = _windows(self.traffic.times, plan.rows, self.window.total_seconds())
        for role, arm, version, chosen in plan.parts():
            if role == TIMING:
                calls = [chosen[k : k + 1] for k in _spread(len(chosen), self.timed_calls)]
            else:
                starts, ends = np.searchsorted(chosen, groups[:, 0]), np.searchsorted(chosen, groups[:, 1])
                filled = np.nonzero(ends > starts)[0]
                picked = [filled[k] for k in _spread(len(filled), self.timed_calls)]
                calls = [chosen[starts[g] : ends[g]] for g in picked]
            for rows in calls:
                latency = self.scorers[version].timed(rows)
                if not math.isnan(latency):
                    self.ledger.add_call(role, arm, latency, len(rows))


def _spread(count: int, most: int) -> list[int]:
    """Up to `most` indices spread evenly over range(count)."""
    if count <= most:
        return list(range(count))
    return sorted({int(k * count / most) for k in range(most)})


def _windows(times: Floats, rows: Ints, width: float) -> Ints:
    """The rows grouped as the gateway replay sends them: each group the requests within `width`
    seconds of its first, as [first row, last row + 1) per group, one group a line."""
    groups, k = [], 0
    chosen_times = times[rows]
    while k < len(rows):
        end = max(int(np.searchsorted(chosen_times, chosen_times[k] + width, side="left")), k + 1)
        groups.append((int(rows[k]), int(rows[end - 1]) + 1))
        k = end
    return np.array(groups, dtype=np.int64).reshape(-1, 2)
