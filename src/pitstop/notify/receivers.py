"""A receiver of notifications: a small protocol, and the factory keyed by `format`. The formats
(`cloudevents`, `slack`) each hold their receiver; `sender` signs and POSTs what a receiver renders."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from pitstop.config import ReceiverFormat, ReceiverSettings
from pitstop.notify import topics

if TYPE_CHECKING:
    from pitstop.config import NotificationSettings
    from pitstop.notify.message import Message


@dataclass(frozen=True)
class Payload:
    body: bytes
    content_type: str


class Receiver(Protocol):
    @property
    def settings(self) -> ReceiverSettings:
        """Its name, URL, secret, filter and timeout, as configured."""
        ...

    def render(self, message: Message) -> Payload:
        """The body this receiver is sent for `message`, the same bytes for every delivery of it."""
        ...


def receiver(settings: ReceiverSettings, source: str) -> Receiver:
    from pitstop.notify.cloudevents import CloudEventsReceiver
    from pitstop.notify.slack import SlackReceiver

    if settings.format is ReceiverFormat.SLACK:
        return SlackReceiver(settings)
    return CloudEventsReceiver(settings, source)


def configured(settings: NotificationSettings, source: str) -> list[Receiver]:
    """The receivers of `notifications.receivers`; a filter that matches no topic is a ConfigError."""
    for index, item in enumerate(settings.receivers):
        topics.check_filters(item.name, index, item.events)
    return [receiver(item, source) for item in settings.receivers]
