"""The distinct errors of failed model calls in the prediction log, with counts and when they were first
and last seen: what `rollout status`, the report and the dashboard show about failures.

One query grouped by version, role and the error's first `TEXT_LIMIT` characters (so one message
whose tail varies, an id or a row number, stays one line), the most frequent first, at most `limit`
of them; `more` says how many other messages there were.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, select

from pitstop.store.tables import predictions

TEXT_LIMIT = 200
TOP = 5


@dataclass(frozen=True)
class ErrorMessage:
    """One error text of one version in one role (`served` or `shadow`): how often, first and last."""

    version: int
    role: str
    error: str  # at most TEXT_LIMIT characters, ending in `…` when cut
    count: int
    first_seen: datetime
    last_seen: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "role": self.role,
            "error": self.error,
            "count": self.count,
            "first_seen": self.first_seen.isoformat(),
            "last_seen": self.last_seen.isoformat(),
        }


@dataclass(frozen=True)
class ErrorMessages:
    """The most frequent messages, and how many more distinct ones there were."""

    messages: tuple[ErrorMessage, ...] = ()
    more: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"messages": [m.to_dict() for m in self.messages], "more": self.more}


def error_messages(
    conn: Connection, model_id: int, *, since_routing_version: int, until: datetime, limit: int = TOP
) -> ErrorMessages:
    """The failed calls of a model from a routing version on, up to `until` (event time)."""
    p = predictions.c
    text = func.substr(p.error, 1, TEXT_LIMIT + 1).label("text")  # one more: tells a cut text
    rows = conn.execute(
        select(
            p.version,
            p.role,
            text,
            func.count().label("n"),
            func.min(p.time),
            func.max(p.time),
            func.count().over().label("groups"),
        )
        .where(
            p.model_id == model_id,
            p.routing_version >= since_routing_version,
            p.time <= until.timestamp(),
            p.error.is_not(None),
            p.role != "timing",  # a shadow call timed as served repeats a shadow record's request
        )
        .group_by(p.version, p.role, text)
        .order_by(func.count().desc(), p.version, p.role, text)
        .limit(limit)
    ).all()
    messages = tuple(
        ErrorMessage(int(version), role, _cut(message), int(n), _moment(first), _moment(last))
        for version, role, message, n, first, last, _ in rows
    )
    groups = int(rows[0].groups) if rows else 0
    return ErrorMessages(messages, groups - len(messages))


def _cut(message: str) -> str:
    return message if len(message) <= TEXT_LIMIT else message[: TEXT_LIMIT - 1] + "…"


def _moment(epoch: float) -> datetime:
    return datetime.fromtimestamp(float(epoch), UTC)
