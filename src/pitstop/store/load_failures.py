"""Versions a gateway cannot load, as each gateway reports them: the one owner of `load_failures`' SQL.

A gateway replaces its own rows after a routing refresh whose failures differ from what it last wrote,
and at least every `REPORT_EVERY` while any remain, so a row whose `last_seen` is older than
`STALE_AFTER` is from a gateway that stopped without clearing it (killed, or its host gone), and no
reader counts it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from pitstop.store.tables import load_failures

REPORT_EVERY = timedelta(seconds=30)
STALE_AFTER = timedelta(minutes=5)


@dataclass(frozen=True)
class LoadFailure:
    """One version that fails to load on one gateway, in one role, since `first_seen`."""

    model_id: int
    version: int
    role: str  # champion, challenger (served) or shadow
    error: str  # `ModuleNotFoundError: No module named 'taxitrainers'`
    first_seen: datetime
    last_seen: datetime  # the latest failed attempt
    attempts: int
    gateway: str = ""  # host:pid:token of the gateway process that reported it

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "role": self.role,
            "error": self.error,
            "first_seen": self.first_seen.isoformat(),
            "last_seen": self.last_seen.isoformat(),
            "attempts": self.attempts,
            "gateway": self.gateway,
        }


def replace_reported(conn: Connection, gateway: str, failures: Iterable[LoadFailure]) -> None:
    """Make `failures` the gateway's whole report (none: it loads everything it is asked to)."""
    conn.execute(delete(load_failures).where(load_failures.c.gateway == gateway))
    rows = [
        {
            "gateway": gateway,
            "model_id": f.model_id,
            "version": f.version,
            "role": f.role,
            "error": f.error,
            "first_seen": f.first_seen,
            "last_seen": f.last_seen,
            "attempts": f.attempts,
        }
        for f in failures
    ]
    if rows:
        conn.execute(insert(load_failures), rows)


def reported(conn: Connection, model_id: int, version: int, now: datetime) -> list[LoadFailure]:
    """What live gateways report about one version of a model, oldest failure first."""
    c = load_failures.c
    rows = conn.execute(
        select(load_failures)
        .where(c.model_id == model_id, c.version == version, c.last_seen >= now - STALE_AFTER)
        .order_by(c.first_seen, c.gateway)
    ).all()
    return [
        LoadFailure(
            row.model_id,
            row.version,
            row.role,
            row.error,
            row.first_seen,
            row.last_seen,
            row.attempts,
            row.gateway,
        )
        for row in rows
    ]


def cannot_load(version: int, failures: Iterable[LoadFailure]) -> list[str]:
    """`challenger v7 cannot be loaded: ModuleNotFoundError: …`, once per distinct error."""
    errors = dict.fromkeys(failure.error for failure in failures)
    return [f"challenger v{version} cannot be loaded: {error}" for error in errors]
