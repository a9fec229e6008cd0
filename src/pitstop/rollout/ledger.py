"""Evidence folded in memory as a replay advances: what `gather.gather_evidence` reads from the
prediction log, kept by per-user sums instead, so a look costs the window's users, not its requests
(issue 24: a replay linear in its traffic's length).

The replay scores its traffic in large batches and hands the ledger each interval's predictions, in
time order, with what the log would hold (role, arm, user, time, failure) plus each request's loss
against its label and the label's arrival. A loss counts when the look's rules may see it: once its
label has arrived, and in the A/B test and the ramp once its request is older than
`ab_test.label_maturation` (`controller.evidence_window`); until then it waits in a `_Waiting` queue.
Counted losses go into per-user sums (S, N per user), from which a look computes exactly the moments
the SQL computes (`store.predictions.summaries`). A new phase or ramp step is a new window:
`restart` forgets everything but the champion's latency since the rollout began.

A replay's request ids are unique (`replay.traffic.prepare_traffic` refuses repeats) and each
request has at most one prediction per role, so the log's rule that a label binds to a request's
first prediction (`rows.first_labelled`) and its distinct request-id counts need nothing here.

Latency comes from the real model calls the replay times (`add_calls`), bucketed as the log's
histogram is (`LATENCY_BUCKET_RATIO`). tests/replay/test_batched.py holds a look's evidence equal to
`gather_evidence` on the same predictions written to a store.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from pitstop.rollout.evidence import LATENCY_BUCKET_RATIO, ArmSummary, Evidence, PairedSummary, UserMoments
from pitstop.rollout.gather import USER_CURVE_POINTS, Window, call_edges, log_quantiles, mean_and_variance
from pitstop.rollout.reads import Reads
from pitstop.routing.table import SERVED, SHADOW, TIMING

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Flags = npt.NDArray[np.bool_]
Key = tuple[str, str]  # (role, arm)
_WIDTH = math.log(LATENCY_BUCKET_RATIO)


@dataclass(frozen=True)
class Predictions:
    """One role and arm's predictions of an interval, in time order: each row's unit (a user's, or
    its request's when it came without a user_id), whether that is a user, its request time and its
    label's arrival (epoch seconds), whether it failed, and its loss (NaN when failed)."""

    role: str
    arm: str
    units: Ints
    by_user: Flags
    times: Floats
    label_times: Floats
    failed: Flags
    losses: Floats

    def __len__(self) -> int:
        return len(self.units)


@dataclass(frozen=True)
class Pairs:
    """Requests both arms predicted successfully (one served, the other in shadow): unit, request
    time, the label's arrival, and the champion's (a) and the challenger's (b) loss."""

    units: Ints
    times: Floats
    label_times: Floats
    a: Floats
    b: Floats


class _Waiting:
    """Rows waiting until their time comes (a label's arrival, a request's maturity): batches each
    sorted by that time, in a heap by their next row's time, so `due(now)` touches only the batches
    with a row due, however many wait (one late label per interval keeps its batch waiting)."""

    def __init__(self) -> None:
        self.heap: list[tuple[float, int, int]] = []  # (next row's time, batch number, next row)
        self.batches: dict[int, tuple[Floats, tuple[npt.NDArray[np.generic], ...]]] = {}
        self.added = 0
        self.waiting = 0

    def add(self, at: Floats, *columns: npt.NDArray[np.generic]) -> None:
        if len(at):
            order = np.argsort(at, kind="stable")
            self.batches[self.added] = (at[order], tuple(column[order] for column in columns))
            heapq.heappush(self.heap, (float(at[order[0]]), self.added, 0))
            self.added += 1
            self.waiting += len(at)

    def due(self, now: float) -> Iterator[tuple[npt.NDArray[np.generic], ...]]:
        """The columns of the rows due by `now`, a batch at a time; they leave the queue."""
        while self.heap and self.heap[0][0] <= now:
            _, number, start = heapq.heappop(self.heap)
            at, columns = self.batches[number]
            end = int(np.searchsorted(at, now, side="right"))
            self.waiting -= end - start
            if end < len(at):
                heapq.heappush(self.heap, (float(at[end]), number, end))
            else:
                del self.batches[number]
            yield tuple(column[start:end] for column in columns)

    def count_due(self, now: float) -> int:
        """How many rows are due by `now`; they leave the queue."""
        before = self.waiting
        for _ in self.due(now):
            pass
        return before - self.waiting


class _Latency:
    """A log-bucketed latency histogram: rows and model calls per bucket."""

    def __init__(self) -> None:
        self.rows: dict[int, int] = {}
        self.calls: dict[int, int] = {}

    def add(self, latency_ms: float, rows: int) -> None:
        index = math.floor(math.log(1 + latency_ms) / _WIDTH)
        self.rows[index] = self.rows.get(index, 0) + rows
        self.calls[index] = self.calls.get(index, 0) + 1

    def summary(self) -> ArmSummary:
        """The histogram's p50, p99, rows and calls per bucket (as `gather.latency_quantiles`)."""
        if not self.rows:
            return ArmSummary()
        p50, p99 = log_quantiles(self.rows.items(), _WIDTH, (0.5, 0.99))
        return ArmSummary(
            latency_p50=p50,
            latency_p99=p99,
            latency_samples=sum(self.rows.values()),
            latency_calls=call_edges(self.calls),
        )


class _Arm:
    """One role and arm of a window: counts, distinct units, per-user error sums and latency."""

    def __init__(self, units: int) -> None:
        self.requests = self.failures = self.by_request = self.unit_count = 0
        self.seen = np.zeros(units, dtype=bool)
        self.error_sums = np.zeros(units)  # S per unit: summed loss of its counted requests
        self.error_counts = np.zeros(units)  # N per unit
        self.squares = 0.0  # Σ loss² over counted requests
        self.latency = _Latency()

    def add(self, rows: Predictions) -> None:
        self.requests += len(rows)
        self.failures += int(rows.failed.sum())
        self.by_request += int((~rows.by_user).sum())
        fresh = np.unique(rows.units[~self.seen[rows.units]])
        self.seen[fresh] = True
        self.unit_count += len(fresh)

    def count_losses(self, units: Ints, losses: Floats) -> None:
        np.add.at(self.error_sums, units, losses)
        np.add.at(self.error_counts, units, 1.0)
        self.squares += float(np.dot(losses, losses))

    def moments(self) -> UserMoments:
        counted = self.error_counts > 0
        s, n = self.error_sums[counted], self.error_counts[counted]
        if not len(n):
            return UserMoments()
        means = s / n
        return UserMoments(
            float(len(n)),
            float(s.sum()),
            float(n.sum()),
            float(np.dot(s, s)),
            float(np.dot(n, n)),
            float(np.dot(s, n)),
            float(means.sum()),
            float(np.dot(means, means)),
        )

    def user_means(self) -> tuple[float, ...]:
        counted = self.error_counts > 0
        return tuple((self.error_sums[counted] / self.error_counts[counted]).tolist())

    def summary(self) -> ArmSummary:
        moments = self.moments()
        labelled = int(moments.request_sum)
        mean, variance = mean_and_variance(labelled, moments.error_sum, self.squares)
        latency = self.latency.summary()
        return ArmSummary(
            requests=self.requests,
            failures=self.failures,
            units=self.unit_count,
            labelled=labelled,
            error_mean=mean,
            error_var=variance,
            moments=moments,
            latency_p50=latency.latency_p50,
            latency_p99=latency.latency_p99,
            latency_samples=latency.latency_samples,
            latency_calls=latency.latency_calls,
        )


class _Paired:
    """Both models' losses on the same labelled requests, summed per user."""

    def __init__(self, units: int) -> None:
        self.champion = np.zeros(units)  # A per unit
        self.challenger = np.zeros(units)  # B per unit
        self.pairs = np.zeros(units)
        self.n = 0
        self.sum_a = self.sum_b = self.sum_d = self.sum_d2 = self.sum_a2 = 0.0
        self.differences: list[tuple[Floats, Floats]] = []  # (request times, b - a) per batch

    def add(self, units: Ints, times: Floats, a: Floats, b: Floats) -> None:
        d = b - a
        np.add.at(self.champion, units, a)
        np.add.at(self.challenger, units, b)
        np.add.at(self.pairs, units, 1.0)
        self.n += len(units)
        self.sum_a += float(a.sum())
        self.sum_b += float(b.sum())
        self.sum_d += float(d.sum())
        self.sum_d2 += float(np.dot(d, d))
        self.sum_a2 += float(np.dot(a, a))
        self.differences.append((times, d))

    def summary(self, with_differences: bool) -> PairedSummary:
        n = self.n
        if n == 0:
            return PairedSummary()
        diff_mean, diff_var = mean_and_variance(n, self.sum_d, self.sum_d2)
        users = self.pairs > 0
        a, b = self.champion[users], self.challenger[users]
        return PairedSummary(
            n=n,
            champion_mean=self.sum_a / n,
            challenger_mean=self.sum_b / n,
            diff_mean=diff_mean,
            diff_var=diff_var,
            champion_var=mean_and_variance(n, self.sum_a, self.sum_a2)[1],
            users=int(users.sum()),
            user_champion_sq=float(np.dot(a, a)),
            user_challenger_sq=float(np.dot(b, b)),
            user_cross=float(np.dot(a, b)),
            differences=self._in_time_order() if with_differences else None,
        )

    def _in_time_order(self) -> tuple[float, ...]:
        times = np.concatenate([t for t, _ in self.differences])
        d = np.concatenate([d for _, d in self.differences])
        return tuple(d[np.argsort(times, kind="stable")].tolist())


@dataclass
class _Window:
    """Everything counted since one routing version: one phase, or one ramp step."""

    routing_version: int
    started_at: datetime
    units: int
    matures: bool  # losses count only once their request is older than the label maturation
    arms: dict[Key, _Arm] = field(default_factory=dict)
    paired: _Paired = field(init=False)
    waiting_losses: _Waiting = field(default_factory=_Waiting)
    waiting_pairs: _Waiting = field(default_factory=_Waiting)
    coverage_requests: _Waiting = field(default_factory=_Waiting)  # served requests, until matured
    coverage_labelled: _Waiting = field(default_factory=_Waiting)  # ... until matured and labelled
    matured_requests: int = 0
    matured_labelled: int = 0
    first_seen: Floats = field(init=False)  # each served unit's first request time (inf: not yet)
    arms_of_user: npt.NDArray[np.uint8] = field(init=False)  # served arms per user, a bit each

    def __post_init__(self) -> None:
        self.first_seen = np.full(self.units, np.inf)
        self.arms_of_user = np.zeros(self.units, dtype=np.uint8)
        self.paired = _Paired(self.units)

    def arm(self, key: Key) -> _Arm:
        if key not in self.arms:
            self.arms[key] = _Arm(self.units)
        return self.arms[key]


_ARM_BITS = {"champion": 1, "challenger": 2}


class Ledger:
    """One rollout's evidence, folded as a replay hands it predictions (see the module's docstring).

    `units` is how many distinct units the traffic holds (each row's unit is its index among them);
    `maturation` the policy's `ab_test.label_maturation`.
    """

    def __init__(self, units: int, maturation: timedelta) -> None:
        self.units = units
        self.maturation = maturation.total_seconds()
        self.champion_history = _Latency()  # the champion's served calls since the rollout began
        self.window: _Window | None = None

    def restart(self, routing_version: int, started_at: datetime, *, matures: bool) -> None:
        """A new phase or ramp step from `routing_version` on: what came before no longer counts."""
        self.window = _Window(routing_version, started_at, self.units, matures)

    def add(self, rows: Predictions) -> None:
        """An interval's predictions of one role and arm (after every earlier interval's)."""
        window = self._current()
        window.arm((rows.role, rows.arm)).add(rows)
        if rows.role == SERVED:
            self._add_served(window, rows)
        if rows.role == TIMING:
            return  # latency evidence only: its prediction repeats the shadow's
        ok = ~rows.failed
        due = rows.label_times[ok]
        if window.matures:
            due = np.maximum(due, rows.times[ok] + self.maturation)
        key = np.full(int(ok.sum()), _key_code(rows.role, rows.arm))
        window.waiting_losses.add(due, key, rows.units[ok], rows.losses[ok])

    def _add_served(self, window: _Window, rows: Predictions) -> None:
        np.minimum.at(window.first_seen, rows.units, rows.times)
        users = rows.units[rows.by_user]
        np.bitwise_or.at(window.arms_of_user, users, _ARM_BITS[rows.arm])
        matured = rows.times + self.maturation
        window.coverage_requests.add(matured)
        window.coverage_labelled.add(np.maximum(matured, rows.label_times))

    def add_pairs(self, pairs: Pairs) -> None:
        """Requests both arms predicted: they count once their label has arrived."""
        self._current().waiting_pairs.add(pairs.label_times, pairs.units, pairs.times, pairs.a, pairs.b)

    def add_call(self, role: str, arm: str, latency_ms: float, rows: int) -> None:
        """One timed model call of `rows` rows."""
        self._current().arm((role, arm)).latency.add(latency_ms, rows)
        if (role, arm) == (SERVED, "champion"):
            self.champion_history.add(latency_ms, rows)

    def evidence(self, window: Window, reads: Reads) -> Evidence:
        """What `gather.gather_evidence` would read for `window` from the predictions handed so far."""
        current = self._checked(window)
        now = window.now.timestamp()
        self._count_due(current, now)
        summaries = {key: arm.summary() for key, arm in current.arms.items()}
        served = {arm: s for (role, arm), s in summaries.items() if role == SERVED}
        hours = max((window.now - window.started_at) / timedelta(hours=1), 0.0)
        total_served = sum(s.requests for s in served.values())
        coverage = reads.label_coverage and window.coverage_before is not None
        return Evidence(
            now=window.now,
            champion=served.get("champion", ArmSummary()),
            challenger=served.get("challenger", ArmSummary()),
            shadow=_only(summaries, SHADOW),
            shadow_timing=_only(summaries, TIMING),
            paired=current.paired.summary(reads.differences) if reads.paired else PairedSummary(),
            request_rate_per_hour=total_served / hours if hours > 0 else 0.0,
            window_hours=hours,
            unbucketed_requests=sum(a.by_request for (r, _), a in current.arms.items() if r == SERVED),
            user_mean_errors=self._user_means(current) if reads.user_means else None,
            users_seen=self._users_seen(current, window) if reads.user_curve else (),
            champion_history=self.champion_history.summary() if window.rollout_started_at else None,
            both_arms_users=(
                int((current.arms_of_user == 3).sum()) if reads.both_arms and "challenger" in served else 0
            ),
            matured_requests=current.matured_requests if coverage else 0,
            matured_labelled=current.matured_labelled if coverage else 0,
        )

    def _current(self) -> _Window:
        if self.window is None:
            raise RuntimeError("the ledger has no window yet: call restart() when the phase begins")
        return self.window

    def _checked(self, window: Window) -> _Window:
        current = self._current()
        if window.since_routing_version != current.routing_version:
            raise RuntimeError(
                f"the look asks for routing version {window.since_routing_version} on, the ledger "
                f"counts from {current.routing_version}: restart() it when a phase or step begins"
            )
        if (window.matured_before is not None) != current.matures:
            raise RuntimeError("the look's label maturation differs from the ledger's")
        return current

    def _count_due(self, window: _Window, now: float) -> None:
        for keys, units, losses in window.waiting_losses.due(now):
            for code in np.unique(keys):
                chosen = keys == code
                window.arm(_KEYS[int(code)]).count_losses(units[chosen], losses[chosen])
        for units, times, a, b in window.waiting_pairs.due(now):
            window.paired.add(units, times, a, b)  # type: ignore[arg-type]
        window.matured_requests += window.coverage_requests.count_due(now)
        window.matured_labelled += window.coverage_labelled.count_due(now)

    def _user_means(self, window: _Window) -> dict[str, tuple[float, ...]]:
        means = {arm: a.user_means() for (role, arm), a in window.arms.items() if role == SERVED}
        return {arm: values for arm, values in means.items() if values}

    def _users_seen(self, current: _Window, window: Window) -> tuple[tuple[float, int], ...]:
        hours = (window.now - window.started_at) / timedelta(hours=1)
        if hours <= 0:
            return ()
        start = window.started_at.timestamp()
        marks = [hours * (k + 1) / USER_CURVE_POINTS for k in range(USER_CURVE_POINTS)]
        first = np.sort(current.first_seen[np.isfinite(current.first_seen)])
        counts = np.searchsorted(first, [start + m * 3600 for m in marks], side="right")
        return tuple((mark, int(count)) for mark, count in zip(marks, counts, strict=True))


_KEYS: tuple[Key, ...] = tuple(
    (role, arm) for role in (SERVED, SHADOW, TIMING) for arm in ("champion", "challenger")
)


def _key_code(role: str, arm: str) -> int:
    return _KEYS.index((role, arm))


def _only(summaries: dict[Key, ArmSummary], role: str) -> ArmSummary:
    return next((s for (r, _), s in summaries.items() if r == role), ArmSummary())
