"""Routing tables in the store: read the current one, save the next one with its event.

`save` and `current_routing` work on the caller's connection, so the rollout controller can change
routing and record its own decision in one transaction. On PostgreSQL `save` also announces the new
table on the `pitstop_routing` channel (NOTIFY, delivered at commit), which live gateways listen to
(`serving.routing_push`); on SQLite gateways only poll.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, select, text

from pitstop import registry
from pitstop.errors import NotFoundError, UsageError
from pitstop.events import EventKind, record_event
from pitstop.registry import Alias, ModelInfo
from pitstop.routing.table import Routes, RoutingTable
from pitstop.rules import Rule
from pitstop.store.tables import models, routing_tables

if TYPE_CHECKING:
    from pitstop.context import Context

CHANNEL = "pitstop_routing"  # PostgreSQL NOTIFY channel; the payload is the model's name


def current_routing(conn: Connection, model_id: int) -> RoutingTable | None:
    """The newest routing table of the model, or None when it has never been routed explicitly."""
    row = conn.execute(
        select(routing_tables)
        .where(routing_tables.c.model_id == model_id)
        .order_by(routing_tables.c.version.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return _from_row(row, _model_name(conn, model_id))


def routing_history(conn: Connection, model_id: int) -> list[RoutingTable]:
    """Every routing table of the model, oldest first."""
    rows = conn.execute(
        select(routing_tables).where(routing_tables.c.model_id == model_id).order_by(routing_tables.c.version)
    ).all()
    name = _model_name(conn, model_id)
    return [_from_row(row, name) for row in rows]


def effective_routing(conn: Connection, model: ModelInfo, now: datetime) -> RoutingTable | None:
    """What a gateway serves: the current table, else the champion alias with mode off (version 0)."""
    table = current_routing(conn, model.id)
    if table is not None:
        return table
    champion = model.aliases.get(Alias.CHAMPION.value)
    return None if champion is None else RoutingTable.initial(model.name, champion, now)


@dataclass(frozen=True)
class Change:
    """Who changes routing, when and why: recorded with the new table as its `routing_changed` event.
    `rule` names the decision rule (`rollout.start`, `manual`, …); `data` adds to the event's data."""

    now: datetime
    actor: str
    reason: str
    rule: Rule | None = None
    data: dict[str, Any] = field(default_factory=dict)


def save(conn: Connection, model: ModelInfo, routes: Routes, change: Change) -> RoutingTable:
    """Insert the model's next routing table and its `routing_changed` event, in the caller's transaction.

    The model row is locked first, so concurrent writers queue and version numbers never collide.
    Every version the table names must exist.
    """
    registry.get_model(conn, model.name, for_update=True)
    for version in {routes.champion, routes.challenger, routes.shadow, routes.standby} - {None}:
        registry.get_version(conn, model, version)  # type: ignore[arg-type]
    before = current_routing(conn, model.id)
    latest = conn.execute(
        select(func.max(routing_tables.c.version)).where(routing_tables.c.model_id == model.id)
    ).scalar()
    try:
        table = RoutingTable(
            model=model.name, version=(latest or 0) + 1, created_at=change.now, **asdict(routes)
        )
    except ValueError as error:
        raise UsageError(f"invalid routing for {model.name!r}: {error}") from None
    conn.execute(
        routing_tables.insert().values(
            model_id=model.id,
            version=table.version,
            **asdict(routes),
            created_at=change.now,
            created_by=change.actor,
        )
    )
    # Not the salt: events are shown on the open dashboard and in reports, and the salt lets a caller
    # pick user ids that land in the arm it wants; the routing table keeps it.
    numbers = {k: v for k, v in table.to_dict().items() if k not in ("model", "created_at", "salt")}
    record_event(
        conn,
        time=change.now,
        model_id=model.id,
        kind=EventKind.ROUTING_CHANGED,
        actor=change.actor,
        from_state=None if before is None else before.describe(),
        to_state=table.describe(),
        rule=change.rule,
        reason=change.reason,
        rollout_id=routes.rollout_id,
        data={**numbers, "previous_version": None if before is None else before.version, **change.data},
    )
    announce(conn, model.name)
    return table


def announce(conn: Connection, model: str) -> None:
    """Tell listening gateways the model's routing changed, when the caller's transaction commits
    (PostgreSQL only: NOTIFY is transactional, so a rolled-back change is never announced)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_notify(:channel, :model)"), {"channel": CHANNEL, "model": model})


def follow_champion(
    conn: Connection, model: ModelInfo, champion: int, *, now: datetime, actor: str, reason: str
) -> RoutingTable | None:
    """After the champion is set by hand: a new table serving only it (no challenger, shadow or
    standby), in the caller's transaction, so running gateways switch within their poll interval.

    None, and nothing written, when the model has no routing rows yet (gateways serve the champion
    alias) or its table already has this champion.
    """
    before = current_routing(conn, model.id)
    if before is None or before.champion == champion:
        return None
    change = Change(now, actor, reason, Rule.MANUAL_SET_CHAMPION)
    return save(conn, model, before.routes.with_champion(champion), change)


def routing_of(ctx: Context, model: str) -> RoutingTable | None:
    """The table a gateway would serve for `model` now (None without a champion)."""
    with ctx.reading() as conn:
        return effective_routing(conn, registry.get_model(conn, model), ctx.clock.now())


def _model_name(conn: Connection, model_id: int) -> str:
    name = conn.execute(select(models.c.name).where(models.c.id == model_id)).scalar()
    if name is None:
        raise NotFoundError(f"no model with id {model_id}")
    return str(name)


def _from_row(row: Any, model: str) -> RoutingTable:
    return RoutingTable(
        model=model,
        version=row.version,
        champion=row.champion,
        challenger=row.challenger,
        challenger_share=float(row.challenger_share),
        shadow=row.shadow,
        salt=row.salt,
        rollout_id=row.rollout_id,
        step=row.step,
        standby=row.standby,
        created_at=row.created_at,
    )
