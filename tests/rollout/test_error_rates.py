"""Each rule's error rate over whole simulated tests: a small, fixed-seed run of bench/decisions.py
through the real `decide()` (the benchmark measures the same rates with more runs)."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path
from types import ModuleType

from pitstop.config import Policy

POLICY = Policy()


def load_harness() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "bench" / "decisions.py"
    spec = importlib.util.spec_from_file_location("bench_decisions", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


bench = load_harness()


def outcomes(
    traffic: object, runs: int, every_minutes: float, seed: int, horizon: float | None = None
) -> Counter[str]:
    """How `runs` A/B tests (no ramp) ended, by rule."""
    return Counter(
        bench.run_ab_and_ramp(POLICY, traffic, seed + i, every_minutes, ramp=False, horizon=horizon).rule
        for i in range(runs)
    )


# Sample-ratio checks need only units: no labels, so a look is cheap.
UNITS_ONLY = bench.Traffic(users_per_hour=300, max_requests=3, labels=False)


def test_sound_experiments_are_not_called_invalid_however_often_one_looks() -> None:
    """A look every 30 min for 14 days, 60 sound experiments: none ends "experiment invalid".

    A chi-square at p < 0.001 re-tested at every look ended 2 of these 60 (the sequential test's
    bound over the whole test is 0.1 %)."""
    seen = outcomes(UNITS_ONLY, runs=60, every_minutes=30, seed=1000)
    assert seen["ab.srm"] == 0, seen


def test_a_ten_percent_short_arm_is_found_invalid() -> None:
    """9 % of users on the challenger instead of 10 %: every test ends "experiment invalid"."""
    short = replace(UNITS_ONLY, assigned_share=0.09)
    runs = [bench.run_ab_and_ramp(POLICY, short, 2000 + i, 60, ramp=False) for i in range(10)]
    assert {run.rule for run in runs} == {"ab.srm"}
    assert max(run.minutes for run in runs) / 60 < 7 * 24  # within a week at 300 users an hour


def test_equal_challengers_are_not_found_worse_at_early_frequent_looks() -> None:
    """A/A, a look every 10 min for the first 12 hours, 100 tests: no loss.

    Deciding from a few users per arm with plug-in variances, and on a p-value without direction,
    ended one of these 100 as "significantly worse" after 3 challenger users."""
    seen = outcomes(bench.Traffic(), runs=100, every_minutes=10, seed=17, horizon=12 * 60)
    assert seen["ab.loss"] == 0, seen


def test_a_challenger_failing_as_often_as_the_champion_is_not_rolled_back() -> None:
    """Both arms fail 1 % of requests; a look every 10 min for 6 h, 30 A/B tests: no rollback.

    The raw rate above 2 % after 20 requests rolled back 2 of these 30 (26 % over two days in
    bench/decisions.py)."""
    both = bench.Traffic(champion_failure=0.01, challenger_failure=0.01)
    seen = outcomes(both, runs=30, every_minutes=10, seed=4000, horizon=6 * 60)
    assert seen["guardrail.error_rate"] == 0, seen


def test_a_challenger_failing_five_times_as_often_is_rolled_back_within_its_first_requests() -> None:
    """Champion 0.5 %, challenger 2.5 %: every test rolls back, within 2,000 challenger requests."""
    harmful = bench.Traffic(champion_failure=0.005, challenger_failure=0.025)
    runs = [
        bench.run_ab_and_ramp(POLICY, harmful, 5000 + i, 10, ramp=False, horizon=24 * 60) for i in range(10)
    ]
    assert {run.rule for run in runs} == {"guardrail.error_rate"}
    assert max(run.challenger_requests for run in runs) <= 2_000


def shadow_outcomes(traffic: object, runs: int, seed: int) -> Counter[str]:
    """How `runs` shadows (a look every 6 h, up to `shadow.max_duration`) ended, by rule."""
    return Counter(bench.run_shadow(POLICY, traffic, seed + i, 6 * 60).rule for i in range(runs))


def test_a_challenger_worse_than_the_tolerance_does_not_pass_the_shadow() -> None:
    """7 % worse (5 % tolerated), ~50 users a day, 40 shadows: none passes.

    The raw ratio of means at the first look with 1,000 pairs passed 5 of these 40; the per-user
    confidence sequence passes one at the tolerance at most `shadow.alpha` of the time."""
    seen = shadow_outcomes(replace(bench.FEW_USERS, effect=0.07), runs=40, seed=900)
    assert seen["shadow.passed"] == 0, seen


def test_an_equally_good_challenger_passes_the_shadow() -> None:
    """Equal errors, ~50 users a day, 40 shadows: at most 2 rejected (on evidence or as inconclusive)."""
    seen = shadow_outcomes(bench.FEW_USERS, runs=40, seed=900)
    assert seen["shadow.passed"] >= 38, seen
    assert seen["shadow.error_ratio"] == 0, seen


def test_the_sequential_plan_delivers_its_power_by_the_planned_users() -> None:
    """5 % better, share 50 %, a look every 6 h, 20 tests: at least 15 win by the time the plan expected
    its users, none stops as futile.

    Planned with the fixed-horizon size, as before, the default sequential test won about half the
    time by then (45-49 % for 3 % and 5 % gains in bench/decisions.py)."""
    even = Policy.model_validate({"ab_test": {"share": 0.5}})
    better = bench.Traffic(effect=-0.05)
    runs = [bench.run_ab_and_ramp(even, better, 6000 + i, 360, ramp=False) for i in range(20)]
    assert sum(bench.won_by_plan(run) for run in runs) >= 15, [
        (r.rule, r.minutes, r.planned_minutes) for r in runs
    ]
    assert not any(run.rule == "ab.futile" for run in runs)


def test_an_equal_challenger_stops_as_futile_long_before_the_maximum_duration() -> None:
    """A/A with a 3 % margin, share 50 %, a look every 6 h: every one of 10 tests stops early as futile
    (users are not kept on a challenger that cannot win), within 6 of its 14 days."""
    wide = Policy.model_validate({"ab_test": {"share": 0.5, "min_improvement": 0.03}})
    runs = [bench.run_ab_and_ramp(wide, bench.Traffic(), 7000 + i, 360, ramp=False) for i in range(10)]
    assert {run.rule for run in runs} == {"ab.futile"}
    assert max(run.minutes for run in runs) <= 6 * 24 * 60


def test_the_fixed_rule_wins_at_the_margin_at_most_half_alpha_on_skewed_users() -> None:
    """Fixed horizon, a challenger exactly at the 1 % margin, heavy per-user spread, ~480 challenger
    users (1-10 requests each) at the verdict: 100 tests, at most 2 wins (the rule's rate is
    alpha / 2 = 2.5 %).

    Fieller's rule one-sided at alpha on each arm's own variance won 10 of these 100 (4.8 % of 400 in
    bench/decisions.py): a small arm without its heavy users has a low mean and a low variance."""
    policy = bench.fixed_horizon(POLICY)
    at_margin = replace(bench.SKEWED_USERS, effect=-0.01, max_requests=10)
    wins = sum(
        bench.run_ab_and_ramp(
            policy, at_margin, 7000 + i, 360, ramp=False, horizon=25 * 60, plan=bench.SMALL_FIXED_PLAN
        ).rule
        == "ab.win"
        for i in range(100)
    )
    assert wins <= 2, wins


def test_welch_and_mann_whitney_analyse_users_so_equal_challengers_are_not_found_different() -> None:
    """Users send 1-50 requests each, both arms equal: `welch` (sequential) and `mann_whitney` (fixed
    horizon at a small plan), 10 tests of a day each: no win or loss.

    On per-request errors, as both were before, most of these tests ended as a win or a loss."""
    for method, stopping, plan in (
        (bench.ABMethod.WELCH, bench.ABStopping.SEQUENTIAL, None),
        (bench.ABMethod.MANN_WHITNEY, bench.ABStopping.FIXED, bench.SMALL_FIXED_PLAN),
    ):
        policy = bench.with_method(method, stopping)(POLICY)
        runs = [
            bench.run_ab_and_ramp(
                policy, bench.Traffic(), 8000 + i, 360, ramp=False, horizon=25 * 60, plan=plan
            )
            for i in range(10)
        ]
        decided = [run.rule for run in runs if run.rule in ("ab.win", "ab.loss")]
        assert decided == [], (method, decided)


def test_a_challenger_no_slower_than_allowed_is_not_rolled_back_for_latency() -> None:
    """Challenger calls 1.3 x the champion's (the limit is 1.5 x + 5 ms), a look every 10 min for
    6 h, 10 A/B tests: no latency rollback, however often the controller looks."""
    within = replace(bench.TIMED, slowdown=1.3, max_requests=10)
    seen = outcomes(within, runs=10, every_minutes=10, seed=9000, horizon=6 * 60)
    assert seen["guardrail.latency_p99"] == 0, seen


def test_a_challenger_twice_as_slow_is_rolled_back_within_its_first_calls() -> None:
    """Challenger p99 2 x the champion's: every one of 10 tests rolls back, within 1,500 of its calls."""
    slow = replace(bench.TIMED, slowdown=2.0)
    runs = [bench.run_ab_and_ramp(POLICY, slow, 9500 + i, 10, ramp=False, horizon=6 * 60) for i in range(10)]
    assert {run.rule for run in runs} == {"guardrail.latency_p99"}
    assert max(run.challenger_requests for run in runs) <= 1_500
