"""The decision in words, and the recorded numbers as people read them: built from the events, never typed.

Pure functions over what the controller recorded (rule, reason, numbers of each transition, and the
rollout's last check): the report says exactly what the evidence log says.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pitstop.events import Event
from pitstop.formats import decision_numbers, fmt_time
from pitstop.report.values import ABResult, Narrative
from pitstop.rules import Rule

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
