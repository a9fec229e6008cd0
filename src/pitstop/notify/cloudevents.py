"""CloudEvents 1.0 structured JSON (https://cloudevents.io), for generic webhooks, and its receiver."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from pitstop.config import ReceiverSettings
from pitstop.notify.message import Message
from pitstop.notify.receivers import Payload

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/cloudevents+json"


def envelope(message: Message, source: str) -> dict[str, Any]:
    """The structured-mode event: context attributes and the event as `data`. `time` is when the event
    happened (not when it is sent), so every delivery of one event is the same document."""
    out: dict[str, Any] = {
        "specversion": SPEC_VERSION,
        "id": message.id,
        "source": source,
        "type": message.type,
        "time": message.time.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "data": message.data(),
    }
    if message.model is not None:  # an optional attribute is left out rather than null
        out["subject"] = message.model
    return out


@dataclass(frozen=True)
class CloudEventsReceiver:
    """A webhook that gets CloudEvents (`format: cloudevents`)."""

    settings: ReceiverSettings
    source: str

    def render(self, message: Message) -> Payload:
        body = json.dumps(envelope(message, self.source), separators=(",", ":"), sort_keys=True)
        return Payload(body.encode(), CONTENT_TYPE)
