"""Gateway heartbeats: what each gateway process serves, the one owner of `gateway_heartbeats`' SQL.

Every live gateway upserts its own row every `serving.heartbeat_interval` and right after every
routing switch: per model, the routing version it serves and the versions it has loaded and warmed.
A gateway is live while its `last_seen` is within `serving.gateway_timeout` of now; one that stopped
cleanly deletes its row, one that was killed goes stale and is shown as such.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from pitstop.store.tables import gateway_heartbeats


@dataclass(frozen=True)
class ServedModel:
    """One model as one gateway serves it."""

    model: str
    routing_version: int  # 0: the champion alone, without a stored table (or the table not applied)
    loaded: tuple[int, ...]  # model versions loaded (served, shadow and standby)
    warmed: tuple[int, ...]  # of them, the ones whose warm-up prediction succeeded

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "routing_version": self.routing_version,
            "loaded": list(self.loaded),
            "warmed": list(self.warmed),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServedModel:
        return cls(
            str(data["model"]),
            int(data["routing_version"]),
            tuple(int(v) for v in data.get("loaded", ())),
            tuple(int(v) for v in data.get("warmed", ())),
        )


@dataclass(frozen=True)
class Heartbeat:
    """A gateway process's last report."""

    gateway: str  # host:pid:token
    started_at: datetime
    last_seen: datetime
    serving: tuple[ServedModel, ...] = ()

    def is_live(self, now: datetime, timeout: timedelta) -> bool:
        return self.last_seen >= now - timeout

    def serves(self, model: str) -> ServedModel | None:
        return next((served for served in self.serving if served.model == model), None)

    def to_dict(self, now: datetime, timeout: timedelta) -> dict[str, Any]:
        return {
            "gateway": self.gateway,
            "live": self.is_live(now, timeout),
            "started_at": self.started_at.isoformat(),
            "last_seen": self.last_seen.isoformat(),
            "seconds_since_seen": round((now - self.last_seen).total_seconds(), 3),
            "serving": [served.to_dict() for served in self.serving],
        }


@dataclass(frozen=True)
class Acknowledgement:
    """What one live gateway reports of one model that the controller checks: the routing version it
    serves and the model versions it has warmed (loaded, and a warm-up prediction succeeded)."""

    gateway: str
    routing_version: int
    warmed: tuple[int, ...] = ()


def beat(conn: Connection, heartbeat: Heartbeat) -> None:
    """Upsert the gateway's row (only the gateway itself writes it, so update-then-insert is safe)."""
    values = {
        "started_at": heartbeat.started_at,
        "last_seen": heartbeat.last_seen,
        "serving": [served.to_dict() for served in heartbeat.serving],
    }
    c = gateway_heartbeats.c
    changed = conn.execute(update(gateway_heartbeats).where(c.gateway == heartbeat.gateway).values(values))
    if changed.rowcount == 0:
        conn.execute(insert(gateway_heartbeats).values(gateway=heartbeat.gateway, **values))


def remove(conn: Connection, gateway: str) -> None:
    """A gateway that stops cleanly leaves the live set at once."""
    conn.execute(delete(gateway_heartbeats).where(gateway_heartbeats.c.gateway == gateway))


def heartbeats(conn: Connection) -> list[Heartbeat]:
    """Every gateway's last heartbeat, live or stale, most recently seen first."""
    c = gateway_heartbeats.c
    rows = conn.execute(select(gateway_heartbeats).order_by(c.last_seen.desc(), c.gateway)).all()
    return [
        Heartbeat(
            row.gateway,
            row.started_at,
            row.last_seen,
            tuple(ServedModel.from_dict(item) for item in row.serving or ()),
        )
        for row in rows
    ]


def live_heartbeats(conn: Connection, now: datetime, timeout: timedelta) -> list[Heartbeat]:
    """The gateways seen within `timeout` of `now`."""
    return [h for h in heartbeats(conn) if h.is_live(now, timeout)]


def acknowledgements(
    conn: Connection, model: str, now: datetime, timeout: timedelta
) -> list[Acknowledgement]:
    """For each live gateway that serves `model`, the routing version it serves and the versions it has
    warmed (none: no gateway reports, as in a replay or a controller run without gateways)."""
    found = []
    for heartbeat in live_heartbeats(conn, now, timeout):
        served = heartbeat.serves(model)
        if served is not None:
            found.append(Acknowledgement(heartbeat.gateway, served.routing_version, served.warmed))
    return found
