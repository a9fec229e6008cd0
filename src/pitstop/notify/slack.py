"""Slack incoming webhooks (`{"text": …}`): a one-line summary and a link, and its receiver."""

from __future__ import annotations

import json
from dataclasses import dataclass

from pitstop.config import ReceiverSettings
from pitstop.notify import topics
from pitstop.notify.message import Message
from pitstop.notify.receivers import Payload

MAX_REASON = 200  # a longer reason is cut: the summary is one line

_WORDS = {
    topics.STARTED: (":rocket:", "started"),
    topics.PHASE_CHANGED: (":arrow_forward:", "moved on"),
    topics.STEP_CHANGED: (":arrow_forward:", "stepped up"),
    "promoted": (":white_check_mark:", "promoted"),
    "rejected": (":no_entry:", "rejected"),
    "rolled_back": (":rotating_light:", "rolled back"),
    "aborted": (":stop_sign:", "aborted"),
}


def _escaped(text: str) -> str:
    """Slack reads `&`, `<` and `>` as markup: they are escaped in any text it did not write."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _one_line(text: str | None, limit: int = MAX_REASON) -> str:
    words = " ".join((text or "").split())
    return words if len(words) <= limit else words[: limit - 1] + "…"


def summary(message: Message) -> str:
    """What happened, in one line, without the link.

    >>> from datetime import UTC, datetime
    >>> summary(Message(id="e", topic="promoted", time=datetime(2026, 3, 1, tzinfo=UTC),
    ...     actor="controller", model="eta", rollout_id=3, from_state="ramp 100%", to_state="promoted",
    ...     rule="ramp.complete", reason="every step <passed>"))
    ':white_check_mark: eta: rollout 3 promoted (ramp 100% → promoted) by controller,
    ramp.complete: every step &lt;passed&gt;'
    """
    reason = _escaped(_one_line(message.reason))
    if message.topic == topics.TEST:
        return f":wave: pitstop test notification by {_escaped(message.actor)}: {reason}"
    model = _escaped(message.model or "?")
    change = f"{_escaped(message.from_state or '-')} → {_escaped(message.to_state or '-')}"
    if message.topic == topics.MANUAL_ROUTING:
        return f":wrench: {model}: routing set by hand ({change}) by {_escaped(message.actor)}: {reason}"
    if message.topic == topics.MANUAL_CHAMPION:
        versions = " → ".join(
            f"v{_escaped(v)}" if v else "none" for v in (message.from_state, message.to_state)
        )
        return f":wrench: {model}: champion set by hand ({versions}) by {_escaped(message.actor)}: {reason}"
    icon, verb = _WORDS.get(message.topic, (":information_source:", message.topic))
    rule = f", {_escaped(message.rule)}" if message.rule else ""
    return (
        f"{icon} {model}: rollout {message.rollout_id} {verb} ({change}) by {_escaped(message.actor)}"
        f"{rule}: {reason}"
    )


def text(message: Message) -> str:
    """The summary and, when `notifications.report_url` is set, a link to the report."""
    line = summary(message)
    return line if message.link is None else f"{line} <{message.link}|report>"


@dataclass(frozen=True)
class SlackReceiver:
    """A Slack (or Mattermost, Rocket.Chat …) incoming webhook (`format: slack`)."""

    settings: ReceiverSettings

    def render(self, message: Message) -> Payload:
        return Payload(json.dumps({"text": text(message)}).encode(), "application/json")
