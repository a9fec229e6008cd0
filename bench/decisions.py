"""Every rollout rule's error rate, measured: seeded A/A, power and harm scenarios through `decide()`.

    PYTHONPATH=src .venv/bin/python bench/decisions.py --runs 200 --fast-runs 40

Synthetic traffic, built as the controller would see it, without the store (so a run takes
milliseconds): users arrive at a steady rate, each sends 1-50 requests (uniform), is routed to the
challenger with the A/B share (or a skewed one, for sample-ratio scenarios) and has a per-user
lognormal error level; each request's error is that level times lognormal request noise, times
(1 + effect) on the challenger, with an optional user x model lognormal term. Requests fail with
each arm's failure rate. At each look the cumulative per-arm sums become the `ArmSummary` values of
`pitstop.rollout.evidence` (users, requests, failures, labelled requests, request-level mean and
variance, per-user moments) exactly as `gather` builds them from SQL, and the rollout's phase, plan
and running memory are carried from one decision to the next as the controller does.

Two look schedules: one every `--fast-minutes` (default 10) of simulated time, one every 6 h.
Rates are counted over whole tests (every look together) and printed beside their targets with a
95 % Wilson interval; `--markdown` prints the block for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from scipy import stats

from pitstop.config import ABMethod, ABStopping, Policy
from pitstop.rollout.decide import Decision, decide
from pitstop.rollout.evidence import LATENCY_BUCKET_RATIO, ArmSummary, Evidence, PairedSummary, UserMoments
from pitstop.rollout.gather import call_edges, log_quantiles
from pitstop.rollout.phases import Action, Phase
from pitstop.rollout.plan import AbPlan
from pitstop.rollout.planning import plan_ab_test
from pitstop.rollout.state import RolloutState, SequentialMemory, ramp_shares

START = datetime(2026, 1, 1, tzinfo=UTC)
SIX_HOURS = 360.0  # minutes


@dataclass(frozen=True)
class Traffic:
    """The simulated population: arrivals, requests per user, error spread and failures per arm."""

    users_per_hour: float = 300.0
    max_requests: int = 50  # each user sends 1..max_requests requests (uniform)
    base_error: float = 5.0  # median per-request error
    user_sigma: float = 0.5  # per-user lognormal level
    request_sigma: float = 0.8  # per-request lognormal noise
    user_model_sigma: float = 0.0  # per-user x model lognormal term (challenger only)
    effect: float = 0.0  # challenger error = champion's x (1 + effect)
    champion_failure: float = 0.0
    challenger_failure: float = 0.0
    assigned_share: float | None = None  # the share users really land on (None: the policy's)
    labels: bool = True  # False: no label ever arrives (rules on units and failures only, fast)
    latency_ms: float | None = None  # champion's median model call time (None: no latency simulated)
    latency_sigma: float = 0.3  # lognormal spread of call times (p99 = median x 2.0 at 0.3)
    slowdown: float = 1.0  # challenger call time = champion's x this


@dataclass(frozen=True)
class Users:
    """One simulated population, users in arrival order, one row per user."""

    arrival_minutes: np.ndarray
    challenger: np.ndarray  # bool: routed to the challenger
    requests: np.ndarray  # N_i
    failures: np.ndarray  # failed requests (no prediction, no label)
    labelled: np.ndarray  # labelled requests (the others failed, or their label never came)
    errors: np.ndarray  # S_i: summed error over the labelled (non-failed) requests
    squares: np.ndarray  # sum of squared errors over them


def simulate_users(rng: np.random.Generator, traffic: Traffic, minutes: float, share: float) -> Users:
    count = rng.poisson(traffic.users_per_hour * minutes / 60)
    arrival = np.sort(rng.uniform(0, minutes, count))
    on_challenger = rng.random(count) < (traffic.assigned_share or share)
    requests = rng.integers(1, traffic.max_requests + 1, count)
    fail_p = np.where(on_challenger, traffic.challenger_failure, traffic.champion_failure)
    failures = rng.binomial(requests, fail_p)
    labelled = requests - failures if traffic.labels else np.zeros_like(requests)
    level = traffic.base_error * np.exp(rng.normal(0, traffic.user_sigma, count))
    level *= np.where(
        on_challenger, (1 + traffic.effect) * np.exp(rng.normal(0, traffic.user_model_sigma, count)), 1
    )
    # per request: level x exp(noise); sum and sum of squares over the user's requests
    user_of = np.repeat(np.arange(count), labelled)
    noise = np.exp(rng.normal(0, traffic.request_sigma, user_of.size))
    per_request = level[user_of] * noise
    errors = np.bincount(user_of, per_request, minlength=count)
    squares = np.bincount(user_of, per_request**2, minlength=count)
    return Users(arrival, on_challenger, requests, failures, labelled, errors, squares)


class Cumulative:
    """Running per-arm sums over users in arrival order, read at any look as an `ArmSummary`."""

    def __init__(self, users: Users, mask: np.ndarray) -> None:
        self.arrival = users.arrival_minutes[mask]
        labelled = users.labelled[mask].astype(float)
        s = users.errors[mask]
        seen = labelled > 0
        self.means = np.where(seen, s / np.maximum(labelled, 1), np.nan)  # each user's mean error
        mean = np.where(seen, self.means, 0.0)
        columns = {
            "units": np.ones_like(labelled),
            "requests": users.requests[mask].astype(float),
            "failures": users.failures[mask].astype(float),
            "labelled": labelled,
            "labelled_users": (labelled > 0).astype(float),
            "s": s,
            "q": users.squares[mask],
            "ss": s * s,
            "nn": labelled * labelled,
            "sn": s * labelled,
            "m": mean,
            "mm": mean * mean,
        }
        self.sums = {name: np.concatenate([[0.0], np.cumsum(col)]) for name, col in columns.items()}

    def at(self, start: float, end: float) -> ArmSummary:
        i, j = np.searchsorted(self.arrival, [start, end], side="right")
        d = {name: float(col[j] - col[i]) for name, col in self.sums.items()}
        n = int(d["labelled"])
        mean = d["s"] / n if n else None
        var = (d["q"] - n * mean * mean) / (n - 1) if n > 1 and mean is not None else None
        return ArmSummary(
            requests=int(d["requests"]),
            failures=int(d["failures"]),
            units=int(d["units"]),
            labelled=n,
            error_mean=mean,
            error_var=max(var, 0.0) if var is not None else None,
            moments=UserMoments(
                d["labelled_users"], d["s"], d["labelled"], d["ss"], d["nn"], d["sn"], d["m"], d["mm"]
            ),
        )

    def user_means(self, start: float, end: float) -> tuple[float, ...]:
        """Each labelled user's mean error, as `gather.user_mean_errors` reads them (Mann-Whitney)."""
        i, j = np.searchsorted(self.arrival, [start, end], side="right")
        means = self.means[i:j]
        return tuple(means[~np.isnan(means)].tolist())


class CallTimes:
    """One arm's model calls (one per request) as the latency histogram `gather` builds: 2 %-wide
    buckets of log(1 + ms), new calls at each look drawn from the arm's lognormal call time."""

    WIDTH = math.log(LATENCY_BUCKET_RATIO)

    def __init__(self, rng: np.random.Generator, median_ms: float, sigma: float) -> None:
        self.rng = rng
        top = median_ms * math.exp(8 * sigma)
        self.index = np.arange(0, int(math.log1p(top) / self.WIDTH) + 2)
        edges = np.exp(np.append(self.index, self.index[-1] + 1) * self.WIDTH) - 1
        cdf = stats.lognorm.cdf(edges, sigma, scale=median_ms)
        cdf[-1] = 1.0
        self.probs = np.diff(np.append(0.0, cdf[1:]))
        self.counts = np.zeros(self.index.size, int)
        self.calls = 0

    def add(self, summary: ArmSummary, calls: int) -> ArmSummary:
        """`summary` with the latency of its first `calls` model calls."""
        if calls > self.calls:
            self.counts += self.rng.multinomial(calls - self.calls, self.probs)
            self.calls = calls
        seen = self.counts > 0
        buckets = list(zip(self.index[seen].tolist(), self.counts[seen].tolist(), strict=True))
        if not buckets:
            return summary
        p50, p99 = log_quantiles(buckets, self.WIDTH, (0.5, 0.99))
        return replace(
            summary,
            latency_p50=p50,
            latency_p99=p99,
            latency_samples=self.calls,
            latency_calls=call_edges(dict(buckets)),
        )


def call_times(rng: np.random.Generator, traffic: Traffic) -> tuple[CallTimes, CallTimes] | None:
    """(champion, challenger) call-time logs, or None when the traffic simulates no latency."""
    if traffic.latency_ms is None:
        return None
    return (
        CallTimes(rng, traffic.latency_ms, traffic.latency_sigma),
        CallTimes(rng, traffic.latency_ms * traffic.slowdown, traffic.latency_sigma),
    )


def with_latency(
    times: tuple[CallTimes, CallTimes] | None, arms: tuple[ArmSummary, ArmSummary], calls: tuple[int, int]
) -> tuple[ArmSummary, ArmSummary]:
    if times is None:
        return arms
    return times[0].add(arms[0], calls[0]), times[1].add(arms[1], calls[1])


@dataclass
class Outcome:
    rule: str
    action: Action
    phase: Phase
    minutes: float
    challenger_requests: int = 0
    challenger_users: int = 0
    planned_minutes: float | None = None  # first look by the plan's expected duration (None: no plan)


def rollout_state(
    phase: Phase, at: float, *, step: int | None = None, plan: AbPlan | None = None
) -> RolloutState:
    moment = START + timedelta(minutes=at)
    return RolloutState(
        id=1,
        model="bench",
        champion_version=1,
        challenger_version=2,
        phase=phase,
        step=step,
        phase_started_at=moment,
        started_at=START,
        phase_routing_version=1,
        salt="bench",
        plan=plan,
    )


def ab_plan(policy: Policy, traffic: Traffic, rng: np.random.Generator) -> AbPlan:
    """The plan the shadow would have stored: a day of champion traffic and an ideal paired estimate."""
    day = simulate_users(rng, replace(traffic, effect=0.0, assigned_share=1e-12), 24 * 60, 0.0)
    champion = Cumulative(day, ~day.challenger).at(-1, 24 * 60)
    mean = champion.error_mean or traffic.base_error
    paired = PairedSummary(n=1000, champion_mean=mean, challenger_mean=mean * (1 + traffic.effect))
    # every simulated user arrives once: distinct users accumulate linearly, as the fit should find
    marks = [24.0 * (k + 1) / 8 for k in range(8)]
    seen = tuple((h, int(np.searchsorted(day.arrival_minutes, h * 60, side="right"))) for h in marks)
    evidence = Evidence(now=START, champion=champion, paired=paired, window_hours=24.0, users_seen=seen)
    return plan_ab_test(policy, evidence)


def looks(every: float, horizon: float) -> Iterator[float]:
    t = every
    while t <= horizon + 1e-9:
        yield t
        t += every


def run_ab_and_ramp(
    policy: Policy,
    traffic: Traffic,
    seed: int,
    every: float,
    *,
    ramp: bool = True,
    horizon: float | None = None,
    plan: AbPlan | None = None,
) -> Outcome:
    """One A/B test (to its end or `horizon` minutes), then the ramp if it advanced (or `ramp` forces it).
    `plan` replaces the plan the shadow would have stored."""
    rng = np.random.default_rng(seed)
    ab = policy.ab_test
    limit = horizon if horizon is not None else ab.max_duration.total_seconds() / 60
    users = simulate_users(rng, traffic, limit + every, ab.share)
    champion, challenger = Cumulative(users, ~users.challenger), Cumulative(users, users.challenger)
    plan = plan or ab_plan(policy, traffic, rng)
    # the first look at which the plan expects its users (a look every 6 h sees them up to 6 h late)
    planned = None if plan.expected_hours is None else math.ceil(plan.expected_hours * 60 / every) * every
    state = rollout_state(Phase.AB_TEST, 0.0, plan=plan)
    times = call_times(rng, traffic)
    ended: Outcome | None = None
    for t in looks(every, limit):
        mature = t - ab.label_maturation.total_seconds() / 60
        ranked = ab.method is ABMethod.MANN_WHITNEY
        calls = (champion.at(-1, t).requests, challenger.at(-1, t).requests)
        served = with_latency(times, (champion.at(-1, mature), challenger.at(-1, mature)), calls)
        evidence = Evidence(
            now=START + timedelta(minutes=t),
            champion=served[0],
            challenger=served[1],
            window_hours=t / 60,
            user_mean_errors={
                "champion": champion.user_means(-1, mature),
                "challenger": challenger.user_means(-1, mature),
            }
            if ranked
            else None,
        )
        decision = decide(state, policy, evidence, evidence.now)
        state = _carry(state, decision)
        if decision.changes_phase:
            ended = replace(
                _outcome(decision, Phase.AB_TEST, t, evidence.challenger), planned_minutes=planned
            )
            break
    if ended is None:
        return Outcome("ab.open", Action.STAY, Phase.AB_TEST, limit, planned_minutes=planned)
    if ended.action is not Action.ADVANCE or not ramp:
        return ended
    return run_ramp(policy, traffic, rng, every, ended.minutes, state.memory, times[0] if times else None)


def run_ramp(
    policy: Policy,
    traffic: Traffic,
    rng: np.random.Generator,
    every: float,
    start: float,
    memory: SequentialMemory | None = None,
    served_calls: CallTimes | None = None,
) -> Outcome:
    """Each ramp step: its own users from the step's start, guardrails at every look, dwell, next step.
    Errors count once their labels matured, as in the A/B test; the rollout's memory carries over, and
    so do the champion's served calls (`served_calls`, from the A/B test on), its latency baseline's
    sample (`Evidence.champion_history`)."""
    dwell = policy.ramp.dwell.total_seconds() / 60
    maturation = policy.ab_test.label_maturation.total_seconds() / 60
    shares = ramp_shares(policy)
    t = start
    history = served_calls
    if history is None and traffic.latency_ms is not None:
        history = CallTimes(rng, traffic.latency_ms, traffic.latency_sigma)
    for step, share in enumerate(shares):
        state = replace(rollout_state(Phase.RAMP, t, step=step), memory=memory or SequentialMemory())
        horizon = max(dwell * 4, 24 * 60)
        users = simulate_users(rng, replace(traffic, assigned_share=share), horizon + every, share)
        on = users.challenger if share < 1 else np.ones_like(users.challenger)
        champion, challenger = Cumulative(users, ~on), Cumulative(users, on)
        old = _as_champion(users, traffic, rng) if share >= 1 else None
        times = call_times(rng, traffic)
        before = history.calls if history else 0
        for elapsed in looks(every, horizon):
            mature = elapsed - maturation
            calls = (champion.at(-1, elapsed).requests, challenger.at(-1, elapsed).requests)
            served = with_latency(times, (champion.at(-1, mature), challenger.at(-1, mature)), calls)
            evidence = Evidence(
                now=START + timedelta(minutes=t + elapsed),
                champion=served[0],
                challenger=served[1],
                # at 100 % the old champion runs in shadow on the same requests
                shadow=old.at(-1, mature) if old is not None else ArmSummary(),
                window_hours=elapsed / 60,
                champion_history=history.add(ArmSummary(), before + calls[0]) if history else None,
            )
            decision = decide(state, policy, evidence, evidence.now)
            state = _carry(state, decision)
            if decision.action is Action.ADVANCE:
                t += elapsed
                memory = state.memory
                break
            if decision.changes_phase:
                return _outcome(decision, Phase.RAMP, t + elapsed, evidence.challenger)
        else:
            return Outcome("ramp.open", Action.STAY, Phase.RAMP, t + horizon)
    return Outcome("ramp.completed", Action.PROMOTE, Phase.RAMP, t)


def _as_champion(users: Users, traffic: Traffic, rng: np.random.Generator) -> Cumulative:
    """The old champion in shadow at 100 %: the same users' errors without the challenger's effect."""
    scale = 1 / (1 + traffic.effect)
    champion_failures = rng.binomial(users.requests, traffic.champion_failure)
    shadow = Users(
        users.arrival_minutes,
        users.challenger,
        users.requests,
        champion_failures,
        users.labelled,
        users.errors * scale,
        users.squares * scale * scale,
    )
    return Cumulative(shadow, np.ones_like(users.challenger))


def _carry(state: RolloutState, decision: Decision) -> RolloutState:
    return state if decision.memory is None else replace(state, memory=decision.memory)


def _outcome(decision: Decision, phase: Phase, minutes: float, challenger: ArmSummary) -> Outcome:
    # requests of the matured window, or every model call so far when latency is simulated
    requests = max(challenger.requests, challenger.latency_samples)
    return Outcome(decision.rule, decision.action, phase, minutes, requests, challenger.units)


# -- shadow ----------------------------------------------------------------------------------------


def run_shadow(policy: Policy, traffic: Traffic, seed: int, every: float) -> Outcome:
    """Both models on the same labelled requests; the verdict at the first look with enough time and pairs.

    The shadow rule alone: a pass counts as one whether or not the A/B test it plans could be won (few
    users cannot win one: `ab.unwinnable` is the A/B plan's rule, measured apart)."""
    rng = np.random.default_rng(seed)
    policy = policy.model_copy(
        update={"ab_test": policy.ab_test.model_copy(update={"start_unwinnable": True})}
    )
    shadow = policy.shadow
    limit = shadow.max_duration.total_seconds() / 60
    count = rng.poisson(traffic.users_per_hour * limit / 60)
    arrival = np.sort(rng.uniform(0, limit, count))
    requests = rng.integers(1, traffic.max_requests + 1, count)
    level = traffic.base_error * np.exp(rng.normal(0, traffic.user_sigma, count))
    mine = level * (1 + traffic.effect) * np.exp(rng.normal(0, traffic.user_model_sigma, count))
    user_of = np.repeat(np.arange(count), requests)
    shared = np.exp(rng.normal(0, traffic.request_sigma, user_of.size))
    own = np.exp(rng.normal(0, traffic.request_sigma / 2, (2, user_of.size)))
    a, b = level[user_of] * shared * own[0], mine[user_of] * shared * own[1]
    when = arrival[user_of]
    sums = {
        "n": np.ones_like(a),
        "a": a,
        "b": b,
        "d": b - a,
        "dd": (b - a) ** 2,
        "aa": a * a,
    }
    cum = {k: np.concatenate([[0.0], np.cumsum(v)]) for k, v in sums.items()}
    # per user, in arrival order (a user's requests all arrive with the user): sums over users of the
    # per-user sums' squares and cross product, as the SQL groups by user and then sums
    user_a, user_b = np.bincount(user_of, a, minlength=count), np.bincount(user_of, b, minlength=count)
    by_user = {"k": np.ones(count), "aa": user_a**2, "bb": user_b**2, "ab": user_a * user_b}
    cum_user = {k: np.concatenate([[0.0], np.cumsum(v)]) for k, v in by_user.items()}
    per_user = Users(
        arrival,
        np.zeros(count, bool),
        requests,
        np.zeros(count, int),
        requests,
        *_user_sums(user_of, a, count),
    )
    champion = Cumulative(per_user, np.ones(count, bool))
    state = rollout_state(Phase.SHADOW, 0.0)
    for t in looks(every, limit):
        j = int(np.searchsorted(when, t, side="right"))
        u = int(np.searchsorted(arrival, t, side="right"))
        n = int(cum["n"][j])
        paired = PairedSummary()
        if n >= 2:
            diff_mean = cum["d"][j] / n
            a_mean = cum["a"][j] / n
            paired = PairedSummary(
                n=n,
                champion_mean=a_mean,
                challenger_mean=cum["b"][j] / n,
                diff_mean=diff_mean,
                diff_var=max((cum["dd"][j] - n * diff_mean**2) / (n - 1), 0.0),
                champion_var=max((cum["aa"][j] - n * a_mean**2) / (n - 1), 0.0),
                users=int(cum_user["k"][u]),
                user_champion_sq=float(cum_user["aa"][u]),
                user_challenger_sq=float(cum_user["bb"][u]),
                user_cross=float(cum_user["ab"][u]),
            )
        arm = champion.at(-1, t)
        shadowed = replace(arm, requests=n, units=arm.units)
        evidence = Evidence(
            now=START + timedelta(minutes=t),
            champion=arm,
            shadow=shadowed,
            paired=paired,
            window_hours=t / 60,
        )
        decision = decide(state, policy, evidence, evidence.now)
        if decision.changes_phase:
            return _outcome(decision, Phase.SHADOW, t, shadowed)
    return Outcome("shadow.open", Action.STAY, Phase.SHADOW, limit)


def _user_sums(user_of: np.ndarray, errors: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    return np.bincount(user_of, errors, minlength=count), np.bincount(user_of, errors**2, minlength=count)


# -- scenarios -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    rule: str  # the row of the table: which rule's rate this measures
    counts: Callable[[Outcome], bool]  # the outcome this scenario's rate counts
    target: str  # the documented bound, as text
    bound: tuple[str, float]  # ("<=" or ">=", value) to flag a miss
    run: Callable[[Policy, int, float], Outcome]
    ramp: bool = True
    extra: dict[str, Any] = field(default_factory=dict)
    policy: dict[str, Any] = field(default_factory=dict)  # changes to the default policy


def _ab(
    traffic: Traffic, *, ramp: bool = True, horizon: float | None = None
) -> Callable[[Policy, int, float], Outcome]:
    return lambda policy, seed, every: run_ab_and_ramp(
        policy, traffic, seed, every, ramp=ramp, horizon=horizon
    )


def fixed_horizon(policy: Policy) -> Policy:
    """The policy with the fixed-horizon A/B rule (decided once, at the planned sample)."""
    ab = policy.ab_test.model_copy(update={"stopping": ABStopping.FIXED})
    return policy.model_copy(update={"ab_test": ab})


# ~200 users an hour with a heavy per-user spread: at the 1-day minimum duration the fixed rule
# decides on ~4,300 champion and ~480 challenger users, whose per-user errors are strongly skewed
SKEWED_USERS = Traffic(users_per_hour=200.0, user_sigma=1.0)
SMALL_FIXED_PLAN = AbPlan(
    shadow_effect=0.0,
    planned_effect=0.02,
    baseline_mean=SKEWED_USERS.base_error,
    baseline_std=SKEWED_USERS.base_error,
    win_plausible=False,
    units_per_hour=SKEWED_USERS.users_per_hour,
    tau=0.05 * SKEWED_USERS.base_error,
    n_champion=4000,
    n_challenger=400,
    summary="a small fixed-horizon plan: 4,000 champion and 400 challenger users",
)


def with_method(method: ABMethod, stopping: ABStopping) -> Callable[[Policy], Policy]:
    def change(policy: Policy) -> Policy:
        ab = policy.ab_test.model_copy(update={"method": method, "stopping": stopping})
        return policy.model_copy(update={"ab_test": ab})

    return change


def _method(
    traffic: Traffic, method: ABMethod, stopping: ABStopping
) -> Callable[[Policy, int, float], Outcome]:
    """A/B tests (no ramp) with another `ab_test.method`; a fixed horizon at the shadow's plan."""
    change = with_method(method, stopping)
    return lambda policy, seed, every: run_ab_and_ramp(change(policy), traffic, seed, every, ramp=False)


def _fixed(traffic: Traffic, plan: AbPlan) -> Callable[[Policy, int, float], Outcome]:
    return lambda policy, seed, every: run_ab_and_ramp(
        fixed_horizon(policy), traffic, seed, every, ramp=False, horizon=2 * DAY, plan=plan
    )


def _sh(traffic: Traffic) -> Callable[[Policy, int, float], Outcome]:
    return lambda policy, seed, every: run_shadow(policy, traffic, seed, every)


def _rule(*names: str) -> Callable[[Outcome], bool]:
    return lambda outcome: outcome.rule in names


def won_by_plan(outcome: Outcome) -> bool:
    """A win by the first look at which the plan expected its users: the power the plan promised."""
    planned = outcome.planned_minutes
    return outcome.rule == "ab.win" and planned is not None and outcome.minutes <= planned


DAY = 24 * 60.0
FEW_USERS = Traffic(users_per_hour=2.0)  # ~50 users a day: 1,000 labelled pairs from few users
TIMED = Traffic(latency_ms=20.0)  # model calls 20 ms median, p99 40 ms (lognormal spread 0.3)

SCENARIOS: list[Scenario] = [
    Scenario(
        "A/A, 14 days",
        "A/B false win",
        _rule("ab.win"),
        "<= 5 % (alpha)",
        ("<=", 0.05),
        _ab(Traffic(), ramp=False),
    ),
    Scenario(
        "A/A, 14 days",
        "A/B false loss",
        _rule("ab.loss"),
        "<= 5 % (alpha)",
        ("<=", 0.05),
        _ab(Traffic(), ramp=False),
    ),
    Scenario(
        "A/A, 14 days",
        "SRM false invalid",
        _rule("ab.srm"),
        "<= 0.1 %",
        ("<=", 0.001),
        _ab(Traffic(), ramp=False),
    ),
    Scenario(
        "2 % better, 14 days",
        "A/B loss of a better challenger",
        _rule("ab.loss"),
        "<= 5 % (alpha)",
        ("<=", 0.05),
        _ab(Traffic(effect=-0.02), ramp=False),
    ),
    *[
        row
        for name, effect, changes in (
            ("3 % better, share 50 %", -0.03, {"ab_test": {"share": 0.5}}),
            ("5 % better", -0.05, {}),
            ("5 % better, share 50 %", -0.05, {"ab_test": {"share": 0.5}}),
        )
        for row in (
            Scenario(
                name,
                "A/B win by the planned users (power)",
                won_by_plan,
                ">= 78 % (plan: 80 %)",
                (">=", 0.78),
                _ab(Traffic(effect=effect), ramp=False),
                policy=changes,
            ),
            Scenario(
                name,
                "A/B futile stop of a challenger better by the planned effect",
                _rule("ab.futile"),
                "<= 2.5 % (alpha / 2)",
                ("<=", 0.025),
                _ab(Traffic(effect=effect), ramp=False),
                policy=changes,
            ),
        )
    ],
    Scenario(
        "A/A, margin 3 %, share 50 %",
        "A/B futile stop of an equal challenger",
        _rule("ab.futile"),
        "- (as early as the evidence allows)",
        (">=", 0.0),
        _ab(Traffic(), ramp=False),
        policy={"ab_test": {"share": 0.5, "min_improvement": 0.03}},
    ),
    Scenario(
        "10 % worse",
        "A/B loss (power)",
        _rule("ab.loss"),
        ">= 78 %",
        (">=", 0.78),
        _ab(Traffic(effect=0.10), ramp=False),
    ),
    Scenario(
        "fixed horizon, at the 1 % margin, skewed users, ~480 challenger users",
        "A/B fixed-rule false win",
        _rule("ab.win"),
        "<= 2.5 % (alpha / 2)",
        ("<=", 0.025),
        _fixed(replace(SKEWED_USERS, effect=-0.01), SMALL_FIXED_PLAN),
    ),
    Scenario(
        "fixed horizon, A/A, skewed users, ~480 challenger users",
        "A/B fixed-rule false loss",
        _rule("ab.loss"),
        "<= 2.5 % (alpha / 2)",
        ("<=", 0.025),
        _fixed(SKEWED_USERS, SMALL_FIXED_PLAN),
    ),
    Scenario(
        "fixed horizon, 8 % better, skewed users, ~480 challenger users",
        "A/B fixed-rule win (power)",
        _rule("ab.win"),
        "reported",
        (">=", 0.0),
        _fixed(replace(SKEWED_USERS, effect=-0.08), SMALL_FIXED_PLAN),
    ),
    *[
        Scenario(
            f"A/A, {method.value}, {stopping.value}, 1-50 requests per user",
            "A/B false win or loss, other methods",
            lambda o: o.rule in ("ab.win", "ab.loss"),
            "<= 5 % (alpha)",
            ("<=", 0.05),
            _method(Traffic(), method, stopping),
        )
        for method, stopping in (
            (ABMethod.WELCH, ABStopping.SEQUENTIAL),
            (ABMethod.WELCH, ABStopping.FIXED),
            (ABMethod.MANN_WHITNEY, ABStopping.FIXED),
        )
    ],
    Scenario(
        "users 10 % short on the challenger",
        "SRM caught",
        _rule("ab.srm"),
        ">= 95 %",
        (">=", 0.95),
        _ab(Traffic(assigned_share=0.09), ramp=False),
    ),
    *[
        Scenario(
            f"both arms fail {p:.1%}, A/B 2 days + ramp",
            "failure-rate false rollback",
            _rule("guardrail.error_rate"),
            "<= 1 %",
            ("<=", 0.01),
            _ab(Traffic(effect=-0.10, champion_failure=p, challenger_failure=p), horizon=2 * DAY),
        )
        for p in (0.001, 0.005, 0.01)
    ],
    Scenario(
        "challenger fails 2.5 %, champion 0.5 %",
        "failure-rate rollback (harm)",
        _rule("guardrail.error_rate"),
        ">= 99 %",
        (">=", 0.99),
        _ab(Traffic(champion_failure=0.005, challenger_failure=0.025), ramp=False, horizon=2 * DAY),
    ),
    *[
        Scenario(
            f"p99 {slowdown:g} x the champion's (limit 1.5 x + 5 ms), A/B 2 days + ramp",
            "latency false rollback",
            _rule("guardrail.latency_p99"),
            "<= 1 %",
            ("<=", 0.01),
            _ab(replace(TIMED, effect=-0.10, slowdown=slowdown), horizon=2 * DAY),
        )
        for slowdown in (1.0, 1.3)
    ],
    Scenario(
        "p99 1.45 x the champion's, 200 ms calls (slack negligible), A/B 2 days + ramp",
        "latency false rollback",
        _rule("guardrail.latency_p99"),
        "<= 1 %",
        ("<=", 0.01),
        _ab(replace(TIMED, latency_ms=200.0, effect=-0.10, slowdown=1.45), horizon=2 * DAY),
    ),
    Scenario(
        "p99 2 x the champion's, A/B test",
        "latency rollback (harm)",
        _rule("guardrail.latency_p99"),
        ">= 99 %",
        (">=", 0.99),
        _ab(replace(TIMED, slowdown=2.0), ramp=False, horizon=2 * DAY),
    ),
    Scenario(
        "10 % better, A/B 2 days + ramp",
        "error-ratio false rollback",
        _rule("guardrail.error_ratio"),
        "<= 1 %",
        ("<=", 0.01),
        _ab(Traffic(effect=-0.10), horizon=2 * DAY),
    ),
    Scenario(
        "equal, few users",
        "shadow false reject",
        lambda o: o.action is Action.REJECT,
        "<= 5 %",
        ("<=", 0.05),
        _sh(FEW_USERS),
    ),
    *[
        Scenario(
            f"equal on average, user x model spread {sigma:g}, {rate:g} users an hour",
            "shadow false reject",
            lambda o: o.action is Action.REJECT,
            "<= 5 %",
            ("<=", 0.05),
            # the challenger's per-user factor exp(N(0, sigma)) has mean exp(sigma^2 / 2): divided out
            _sh(
                replace(
                    FEW_USERS,
                    users_per_hour=rate,
                    user_model_sigma=sigma,
                    effect=math.exp(-(sigma**2) / 2) - 1,
                )
            ),
        )
        for sigma, rate in ((0.1, 2.0), (0.3, 20.0))
    ],
    Scenario(
        "10 % worse, few users",
        "shadow pass of a worse challenger",
        _rule("shadow.passed"),
        "<= 5 %",
        ("<=", 0.05),
        _sh(replace(FEW_USERS, effect=0.10)),
    ),
    Scenario(
        "5 % worse (at the tolerance), few users",
        "shadow pass of a worse challenger",
        _rule("shadow.passed"),
        "<= 5 %",
        ("<=", 0.05),
        _sh(replace(FEW_USERS, effect=0.05)),
    ),
    Scenario(
        "equal, few users",
        "shadow pass (power)",
        _rule("shadow.passed"),
        ">= 95 %",
        (">=", 0.95),
        _sh(FEW_USERS),
    ),
]


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class Row:
    scenario: Scenario
    schedule: str
    runs: int
    hits: int
    median_minutes: float | None
    median_requests: float | None

    @property
    def rate(self) -> float:
        return self.hits / self.runs if self.runs else 0.0

    @property
    def meets(self) -> bool:
        op, value = self.scenario.bound
        return self.rate <= value if op == "<=" else self.rate >= value


def measure(
    scenario: Scenario,
    policy: Policy,
    runs: int,
    every: float,
    seed: int,
    cache: dict[tuple[str, float, int], list[Outcome]] | None = None,
) -> Row:
    """One scenario's rate; scenarios of the same name share their runs (one A/A run, several rules)."""
    key = (scenario.name, every, runs)
    outcomes = (cache or {}).get(key) or [scenario.run(policy, seed + i, every) for i in range(runs)]
    if cache is not None:
        cache[key] = outcomes
    hits = [o for o in outcomes if scenario.counts(o)]
    minutes = float(np.median([o.minutes for o in hits])) if hits else None
    reqs = float(np.median([o.challenger_requests for o in hits])) if hits else None
    label = f"every {every:g} min" if every < SIX_HOURS else "every 6 h"
    return Row(scenario, label, runs, len(hits), minutes, reqs)


def table(rows: list[Row]) -> str:
    lines = [
        "| rule | scenario | looks | runs | measured (95 % CI) | target | median time to it "
        "| challenger requests by then |",
        "|---|---|---|---:|---:|---|---:|---:|",
    ]
    for row in rows:
        low, high = wilson(row.hits, row.runs)
        mark = "" if row.meets else " **miss**"
        when = "-" if row.median_minutes is None else f"{row.median_minutes / 60:.1f} h"
        reqs = "-" if row.median_requests is None else f"{row.median_requests:,.0f}"
        lines.append(
            f"| {row.scenario.rule} | {row.scenario.name} | {row.schedule} | {row.runs} | "
            f"{row.rate:.1%} ({low:.1%}-{high:.1%}){mark} | {row.scenario.target} | {when} | {reqs} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="runs per scenario with a look every 6 h")
    parser.add_argument("--fast-runs", type=int, default=40, help="runs per scenario with frequent looks")
    parser.add_argument("--fast-minutes", type=float, default=10.0, help="minutes between frequent looks")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument(
        "--only", default="", help="only rules whose name contains this (or one of these, split by |)"
    )
    parser.add_argument("--markdown", action="store_true", help="print the RESULTS.md block")
    args = parser.parse_args(argv)
    policy = Policy()
    rows: list[Row] = []
    cache: dict[tuple[str, float, int], list[Outcome]] = {}
    for scenario in SCENARIOS:
        if args.only and not any(part.lower() in scenario.rule.lower() for part in args.only.split("|")):
            continue
        for runs, every in ((args.runs, SIX_HOURS), (args.fast_runs, args.fast_minutes)):
            if runs > 0:
                chosen = Policy.model_validate(scenario.policy) if scenario.policy else policy
                row = measure(scenario, chosen, runs, every, args.seed, cache)
                rows.append(row)
                print(table([row]).splitlines()[-1], file=sys.stderr, flush=True)
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
