"""What an on-call engineer reads first about one model on the dashboard: the phase and share, the
verdict so far, what the next check needs, the last decision with its numbers, and the rollout's health.

Pure shaping of values already read (the rollout's report data and `rollout status`); the words are the
ones `rollout status` prints (`words.status_words`), so the two never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

from pitstop.events import Event, EventKind
from pitstop.formats import MAX_KEY_NUMBERS, decision_numbers, fmt_time
from pitstop.report.values import ReportData, StatusWords
from pitstop.report.words import rule_words


@dataclass(frozen=True)
class LastDecision:
    """The rollout's latest transition: when, who, from → to, the rule, its reason and its numbers."""

    time: str  # `fmt_time`
    actor: str
    change: str  # `shadow → ab_test 50%`
    rule: str
    meaning: str | None  # the rule in words, when its name needs them
    reason: str
    numbers: list[tuple[str, str]]  # the most telling first, as `rollout history` shows them
    more_numbers: list[tuple[str, str]]  # the rest of what the rule recorded


@dataclass(frozen=True)
class Counter:
    """One health counter of the rollout, over its predictions so far (from the prediction log)."""

    name: str
    champion: str
    challenger: str


@dataclass(frozen=True)
class Glance:
    """The top of a model's card on the dashboard."""

    phase: str  # as people say it: `shadow`, `ab_test 50%`, `promoted`, `no rollout`
    share: str  # who serves whom
    verdict: str  # one sentence: better / worse / not yet with the interval, or how the rollout ended
    next_check: str | None  # what the next check needs (None once the rollout has ended)
    next_reason: str | None
    latency: str | None  # what the p99 latency rule sees now
    progress: str | None
    last_decision: LastDecision | None
    counters: list[Counter]  # the rollout's own health, since it began (not the gateway process's)
    since: str | None  # when the counters begin: the rollout's start


def unreadable(
    phase: str, versions: tuple[int | None, int | None], share: float | None, error: str
) -> Glance:
    """The glance of a model whose report or live status cannot be read: who serves whom, and why."""
    who = _share_text(phase, versions, share)
    return Glance(phase, who, f"Status unavailable: {error}", None, None, None, None, None, [], None)


def glance(
    phase: str,
    versions: tuple[int | None, int | None],
    share: float | None,
    report: ReportData | None,
    words: StatusWords | None,
) -> Glance:
    """The glance of a model whose rollout (active or latest) is `report`; `words` while it is active
    (or, with no `report`, of a shadow set by hand). `versions` are the champion and challenger the
    gateway routes to (None: none)."""
    if report is None:  # no rollout, or a shadow set by hand (its words say how it compares)
        who = _share_text(phase, versions, share)
        if words is None:
            return Glance(phase, who, "No rollout yet.", None, None, None, None, None, [], None)
        said = (words.verdict, words.next_check, words.next_reason, words.latency, words.progress)
        return Glance(phase, who, *said, None, [], None)
    return Glance(
        phase=phase,
        share=_share_text(phase, versions, share),
        verdict=words.verdict if words else f"{report.words.headline}.",
        next_check=words.next_check if words else None,
        next_reason=words.next_reason if words else None,
        latency=words.latency if words else None,
        progress=words.progress if words else None,
        last_decision=last_decision(report.events),
        counters=counters(report),
        since=fmt_time(report.start),
    )


def _share_text(phase: str, versions: tuple[int | None, int | None], share: float | None) -> str:
    """Who serves the users now.

    >>> _share_text("ab_test 50%", (1, 2), 0.5)
    'challenger v2 serves 50% of users, champion v1 the other 50%'
    >>> _share_text("shadow", (1, 2), 0.0)
    'champion v1 serves every user; challenger v2 answers in its shadow'
    >>> _share_text("promoted", (2, None), None)
    'champion v2 serves every user'
    """
    champion, challenger = versions
    if champion is None:
        return "no champion"
    if challenger is None or not share:
        if challenger is not None and phase == "shadow":
            return f"champion v{champion} serves every user; challenger v{challenger} answers in its shadow"
        return f"champion v{champion} serves every user"
    if share >= 1.0:
        return f"challenger v{challenger} serves every user; champion v{champion} answers in its shadow"
    rest = f"champion v{champion} the other {1 - share:.0%}"
    return f"challenger v{challenger} serves {share:.0%} of users, {rest}"


def last_decision(events: list[Event]) -> LastDecision | None:
    """The latest rollout transition among `events` (oldest first), with the numbers its rule saw."""
    event = next((e for e in reversed(events) if e.kind is EventKind.ROLLOUT_TRANSITION), None)
    if event is None:
        return None
    numbers = decision_numbers(event.data)
    return LastDecision(
        time=fmt_time(event.time),
        actor=event.actor,
        change=f"{event.from_state or '-'} → {event.to_state or '-'}",
        rule=event.rule or "-",
        meaning=rule_words(event.rule),
        reason=event.reason or "",
        numbers=numbers[:MAX_KEY_NUMBERS],
        more_numbers=numbers[MAX_KEY_NUMBERS:],
    )


def counters(report: ReportData) -> list[Counter]:
    """Requests, failures and labelled requests of each arm over the rollout so far (served and in
    shadow), and the gateways that cannot load the challenger."""
    sums = {
        arm: (sum(series.requests), sum(series.failures), sum(series.labelled))
        for arm, series in report.arms.items()
    }
    champion, challenger = sums.get("champion", (0, 0, 0)), sums.get("challenger", (0, 0, 0))
    return [
        Counter("predictions", f"{champion[0]:,}", f"{challenger[0]:,}"),
        Counter(
            "failed predictions",
            _with_rate(champion[1], champion[0]),
            _with_rate(challenger[1], challenger[0]),
        ),
        Counter("labelled predictions", f"{champion[2]:,}", f"{challenger[2]:,}"),
        Counter("gateways that cannot load it", "-", str(len(report.unavailable))),
    ]


def _with_rate(count: int, total: int) -> str:
    """`3 (0.4%)`.

    >>> _with_rate(3, 800), _with_rate(0, 0)
    ('3 (0.4%)', '0')
    """
    return f"{count:,} ({count / total:.1%})" if total and count else f"{count:,}"
