"""Delivering notifications: sign and POST each due delivery, retry with exponential backoff and
jitter, give up after `notifications.max_attempts` (visible in the delivery log).

No store transaction is open while a receiver is called, so a slow receiver holds no lock a decision
needs; each attempt is claimed before and recorded after, in transactions of its own.
"""

from __future__ import annotations

import os
import random
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import httpx

from pitstop import __version__
from pitstop.errors import NotFoundError, UsageError, describe
from pitstop.notify import outbox
from pitstop.notify.message import Message, from_event, test_message
from pitstop.notify.outbox import Answer, ReceiverFilter, Status
from pitstop.notify.receivers import Receiver, configured
from pitstop.notify.signing import signature_headers

if TYPE_CHECKING:
    from pitstop.config import NotificationSettings, ReceiverSettings
    from pitstop.context import Context
    from pitstop.events import Event

EVENT_ID_HEADER = "X-Pitstop-Event-Id"  # the CloudEvents id: the same on every delivery of one event
ATTEMPT_HEADER = "X-Pitstop-Attempt"  # 1 on the first attempt of a delivery, 2 on its first retry …
CLAIM_MARGIN = timedelta(seconds=30)  # beyond the receiver's timeout, before another sender may retry
MAX_ANSWER = 200  # characters of a failing answer's body kept in the log


def backoff(attempts: int, base: timedelta, longest: timedelta, rng: random.Random) -> timedelta:
    """The wait after `attempts` failed attempts: `base` doubled per attempt, at most `longest`, then
    between half and all of it at random (jitter, so receivers coming back are not hit in step).

    >>> rng, base, longest = random.Random(0), timedelta(seconds=10), timedelta(minutes=1)
    >>> [round(backoff(n, base, longest, rng).total_seconds()) for n in (1, 2, 5)]
    [9, 18, 43]
    """
    delay = min(longest.total_seconds(), base.total_seconds() * 2 ** (attempts - 1))
    return timedelta(seconds=delay * (0.5 + rng.random() / 2))


@dataclass(frozen=True)
class Sent:
    """One attempt to one receiver, as `pitstop notify test` reports it."""

    receiver: str
    url: str
    answer: Answer

    def to_dict(self) -> dict[str, object]:
        return {
            "receiver": self.receiver,
            "url": self.url,
            "ok": self.answer.ok,
            "status_code": self.answer.status_code,
            "error": self.answer.error,
        }


@dataclass(frozen=True)
class PassReport:
    """What one delivery pass did (`pitstop notify send`)."""

    dispatched: int  # deliveries made from new outbox rows
    delivered: int
    retrying: int  # failed this time, tried again later
    failed: int  # given up
    skipped: int  # due, but left for the next pass: its receiver failed this pass, or another sender has it

    def to_dict(self) -> dict[str, int]:
        return {
            "dispatched": self.dispatched,
            "delivered": self.delivered,
            "retrying": self.retrying,
            "failed": self.failed,
            "skipped": self.skipped,
        }


def source_of(ctx: Context) -> str:
    """The CloudEvents `source`: `notifications.source`, else `/pitstop/<workspace folder name>`."""
    return ctx.config.notifications.source or f"/pitstop/{ctx.path.name}"


def post(receiver: Receiver, message: Message, now: datetime, client: httpx.Client, attempt: int) -> Answer:
    """One POST of `message` to `receiver`, signed when it has a secret; never raises for the network."""
    settings = receiver.settings
    payload = receiver.render(message)
    headers = {
        "Content-Type": payload.content_type,
        "User-Agent": f"pitstop/{__version__}",
        EVENT_ID_HEADER: message.id,
        ATTEMPT_HEADER: str(attempt),
    }
    url = settings.url or os.environ.get(settings.url_env or "")
    if not url:
        return Answer(None, f"environment variable {settings.url_env} (url_env) is not set")
    if settings.secret_env is not None:
        secret = os.environ.get(settings.secret_env)
        if not secret:
            return Answer(None, f"environment variable {settings.secret_env} (secret_env) is not set")
        headers.update(signature_headers(secret.encode(), int(now.timestamp()), payload.body))
    timeout = settings.timeout.total_seconds()
    try:
        response = client.post(url, content=payload.body, headers=headers, timeout=timeout)
    except httpx.TimeoutException:
        return Answer(None, f"no answer within {timeout:g}s")
    except httpx.HTTPError as error:
        return Answer(None, describe(error))
    if 200 <= response.status_code < 300:
        return Answer(response.status_code, None)
    said = " ".join(response.text.split())[:MAX_ANSWER]
    refused = f"HTTP {response.status_code}" + (f": {said}" if said else "")
    return Answer(response.status_code, refused, _seconds(response.headers.get("Retry-After")))


def _seconds(retry_after: str | None) -> float | None:
    """A Retry-After header given in seconds (an HTTP date is ignored: the backoff applies).

    >>> _seconds("120"), _seconds("Wed, 21 Oct 2026 07:28:00 GMT"), _seconds(None)
    (120.0, None, None)
    """
    try:
        return max(0.0, float(retry_after)) if retry_after is not None else None
    except ValueError:
        return None


def shown_url(settings: ReceiverSettings) -> str:
    """Where a receiver is, fit to print: a URL from `url_env` is a secret, shown by its variable.

    >>> from pitstop.config import ReceiverSettings
    >>> shown_url(ReceiverSettings(name="team", url_env="SLACK_URL"))
    '$SLACK_URL'
    """
    return settings.url or f"${settings.url_env}"


class Sender:
    """Sends what is due for one workspace: `send_due()` is one pass (`pitstop notify send`, and each
    round of the background thread). `rng` draws the backoff jitter (seed it in tests); `on_attempt`
    hears of every attempt's outcome."""

    def __init__(
        self,
        ctx: Context,
        *,
        rng: random.Random | None = None,
        on_attempt: Callable[[str, Status], None] | None = None,
    ) -> None:
        self.ctx = ctx
        self.settings: NotificationSettings = ctx.config.notifications
        self.receivers = {r.settings.name: r for r in configured(self.settings, source_of(ctx))}
        self.rng = rng or random.Random()
        self.on_attempt = on_attempt  # told each attempt's receiver and outcome (a gateway counts them)

    def send_due(self, client: httpx.Client | None = None) -> PassReport:
        """Dispatch new outbox rows, then try each receiver's due deliveries once. A receiver that fails
        is not tried again in this pass (its other deliveries wait for the next), so a receiver that is
        down costs one timeout per pass, not one per event. Deliveries to a receiver no longer
        configured stay pending, untried (the log shows them)."""
        dispatched = self._dispatch()
        tally: Counter[Status | None] = Counter()
        with nullcontext(client) if client is not None else _client() as http:
            for name, receiver in self.receivers.items():
                with self.ctx.reading() as conn:
                    due = outbox.due(conn, name, self.ctx.clock.now())
                self._send_to(receiver, due, http, tally)
        return PassReport(
            dispatched,
            tally[Status.DELIVERED],
            tally[Status.PENDING],
            tally[Status.FAILED],
            tally[None],
        )

    def _dispatch(self) -> int:
        """Deliveries for new outbox rows; the write lock only when there are some."""
        with self.ctx.reading() as conn:
            if not outbox.waiting(conn):
                return 0
        filters = [ReceiverFilter(name, r.settings.events) for name, r in self.receivers.items()]
        with self.ctx.writing() as conn:
            return outbox.dispatch(conn, filters, self.ctx.clock.now())

    def _send_to(
        self,
        receiver: Receiver,
        due: list[tuple[outbox.Delivery, Event]],
        http: httpx.Client,
        tally: Counter[Status | None],
    ) -> None:
        """Each due delivery in turn, until one fails; what is left (and what another sender claimed)
        counts as skipped, under None."""
        for index, (delivery, event) in enumerate(due):
            status = self._attempt(receiver, delivery, from_event(event, self.settings.report_url), http)
            tally[status] += 1
            if status is not None and self.on_attempt is not None:
                self.on_attempt(delivery.receiver, status)
            if status not in (Status.DELIVERED, None):
                tally[None] += len(due) - index - 1
                return

    def _attempt(
        self, receiver: Receiver, delivery: outbox.Delivery, message: Message, http: httpx.Client
    ) -> Status | None:
        now = self.ctx.clock.now()
        hold = now + receiver.settings.timeout + CLAIM_MARGIN
        with self.ctx.writing() as conn:
            if not outbox.claim(conn, delivery, now, hold):
                return None
        attempts = delivery.attempts + 1
        answer = post(receiver, message, now, http, attempts)
        done = self.ctx.clock.now()
        retry_at = None
        if not answer.ok and answer.retryable and attempts < self.settings.max_attempts:
            wait = backoff(attempts, self.settings.backoff_base, self.settings.backoff_max, self.rng)
            if answer.retry_after is not None:  # the receiver said how long; never beyond backoff_max
                wait = max(wait, min(timedelta(seconds=answer.retry_after), self.settings.backoff_max))
            retry_at = done + wait
        with self.ctx.writing() as conn:
            return outbox.finish(conn, delivery.id, answer, done, retry_at)

    def test(self, name: str | None, actor: str) -> list[Sent]:
        """Send a test message to every receiver (or the one named), once each, now; nothing is stored."""
        if not self.receivers:
            raise UsageError(
                "no receivers are configured: add one under notifications.receivers in pitstop.yaml"
            )
        if name is not None and name not in self.receivers:
            raise NotFoundError(
                f"no receiver named {name!r}; configured: {', '.join(self.receivers)}", field="receiver"
            )
        chosen = [r for n, r in self.receivers.items() if name is None or n == name]
        now = self.ctx.clock.now()
        message = test_message(now, actor, self.settings.report_url, uuid.uuid4().hex)
        with _client() as http:
            return [
                Sent(r.settings.name, shown_url(r.settings), post(r, message, now, http, 1)) for r in chosen
            ]


def _client() -> httpx.Client:
    # A webhook is answered where it is sent: a redirect is an answer to fix, not to follow.
    return httpx.Client(follow_redirects=False)
