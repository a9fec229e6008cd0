"""Topics: what a notified event is about, one word (`promoted`, `rolled_back`, `manual_routing`), as a
receiver's `events` filter names it, and its CloudEvents type (`io.pitstop.rollout.promoted`)."""

from __future__ import annotations

from fnmatch import fnmatchcase

from pitstop.config import CONFIG_FILE
from pitstop.errors import ConfigError
from pitstop.events import NOTIFIED_KINDS, Event, EventKind

STARTED = "started"
PHASE_CHANGED = "phase_changed"
STEP_CHANGED = "step_changed"
MANUAL_ROUTING = "manual_routing"
MANUAL_CHAMPION = "manual_champion"
TEST = "test"  # `pitstop notify test`

# How a rollout ends (`rollout.phases.Outcome`, a layer above): the transition's `to_state`.
ENDINGS = ("promoted", "rejected", "rolled_back", "aborted")
_STARTED_FROM = "gate"  # `Phase.GATE`: a rollout starts with the gate behind it

_TYPES = {
    MANUAL_ROUTING: "io.pitstop.routing.manual",
    MANUAL_CHAMPION: "io.pitstop.champion.manual",
    TEST: "io.pitstop.test",
}
_ROLLOUT_TYPE = "io.pitstop.rollout."


def _kind_topic(kind: EventKind) -> str:
    """A notified kind without a topic of its own: `rollout_held` → `held`."""
    return kind.value.removeprefix("rollout_")


def cloudevents_type(topic: str) -> str:
    """`io.pitstop.rollout.promoted`, `io.pitstop.routing.manual`.

    >>> cloudevents_type("rolled_back"), cloudevents_type(MANUAL_ROUTING)
    ('io.pitstop.rollout.rolled_back', 'io.pitstop.routing.manual')
    """
    return _TYPES.get(topic, _ROLLOUT_TYPE + topic)


def known_topics() -> tuple[str, ...]:
    """Every topic an event can have (a receiver's `events` filter is checked against these)."""
    own = {EventKind.ROLLOUT_TRANSITION, EventKind.ROUTING_CHANGED, EventKind.ALIAS_MOVED}
    others = sorted(_kind_topic(kind) for kind in NOTIFIED_KINDS - own)
    return (STARTED, PHASE_CHANGED, STEP_CHANGED, *ENDINGS, MANUAL_ROUTING, MANUAL_CHAMPION, *others)


def topic_of(event: Event) -> str:
    """The topic of a notified event.

    A transition is a start (from the gate), an ending, a new phase, or a new step of the same phase
    (`ramp 25%` → `ramp 50%`)."""
    if event.kind is EventKind.ROUTING_CHANGED:
        return MANUAL_ROUTING
    if event.kind is EventKind.ALIAS_MOVED:
        return MANUAL_CHAMPION
    if event.kind is not EventKind.ROLLOUT_TRANSITION:
        return _kind_topic(event.kind)
    before, after = event.from_state or "", event.to_state or ""
    if after in ENDINGS:
        return after
    if before == _STARTED_FROM:
        return STARTED
    same_phase = before.split(" ")[0] == after.split(" ")[0]
    return STEP_CHANGED if same_phase else PHASE_CHANGED


def wanted(filters: list[str] | None, topic: str) -> bool:
    """Whether a receiver with these `events` filters gets `topic` (None: every topic; a test always).

    >>> wanted(["promoted", "rolled_*"], "rolled_back"), wanted(["promoted"], "manual_routing")
    (True, False)
    """
    return filters is None or topic == TEST or any(fnmatchcase(topic, pattern) for pattern in filters)


def check_filters(name: str, index: int, filters: list[str] | None) -> None:
    """A filter that matches no topic is a typo: refused, naming the key."""
    topics = known_topics()
    for pattern in filters or []:
        if not any(fnmatchcase(topic, pattern) for topic in topics):
            raise ConfigError(
                f"{CONFIG_FILE}: notifications.receivers.{index}.events: {pattern!r} matches no topic "
                f"(receiver {name!r}); topics: {', '.join(topics)}"
            )
