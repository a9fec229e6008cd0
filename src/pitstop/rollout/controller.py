"""The decision loop: gather evidence, call the pure `decide`, apply the result in one transaction.

Only the lease holder acts. Evidence is read in its own read transaction (so the SQLite write lock is
not held during aggregation); the transition's transaction re-checks the lease and the rollout's
revision, so a controller killed at any point, or racing another one, neither duplicates nor loses a
transition: either the whole transition committed, or nothing did and the next look decides again.

After a store outage the evidence arrives late: gateways spooled their prediction records on disk
and write them once the store answers. The controller looks at no rollout while a gateway announces
spooled records (`store.spool_backlog`), nor for `OUTAGE_SETTLE` after its own store access fails
and then works again, which gives every gateway's writer (retrying at most every
`predlog.MAX_BACKOFF`) time to find the store back and announce its backlog first.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.exc import IntegrityError

from pitstop import registry
from pitstop.clock import Clock
from pitstop.errors import StoreUnavailableError, UsageError
from pitstop.losses import Scoring
from pitstop.rollout import lease
from pitstop.rollout.apply import apply_decision
from pitstop.rollout.decide import decide
from pitstop.rollout.decision import Decision
from pitstop.rollout.evidence import Evidence
from pitstop.rollout.gather import Window, gather_evidence
from pitstop.rollout.log_upkeep import UPKEEP_INTERVAL, upkeep
from pitstop.rollout.phases import Action, Outcome, Phase
from pitstop.rollout.reads import phase_reads
from pitstop.rollout.records import StaleRolloutError, StoredRollout, active_rollouts, latest_rollout
from pitstop.routing.provider import provider
from pitstop.routing.store import Change, current_routing
from pitstop.rules import Rule
from pitstop.serving.predlog import MAX_BACKOFF
from pitstop.store import gateways, load_failures, spool_backlog

if TYPE_CHECKING:
    from pitstop.context import Context

log = logging.getLogger("pitstop.controller")
CONTROLLER_ACTOR = "controller"
OUTAGE_SETTLE = timedelta(seconds=2 * MAX_BACKOFF)


@dataclass(frozen=True)
class StepResult:
    model: str
    rollout_id: int
    decision: Decision
    applied: bool  # False when the rollout changed under us or the lease was lost


def evidence_window(stored: StoredRollout, info: registry.ModelInfo, now: Any) -> Window:
    """The evidence of the rollout's current phase or step. In the A/B test and the ramp, errors come
    only from requests whose labels had time (`ab_test.label_maturation`): early labels are the
    short-delay ones, so counting them would judge the challenger on a biased sample."""
    state, policy = stored.state, stored.policy
    judged_on_served = state.phase in (Phase.AB_TEST, Phase.RAMP)
    matured = now - policy.ab_test.label_maturation if judged_on_served else None
    return Window(
        model_id=stored.model_id,
        task=info.task,
        since_routing_version=state.phase_routing_version,
        started_at=state.phase_started_at,
        now=now,
        matured_before=matured,
        loss=Scoring.of(info).loss,
        classes=len(info.classes or []),
        rollout_started_at=state.started_at,
        coverage_before=now - policy.ab_test.label_maturation,
    )


def read_evidence(ws: Context, stored: StoredRollout, now: Any) -> Evidence:
    with ws.reading() as conn:
        info = registry.get_model(conn, stored.state.model)
        reads = phase_reads(stored.state.phase, stored.policy)
        evidence = gather_evidence(conn, evidence_window(stored, info, now), reads)
        failures = load_failures.reported(conn, stored.model_id, stored.state.challenger_version, now)
        acks = gateways.acknowledgements(conn, stored.state.model, now, ws.config.serving.gateway_timeout)
    return replace(evidence, load_failures=tuple(failures), gateways=tuple(acks))


# What a look's evidence is read by: the rollout and the look's time in, the evidence out.
EvidenceReader = Callable[[StoredRollout, datetime], Evidence]


class AfterRound(Protocol):
    """Work a leading controller starts after each of its rounds (the MLflow write-back, say)."""

    def __call__(self) -> None:
        """Start it (or do it) after a round."""

    def finish(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for what was started to end: the controller stops leading."""


# How long a controller that stops leading waits for its after-round work (`AfterRound.finish`): a
# mirror to a reachable MLflow takes seconds; an unreachable one would not answer in time anyway.
FINISH_SECONDS = 30.0


class _EachInTurn:
    """Several `AfterRound`s as one: each runs in turn, a failing one logged and the next still run."""

    def __init__(self, hooks: list[AfterRound]) -> None:
        self.hooks = hooks

    def __call__(self) -> None:
        for hook in self.hooks:
            try:
                hook()
            except Exception:  # another system's failure never stops the next one
                log.exception("after the round: %r failed, tried again at the next round", hook)

    def finish(self, timeout: float) -> None:
        for hook in self.hooks:
            hook.finish(timeout)


def after_each_round(*hooks: AfterRound | None) -> AfterRound | None:
    """One `after_round` running each given hook in turn (None: there is none; the hook itself when
    there is one); a failing hook is logged and does not keep the next from running."""
    chosen = [hook for hook in hooks if hook is not None]
    if len(chosen) <= 1:
        return chosen[0] if chosen else None
    return _EachInTurn(chosen)


class Controller:
    """One controller process (or thread): call `tick()` now and then, or `run()` until stopped."""

    def __init__(
        self,
        ws: Context,
        *,
        clock: Clock | None = None,
        interval: timedelta | None = None,
        lease_ttl: timedelta | None = None,
        holder: str | None = None,
        after_round: AfterRound | None = None,
        evidence: EvidenceReader | None = None,
    ) -> None:
        """`after_round` runs after each round this controller leads (the MLflow write-back, say); what
        it raises is logged and tried again at the next round, never stopping the loop. What it started
        ends (bounded by `FINISH_SECONDS`) before `release` gives up the lease. `evidence` reads a look's
        evidence (default: the prediction log's, `read_evidence`; a batched replay folds its own)."""
        self.ws = ws
        self.evidence: EvidenceReader = evidence or partial(read_evidence, ws)
        self.after_round = after_round
        self.clock = clock or ws.clock
        self.interval = interval if interval is not None else ws.config.controller.interval
        if self.interval <= timedelta(0):  # a loop that never waits would hold the store and a core
            raise UsageError(f"the controller's interval must be longer than zero, got {self.interval}")
        self.lease_ttl = lease_ttl or ws.config.controller.lease_ttl
        self.holder = holder or lease.new_holder_id()
        self.is_leader = False
        self._store_failed = False  # the last round could not reach the store
        self._store_back_at: datetime | None = None  # when it answered again (settling until + OUTAGE_SETTLE)
        self.waiting: str | None = None  # why the last round looked at no rollout
        self._upkept_at: datetime | None = None  # the prediction log's last upkeep (`log_upkeep`)

    def acquire(self) -> bool:
        """Take or renew the lease; False while another controller holds it."""
        try:
            with self.ws.writing() as conn:
                self.is_leader = lease.try_acquire(conn, self.holder, self.clock.now(), self.lease_ttl)
        except IntegrityError:  # another controller inserted the lease row at the same moment
            self.is_leader = False
        return self.is_leader

    def tick(self) -> list[StepResult]:
        """One round: every active rollout gets one look (only when this controller leads), unless
        evidence is still on its way from gateways' spools after a store outage."""
        try:
            return self._round()
        except StoreUnavailableError:
            self._store_failed, self._store_back_at = True, None
            raise

    def _round(self) -> list[StepResult]:
        if not self.acquire():
            return []
        now = self.clock.now()
        with self.ws.reading() as conn:
            active = active_rollouts(conn)
            spooling = spool_backlog.spooling_gateways(conn, now)
        if self._store_failed:
            self._store_failed, self._store_back_at = False, now
        waiting = self._waiting(now, spooling) if active else None
        if waiting != self.waiting and waiting is not None:
            log.info("no rollout looked at: %s", waiting)
        self.waiting = waiting
        results = [] if waiting else [self.step(stored) for stored in active]
        self.expire_standby()
        self.upkeep_log(now)
        if self.after_round is not None:
            try:
                self.after_round()
            except Exception:  # another system's failure never stops deciding
                log.exception("after the round: failed, tried again at the next round")
        return [result for result in results if result is not None]

    def _waiting(self, now: datetime, spooling: list[str]) -> str | None:
        """Why no rollout may be judged now (None: they may)."""
        if spooling:
            return f"prediction records still spooled by {len(spooling)} gateway(s): {', '.join(spooling)}"
        if self._store_back_at is not None and now < self._store_back_at + OUTAGE_SETTLE:
            return f"the store answers again since {self._store_back_at.isoformat()}; gateways' spools settle"
        return None

    def step(self, stored: StoredRollout) -> StepResult | None:
        """Look at one rollout and act on it."""
        now = self.clock.now()
        evidence = self.evidence(stored, now)
        decision = decide(stored.state, stored.policy, evidence, now)
        try:
            with self.ws.writing() as conn:
                if not lease.holds(conn, self.holder, now):
                    self.is_leader = False
                    return StepResult(stored.state.model, stored.state.id, decision, applied=False)
                apply_decision(conn, stored, decision, now=now, actor=CONTROLLER_ACTOR)
        except StaleRolloutError as stale:
            log.info("%s", stale)
            return StepResult(stored.state.model, stored.state.id, decision, applied=False)
        if decision.action is not Action.STAY:  # a transition or a hold
            log.info(
                "%s rollout %s: %s (%s) %s",
                stored.state.model,
                stored.state.id,
                decision.action.value,
                decision.rule,
                decision.reason,
            )
        for warning in decision.warnings:
            log.warning(
                "%s rollout %s: warning (%s) %s",
                stored.state.model,
                stored.state.id,
                warning.rule,
                warning.reason,
            )
        return StepResult(stored.state.model, stored.state.id, decision, applied=True)

    def expire_standby(self) -> None:
        """After a promotion, unload the old champion once its standby time is over."""
        now = self.clock.now()
        with self.ws.writing() as conn:
            if not lease.holds(conn, self.holder, now):
                return
            for model in registry.list_models(conn):
                routing = current_routing(conn, model.id)
                last = latest_rollout(conn, model.id)
                if routing is None or routing.standby is None or last is None or last.state.ended_at is None:
                    continue
                if (
                    last.state.outcome is not Outcome.PROMOTED
                    or now < last.state.ended_at + last.policy.ramp.standby
                ):
                    continue
                standby = last.policy.ramp.standby
                over = f"standby of version {routing.standby} is over ({standby} after promotion)"
                change = Change(now, CONTROLLER_ACTOR, over, Rule.STANDBY_EXPIRED)
                provider().set_routes(conn, model, routing.routes.without_standby(), change)

    def upkeep_log(self, now: datetime) -> None:
        """Every `UPKEEP_INTERVAL`, the prediction log's days ahead and its retention (`log_upkeep`).

        A failure (the store, or a partition's lock not had in time) is logged and tried again at the
        next interval: the log's DEFAULT partition takes records meanwhile, and nothing waits on it."""
        if self._upkept_at is not None and now < self._upkept_at + UPKEEP_INTERVAL:
            return
        self._upkept_at = now
        try:
            pruned = upkeep(self.ws, now)
        except StoreUnavailableError as error:
            log.warning("prediction log upkeep failed; tried again in %s: %s", UPKEEP_INTERVAL, error)
            return
        if pruned is not None and pruned.parts:
            log.info("prediction log: %d records made before %s removed", pruned.rows, pruned.before)

    def release(self) -> None:
        """Stop leading: let the after-round work end, then give the lease up."""
        if self.after_round is not None:
            self.after_round.finish(FINISH_SECONDS)
        try:
            with self.ws.writing() as conn:
                lease.release(conn, self.holder)
        except StoreUnavailableError:
            pass  # the lease simply expires
        self.is_leader = False

    def run(self, stop: threading.Event) -> None:
        """Tick every `interval` until `stop` is set; a failing store is logged and retried, never fatal."""
        try:
            while not stop.is_set():
                try:
                    self.tick()
                except StoreUnavailableError as error:
                    log.warning("store unavailable, champion keeps serving: %s", error)
                stop.wait(self.interval.total_seconds())
        finally:
            self.release()
