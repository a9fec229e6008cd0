"""Prediction records a gateway still holds in its spool, announced in the store (issue 21).

While the store is down a gateway keeps its prediction records on local disk (`serving.spool`);
once the store answers, those records reach it over seconds or minutes. A controller look in that
time would judge a window whose records are not all there. So before a gateway writes its first
spooled batch it announces its backlog here, renews the announcement at every pass of its writer
while spooled files remain, and withdraws it once its spool is empty; the controller makes no
decision while an announcement is live (`rollout.controller`).

An announcement is a row of the `leases` table, `spool:<token>` held by the gateway's identity, so
no migration was needed: one a gateway could not withdraw (it stopped, or lost the store again)
expires after `BACKLOG_TTL`, and the controller then resumes on what the store holds.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, select

from pitstop.store.tables import leases

PREFIX = "spool:"
BACKLOG_TTL = timedelta(seconds=60)


def announce(conn: Connection, name: str, gateway: str, now: datetime) -> None:
    """Say (or say again) that `gateway` has spooled records to write, until `now + BACKLOG_TTL`."""
    stamp = now.timestamp()
    expires = stamp + BACKLOG_TTL.total_seconds()
    key = f"{PREFIX}{name}"
    updated = conn.execute(
        leases.update().where(leases.c.name == key).values(holder=gateway[:200], expires_at=expires)
    )
    if updated.rowcount == 0:
        conn.execute(
            leases.insert().values(name=key, holder=gateway[:200], expires_at=expires, acquired_at=stamp)
        )


def withdraw(conn: Connection, name: str) -> None:
    """The gateway's spool is empty: its records are all in the store."""
    conn.execute(leases.delete().where(leases.c.name == f"{PREFIX}{name}"))


def spooling_gateways(conn: Connection, now: datetime) -> list[str]:
    """The gateways whose announced backlog is live at `now` (empty: every spool is written)."""
    rows = conn.execute(
        select(leases.c.holder)
        .where(leases.c.name.startswith(PREFIX, autoescape=True))
        .where(leases.c.expires_at > now.timestamp())
        .order_by(leases.c.holder)
    )
    return [row.holder for row in rows]
