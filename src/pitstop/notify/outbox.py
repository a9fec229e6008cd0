"""The notification outbox and the delivery log in the store.

`events.record_event` inserts an outbox row with each notified event. `dispatch` turns an outbox row
into one delivery per receiver configured when the sender first sees it (once, even with several
senders: the row is claimed by setting `dispatched_at`). A delivery is claimed before each attempt
(`claim`: its attempt count must still be the one read, so two senders never both send it), and
`finish` records the answer: delivered, retried at `next_attempt_at`, or failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, select, update

from pitstop.events import Event, events_by_id
from pitstop.formats import MAX_TEXT
from pitstop.notify.topics import topic_of, wanted
from pitstop.store.tables import events, models, notification_deliveries, notification_outbox


class Status(StrEnum):
    PENDING = "pending"  # not delivered yet: tried again at next_attempt_at
    DELIVERED = "delivered"  # the receiver answered 2xx
    FAILED = "failed"  # given up: max attempts reached, or an answer that retrying cannot change


@dataclass(frozen=True)
class Delivery:
    """One event to one receiver: a row of the delivery log (`pitstop notify log`)."""

    id: int
    event_id: int
    model: str | None
    topic: str
    receiver: str
    status: Status
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, datetime):
                out[key] = value.isoformat()
        out["status"] = self.status.value
        return out


@dataclass(frozen=True)
class Answer:
    """What one attempt got: a status code, or an error without one (refused, timed out)."""

    status_code: int | None
    error: str | None
    retry_after: float | None = None  # seconds a 429 or 503 asked to wait (its Retry-After header)

    @property
    def ok(self) -> bool:
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300

    @property
    def retryable(self) -> bool:
        """Worth trying again: no answer, a timeout or rate limit, a server error, a missing secret. A
        redirect or another client error (a wrong URL, a refused signature) needs a person."""
        code = self.status_code
        return code is None or code in (408, 425, 429) or code >= 500


@dataclass(frozen=True)
class ReceiverFilter:
    name: str
    events: list[str] | None


def waiting(conn: Connection) -> bool:
    """Whether an outbox row waits to be dispatched (read first, so an idle sender never takes
    SQLite's write lock)."""
    query = select(notification_outbox.c.id).where(notification_outbox.c.dispatched_at.is_(None))
    return conn.execute(query.limit(1)).first() is not None


def dispatch(conn: Connection, receivers: Sequence[ReceiverFilter], now: datetime, limit: int = 500) -> int:
    """Make the deliveries of outbox rows not yet dispatched; returns how many deliveries were made."""
    pending = conn.execute(
        select(notification_outbox.c.id, notification_outbox.c.event_id)
        .where(notification_outbox.c.dispatched_at.is_(None))
        .order_by(notification_outbox.c.id)
        .limit(limit)
    ).all()
    found = events_by_id(conn, [row.event_id for row in pending])
    made = 0
    for row in pending:
        claimed = conn.execute(
            update(notification_outbox)
            .where(notification_outbox.c.id == row.id, notification_outbox.c.dispatched_at.is_(None))
            .values(dispatched_at=now)
        )
        event = found.get(row.event_id)
        if claimed.rowcount != 1 or event is None:
            continue
        topic = topic_of(event)
        for receiver in receivers:
            if wanted(receiver.events, topic):
                conn.execute(_new_delivery(event, receiver.name, topic, now))
                made += 1
    return made


def _new_delivery(event: Event, receiver: str, topic: str, now: datetime) -> Any:
    return notification_deliveries.insert().values(
        event_id=event.id,
        receiver=receiver,
        topic=topic,
        status=Status.PENDING.value,
        attempts=0,
        created_at=now,
        next_attempt_at=now,
    )


def due(conn: Connection, receiver: str, now: datetime, limit: int = 100) -> list[tuple[Delivery, Event]]:
    """The receiver's pending deliveries whose next attempt is due, oldest first, with their events.

    Read per receiver, so a backlog for one that is down never crowds out the others' deliveries."""
    rows = conn.execute(
        _log_query()
        .where(
            notification_deliveries.c.receiver == receiver,
            notification_deliveries.c.status == Status.PENDING.value,
            notification_deliveries.c.next_attempt_at <= now,
        )
        .order_by(notification_deliveries.c.next_attempt_at, notification_deliveries.c.id)
        .limit(limit)
    ).all()
    deliveries = [_delivery(row) for row in rows]
    found = events_by_id(conn, sorted({d.event_id for d in deliveries}))
    return [(d, found[d.event_id]) for d in deliveries if d.event_id in found]


def claim(conn: Connection, delivery: Delivery, now: datetime, hold_until: datetime) -> bool:
    """Count an attempt and keep other senders off it until `hold_until` (a sender that dies mid-attempt
    leaves it due again then); False when another sender claimed it first."""
    result = conn.execute(
        update(notification_deliveries)
        .where(
            notification_deliveries.c.id == delivery.id,
            notification_deliveries.c.status == Status.PENDING.value,
            notification_deliveries.c.attempts == delivery.attempts,
        )
        .values(attempts=delivery.attempts + 1, last_attempt_at=now, next_attempt_at=hold_until)
    )
    return result.rowcount == 1


def finish(
    conn: Connection, delivery_id: int, answer: Answer, now: datetime, retry_at: datetime | None
) -> Status:
    """Record an attempt's answer: delivered; pending until `retry_at`; or failed (no `retry_at`)."""
    status = Status.DELIVERED if answer.ok else Status.PENDING if retry_at is not None else Status.FAILED
    conn.execute(
        update(notification_deliveries)
        .where(notification_deliveries.c.id == delivery_id)
        .values(
            status=status.value,
            last_status_code=answer.status_code,
            last_error=None if answer.error is None else answer.error[:MAX_TEXT],
            delivered_at=now if answer.ok else None,
            next_attempt_at=retry_at if status is Status.PENDING else None,
        )
    )
    return status


def delivery_log(conn: Connection, model_id: int | None = None, limit: int = 50) -> list[Delivery]:
    """The newest deliveries first (of one model's events when `model_id` is given)."""
    query = _log_query()
    if model_id is not None:
        query = query.where(events.c.model_id == model_id)
    rows = conn.execute(query.order_by(notification_deliveries.c.id.desc()).limit(limit)).all()
    return [_delivery(row) for row in rows]


def _log_query() -> Any:
    joined = notification_deliveries.join(events, notification_deliveries.c.event_id == events.c.id)
    return select(notification_deliveries, models.c.name.label("model")).select_from(
        joined.outerjoin(models, events.c.model_id == models.c.id)
    )


def _delivery(row: Any) -> Delivery:
    return Delivery(
        id=row.id,
        event_id=row.event_id,
        model=row.model,
        topic=row.topic,
        receiver=row.receiver,
        status=Status(row.status),
        attempts=row.attempts,
        created_at=row.created_at,
        next_attempt_at=row.next_attempt_at,
        last_attempt_at=row.last_attempt_at,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        delivered_at=row.delivered_at,
    )
