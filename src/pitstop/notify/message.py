"""What every notification format renders: one event (or `pitstop notify test`'s), its topic and link."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from pitstop.events import Event
from pitstop.jsonable import json_safe
from pitstop.notify.topics import TEST, cloudevents_type, topic_of

ID_PREFIX = "pitstop-event-"


@dataclass(frozen=True)
class Message:
    """One notification. `id` is derived from the stored event's id, so every delivery of an event,
    a retry or a duplicate, carries the same id (a receiver deduplicates on it)."""

    id: str
    topic: str
    time: datetime
    actor: str
    model: str | None = None
    rollout_id: int | None = None
    from_state: str | None = None
    to_state: str | None = None
    rule: str | None = None
    reason: str | None = None
    numbers: dict[str, Any] = field(default_factory=dict)  # what the decision's rule saw, as recorded
    event_id: int | None = None
    link: str | None = None

    @property
    def type(self) -> str:
        """The CloudEvents type: `io.pitstop.rollout.promoted`."""
        return cloudevents_type(self.topic)

    def data(self) -> dict[str, Any]:
        """The event as receivers get it (CloudEvents `data`); the link only when one is configured."""
        out: dict[str, Any] = {
            "event_id": self.event_id,
            "topic": self.topic,
            "model": self.model,
            "rollout_id": self.rollout_id,
            "from": self.from_state,
            "to": self.to_state,
            "rule": self.rule,
            "reason": self.reason,
            "actor": self.actor,
            "numbers": json_safe(self.numbers),
        }
        if self.link is not None:
            out["report_url"] = self.link
        return out


def from_event(event: Event, report_url: str | None) -> Message:
    return Message(
        id=f"{ID_PREFIX}{event.id}",
        topic=topic_of(event),
        time=event.time,
        actor=event.actor,
        model=event.model,
        rollout_id=event.rollout_id,
        from_state=event.from_state,
        to_state=event.to_state,
        rule=event.rule,
        reason=event.reason,
        numbers=event.data,
        event_id=event.id,
        link=link(report_url, event.model, event.rollout_id),
    )


def test_message(now: datetime, actor: str, report_url: str | None, nonce: str) -> Message:
    """`pitstop notify test`'s message: no stored event; `nonce` makes its id unique."""
    return Message(
        id=f"pitstop-test-{nonce}",
        topic=TEST,
        time=now,
        actor=actor,
        reason="a test notification from `pitstop notify test`",
        link=link(report_url, None, None),
    )


def link(report_url: str | None, model: str | None, rollout_id: int | None) -> str | None:
    """`notifications.report_url` with `{model}` and `{rollout}` filled in.

    >>> link("https://pitstop.internal/reports/{model}/{rollout}", "delivery eta", 3)
    'https://pitstop.internal/reports/delivery%20eta/3'
    """
    if report_url is None:
        return None
    filled = report_url.replace("{model}", quote(model or "", safe=""))
    return filled.replace("{rollout}", "" if rollout_id is None else str(rollout_id))
