"""The controller's leader lease: only one controller acts at a time, on SQLite and PostgreSQL alike.

A lease is a row (name, holder, expires_at). Taking or renewing it is one write transaction that
succeeds when the row is free, expired, or already ours. Every transition re-checks the lease inside
its own transaction (`holds`), so a controller that lost its lease while deciding writes nothing.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime, timedelta

from sqlalchemy import Connection, select

from pitstop.store.tables import leases

CONTROLLER_LEASE = "controller"


def new_holder_id() -> str:
    """A name for this controller process, unique even across restarts on one host."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def try_acquire(
    conn: Connection, holder: str, now: datetime, ttl: timedelta, name: str = CONTROLLER_LEASE
) -> bool:
    """Take or renew the lease; False when another live holder has it. Call inside a write transaction."""
    row = conn.execute(select(leases).where(leases.c.name == name).with_for_update()).first()
    stamp = now.timestamp()
    expires = stamp + ttl.total_seconds()
    if row is None:
        conn.execute(leases.insert().values(name=name, holder=holder, expires_at=expires, acquired_at=stamp))
        return True
    if row.holder != holder and row.expires_at > stamp:
        return False
    acquired = row.acquired_at if row.holder == holder else stamp
    conn.execute(
        leases.update()
        .where(leases.c.name == name)
        .values(holder=holder, expires_at=expires, acquired_at=acquired)
    )
    return True


def holds(conn: Connection, holder: str, now: datetime, name: str = CONTROLLER_LEASE) -> bool:
    """Whether `holder` has an unexpired lease right now (a fencing check inside a transaction)."""
    row = conn.execute(select(leases).where(leases.c.name == name)).first()
    return row is not None and row.holder == holder and row.expires_at > now.timestamp()


def release(conn: Connection, holder: str, name: str = CONTROLLER_LEASE) -> None:
    """Give the lease up at shutdown so another controller takes over at once."""
    conn.execute(leases.delete().where(leases.c.name == name, leases.c.holder == holder))


def current_holder(conn: Connection, now: datetime, name: str = CONTROLLER_LEASE) -> str | None:
    row = conn.execute(select(leases).where(leases.c.name == name)).first()
    return row.holder if row is not None and row.expires_at > now.timestamp() else None
