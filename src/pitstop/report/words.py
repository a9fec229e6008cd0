"""The decision in words, and the recorded numbers as people read them: built from the events, never typed.

Pure functions over what the controller recorded (rule, reason, numbers of each transition, and the
rollout's last check): the report says exactly what the evidence log says.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pitstop.durations import describe_span
from pitstop.events import Event
from pitstop.formats import decision_numbers, fmt_time
from pitstop.report.values import ABResult, Narrative, StatusWords
from pitstop.rules import Rule

if TYPE_CHECKING:
    from pitstop.config import Policy
    from pitstop.rollout.actions import RolloutStatus
    from pitstop.rollout.manual_shadow import ShadowComparison

# What a rule means, for the rules whose name alone does not say it to someone who has not read the docs.
RULE_WORDS: dict[str, str] = {  # keyed by `Rule`, looked up by a stored rule name
    Rule.AB_UNWINNABLE: (
        "the A/B test was not started: it could not reach the users its plan needs within its maximum "
        "duration at the traffic and users the shadow saw"
    ),
    Rule.AB_FUTILE: (
        "the A/B test stopped early: its always-valid interval ruled out an improvement beyond the margin"
    ),
    Rule.AB_INCONCLUSIVE: "the A/B test reached its maximum duration without a conclusion",
    Rule.AB_SRM: "the experiment was invalid: users did not split between the arms as assigned",
}


def rule_words(rule: str | None) -> str | None:
    """What a rule means in words, when its name needs them.

    >>> rule_words(Rule.AB_FUTILE).startswith("the A/B test stopped early")
    True
    >>> rule_words(Rule.RAMP_STEP) is None
    True
    """
    return RULE_WORDS.get(rule or "")


def _headline(rollout: Mapping[str, Any]) -> str:
    model, champion, challenger = rollout["model"], rollout["champion_version"], rollout["challenger_version"]
    outcome, stage = rollout.get("outcome"), rollout.get("stage")
    if outcome is None:
        return (
            f"In progress ({_phase_text(rollout)}): version {challenger} against champion version {champion}"
        )
    if outcome == "promoted":
        return f"Promoted: version {challenger} replaced version {champion} as the champion of {model}"
    if outcome == "rolled_back":
        if stage == "promoted":
            return f"Rolled back after promotion: version {champion} is the champion of {model} again"
        return f"Rolled back during {stage}: every user is back on champion version {champion}"
    if outcome == "rejected":
        seen = "users never saw the challenger" if stage == "shadow" else "the champion serves everyone"
        return (
            f"Rejected in {stage}: version {champion} stays champion, version {challenger} does not ({seen})"
        )
    return f"Aborted during {stage}: version {champion} stays champion"


def _phase_text(rollout: Mapping[str, Any]) -> str:
    share = rollout.get("challenger_share")
    phase = str(rollout.get("phase"))
    if phase in ("ab_test", "ramp") and share is not None:
        return f"{phase} {share:.0%}"
    return phase


def describe_transition(event: Event) -> str:
    """One line of the rollout's path: when, from → to, the rule, who, why."""
    return (
        f"{fmt_time(event.time)}: {event.from_state} → {event.to_state} by {event.actor} "
        f"(rule {event.rule}): {event.reason}"
    )


def narrative(rollout: Mapping[str, Any], transitions: list[Event]) -> Narrative:
    """The decision in words: what happened (or is happening), the rule that decided, its numbers, and
    every transition on the way."""
    path = [describe_transition(event) for event in transitions]
    outcome = rollout.get("outcome")
    if outcome is not None:
        ending = next((e for e in reversed(transitions) if e.to_state == outcome), None)
        if ending is not None:
            meaning = rule_words(ending.rule)
            rule = ending.rule if meaning is None else f"{ending.rule} ({meaning})"
            because = f"{ending.actor} applied rule {rule} at {fmt_time(ending.time)}: {ending.reason}"
            return Narrative(_headline(rollout), because, decision_numbers(ending.data), path)
        return Narrative(_headline(rollout), f"recorded reason: {rollout.get('reason')}", [], path)
    check = rollout.get("last_check") or {}
    if not check:
        because = "the controller has not looked at this rollout yet"
    else:
        checked = check.get("checked_at")
        when = fmt_time(datetime.fromisoformat(checked)) if checked else "-"
        rule, action = check.get("rule"), check.get("action")
        because = f"last check at {when}: rule {rule} says {action}: {check.get('reason')}"
    return Narrative(_headline(rollout), because, decision_numbers(check.get("numbers")), path)


def ab_result(
    numbers: Mapping[str, Any],
    *,
    rule: str,
    reason: str,
    final: bool,
    time: datetime | None,
    margin: float,
    alpha: float,
) -> ABResult:
    """The A/B numbers a decision recorded (sequential look, fixed-horizon verdict or Mann-Whitney test),
    with the effect as a relative change of the challenger's error against the champion's."""
    effect = low = high = p_value = None
    method = "none"
    if isinstance(numbers.get("verdict"), Mapping):
        verdict = numbers["verdict"]
        method = str(verdict.get("method", "verdict"))
        effect, low, high = verdict.get("relative_effect"), verdict.get("ci_low"), verdict.get("ci_high")
        p_value = verdict.get("p_value")
    elif isinstance(numbers.get("sequential"), Mapping):
        look = numbers["sequential"]
        method = str(look.get("method", "msprt"))
        baseline = (look.get("details") or {}).get("mean_champion")
        if baseline:
            effect, low, high = (
                _ratio(look.get("estimate"), baseline),
                _ratio(look.get("ci_low"), baseline),
                _ratio(look.get("ci_high"), baseline),
            )
        p_value = look.get("p_value")
    elif isinstance(numbers.get("test"), Mapping):
        test = numbers["test"]
        method = str(test.get("method", "test"))
        p_value = test.get("p_value")
    return ABResult(
        method=method,
        effect=effect,
        ci_low=low,
        ci_high=high,
        p_value=p_value,
        margin=margin,
        alpha=alpha,
        units=dict(numbers.get("units") or {}),
        labelled=dict(numbers.get("labelled") or {}),
        srm=numbers.get("srm") if isinstance(numbers.get("srm"), Mapping) else None,
        rule=rule,
        reason=reason,
        final=final,
        time=time,
    )


def _ratio(value: Any, baseline: float) -> float | None:
    return None if value is None else float(value) / float(baseline)


# -- a rollout in progress, as `rollout status` and the dashboard say it ------------------------------


def status_words(status: RolloutStatus) -> StatusWords | None:
    """The words of a rollout in progress (None once it has ended: its narrative says how)."""
    if status.rollout.state.outcome is not None or status.next_check is None:
        return None
    phase = status.rollout.state.phase.value
    minimum = phase_minimum(phase, status.rollout.policy)
    elapsed = timedelta(hours=status.elapsed_hours)
    return StatusWords(
        verdict=verdict(status.comparison, status.progress),
        next_check=next_check(phase, status.progress, elapsed, minimum, status.next_check),
        next_reason=str(status.next_check.get("reason") or ""),
        progress=progress_words(status.progress) if status.progress else None,
        latency=latency_words(status.latency),
    )


def shadow_comparison_words(result: ShadowComparison) -> StatusWords:
    """A shadow set by hand (`pitstop compare`) in the words of a rollout's shadow phase; what the next
    check needs and would do are what a rollout's shadow phase would need and do."""
    would = result.verdict
    preview = {"action": would.action.value, "rule": would.rule}
    needs = next_check(
        "shadow",
        result.progress,
        timedelta(hours=result.elapsed_hours),
        result.policy.shadow.min_duration,
        preview,
    )
    return StatusWords(
        verdict=verdict(result.comparison, result.progress),
        next_check=f"as a rollout's shadow phase, {needs}",
        next_reason=would.reason,
        progress=progress_words(result.progress),
        latency=None,
    )


def verdict(comparison: Mapping[str, Any] | None, progress: Mapping[str, Any] | None) -> str:
    """The verdict so far in one sentence: better, worse or not yet, with the phase's test interval of
    the challenger's error relative to the champion's (negative: lower).

    >>> better = {"estimate": -0.3, "low": -0.4, "high": -0.2}
    >>> print(verdict({"test": "msprt", "p_value": 1e-5, "level": 0.95, "relative": better}, None))
    ... # doctest: +NORMALIZE_WHITESPACE
    Better so far: the challenger's error is 30.0% lower than the champion's (95% interval -40.0% to
    -20.0%, msprt p = 1e-05).
    >>> unsure = {"estimate": 0.01, "low": -0.03, "high": 0.05}
    >>> print(verdict({"test": "paired_t", "p_value": 0.4, "level": 0.95, "relative": unsure}, None))
    ... # doctest: +NORMALIZE_WHITESPACE
    Not yet: the challenger's error is 1.0% higher than the champion's, but the 95% interval -3.0% to
    +5.0% includes no change (paired_t p = 0.4).
    >>> verdict(None, {"unit": "labelled pairs", "labelled": {"pairs": 12}, "required": {"pairs": 60}})
    'Not yet: no test until both sides have labelled errors that vary (labelled pairs: 12 of 60).'
    """
    relative = (comparison or {}).get("relative")
    if not comparison or not relative:
        counted = f" ({progress_words(progress)})" if progress else ""
        return f"Not yet: no test until both sides have labelled errors that vary{counted}."
    effect, low, high = relative["estimate"], relative["low"], relative["high"]
    size = f"{abs(effect):.1%} {'lower' if effect < 0 else 'higher'}"
    interval = f"{comparison['level']:.0%} interval {low:+.1%} to {high:+.1%}"
    test = f"{comparison['test']} p = {comparison['p_value']:.2g}"
    if high < 0:
        return f"Better so far: the challenger's error is {size} than the champion's ({interval}, {test})."
    if low > 0:
        return f"Worse so far: the challenger's error is {size} than the champion's ({interval}, {test})."
    return (
        f"Not yet: the challenger's error is {size} than the champion's, but the {interval} includes no "
        f"change ({test})."
    )


def progress_words(progress: Mapping[str, Any]) -> str:
    """`labelled users: challenger 120 of 438, champion 400 of 1314` (what the phase counts and needs).

    >>> progress_words({"unit": "labelled pairs", "labelled": {"pairs": 12}, "required": {"pairs": 60}})
    'labelled pairs: 12 of 60'
    """
    have, required = progress["labelled"], progress["required"]
    if "pairs" in have:
        return f"{progress['unit']}: {have['pairs']} of {required['pairs']}"
    need = required or {}
    counts = ", ".join(f"{side} {have[side]} of {need.get(side, '?')}" for side in ("challenger", "champion"))
    return f"{progress['unit']}: {counts}" + ("" if required else " (no A/B plan to count toward)")


def phase_minimum(phase: str, policy: Policy) -> timedelta | None:
    """How long a phase (or ramp step) runs at least before it may move on."""
    return {
        "shadow": policy.shadow.min_duration,
        "ab_test": policy.ab_test.min_duration,
        "ramp": policy.ramp.dwell,
    }.get(phase)


def next_check(
    phase: str,
    progress: Mapping[str, Any] | None,
    elapsed: timedelta,
    minimum: timedelta | None,
    preview: Mapping[str, Any] | None,
) -> str:
    """What the next check needs before the phase can move on (labelled samples, time), and what it
    would do now (`preview`: the next check's action and rule).

    >>> progress = {"unit": "labelled users", "labelled": {"champion": 60, "challenger": 60},
    ...             "required": {"champion": 400, "challenger": 400}}
    >>> next_check("ab_test", progress, timedelta(hours=1), timedelta(hours=2), {"action": "stay"})
    'needs 340 more labelled users per arm and 60m more (minimum duration 2.0h); now: stay'
    >>> next_check("ramp", None, timedelta(minutes=25), timedelta(hours=1), None)
    'needs the dwell to end, in 35m'
    >>> next_check("ramp", None, timedelta(hours=2), timedelta(hours=1), {"action": "advance"})
    'advance'
    """
    needs = _samples_needed(progress)
    left = None if minimum is None else minimum - elapsed
    if minimum is not None and left is not None and left > timedelta(0):
        if phase == "ramp":
            needs.append(f"the dwell to end, in {describe_span(left)}")
        else:
            needs.append(f"{describe_span(left)} more (minimum duration {describe_span(minimum)})")
    now = _preview(preview)
    if not needs:
        return now or "nothing pending"
    return f"needs {' and '.join(needs)}" + (f"; now: {now}" if now else "")


def _preview(preview: Mapping[str, Any] | None) -> str:
    if not preview or not preview.get("action"):
        return ""
    rule = preview.get("rule")
    return f"{preview['action']} ({rule})" if rule else str(preview["action"])


def latency_words(check: Mapping[str, Any] | None) -> str | None:
    """What the p99 latency rule sees now (`comparison.latency_check`), in one line.

    >>> print(latency_words({"p99_ms": 12.04, "limit_ms": 40.1, "baseline_ms": 23.4, "ratio": 1.5,
    ...                      "slack_ms": 5.0, "calls": 523, "slow_calls": 2}))
    ... # doctest: +NORMALIZE_WHITESPACE
    challenger p99 12.0 ms (cumulative in phase) against a 40.1 ms limit (1.5 x champion p99 bound
    23.4 ms + 5 ms); 2 of 523 calls slower than the limit
    """
    if not check:
        return None
    p99 = "-" if check["p99_ms"] is None else f"{check['p99_ms']:.1f} ms"
    if check["limit_ms"] is None:
        return (
            f"challenger p99 {p99} (cumulative in phase); no limit until the champion has served enough calls"
        )
    return (
        f"challenger p99 {p99} (cumulative in phase) against a {check['limit_ms']:.1f} ms limit "
        f"({check['ratio']:g} x champion p99 bound {check['baseline_ms']:.1f} ms "
        f"+ {check['slack_ms']:g} ms); "
        f"{check['slow_calls']} of {check['calls']} calls slower than the limit"
    )


def _samples_needed(progress: Mapping[str, Any] | None) -> list[str]:
    """`340 more labelled users per arm`, `12 more labelled pairs`, or one arm's."""
    if not progress or not progress.get("required"):
        return []
    have, need, unit = progress["labelled"], progress["required"], progress["unit"]
    missing = {side: max(int(need[side]) - int(have.get(side, 0)), 0) for side in need}
    if "pairs" in missing:
        return [f"{missing['pairs']} more {unit}"] if missing["pairs"] else []
    if len(set(missing.values())) == 1:
        (count,) = set(missing.values())
        return [f"{count} more {unit} per arm"] if count else []
    return [f"{count} more {unit} on the {side}" for side, count in sorted(missing.items()) if count]
