"""Routing tables in the store: read the current one, write the next one with its event.

`write_routing` and `current_routing` work on the caller's connection, so the rollout controller can
change routing and record its own decision in one transaction. `route` is the manual path
(`pitstop route`): it validates the request, picks the salt and calls `write_routing`.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import Connection, func, select

from pitstop import registry
from pitstop.errors import ConflictError, NotFoundError, UsageError
from pitstop.events import record_event
from pitstop.lineage import current_actor
from pitstop.registry import Alias, ModelInfo, VersionInfo
from pitstop.rollout.records import active_rollout
from pitstop.serving.routing import RoutingTable, new_salt
from pitstop.store.tables import models, routing_tables

if TYPE_CHECKING:
    from pitstop.workspace import Workspace

ManualMode = Literal["shadow", "split", "off"]


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


def write_routing(
    conn: Connection,
    model: ModelInfo,
    *,
    champion: int,
    challenger: int | None,
    challenger_share: float,
    shadow: int | None,
    salt: str,
    rollout_id: int | None = None,
    step: int | None = None,
    standby: int | None = None,
    now: datetime,
    actor: str,
    reason: str,
    rule: str | None = None,
    data: dict[str, Any] | None = None,
) -> RoutingTable:
    """Insert the model's next routing version and a `routing_changed` event, in the caller's transaction.

    The model row is locked first, so concurrent writers queue and version numbers never collide.
    Every version the table names must exist.
    """
    registry.get_model(conn, model.name, for_update=True)
    for version in {champion, challenger, shadow, standby} - {None}:
        registry.get_version(conn, model, version)  # type: ignore[arg-type]
    before = current_routing(conn, model.id)
    latest = conn.execute(
        select(func.max(routing_tables.c.version)).where(routing_tables.c.model_id == model.id)
    ).scalar()
    try:
        table = RoutingTable(
            model=model.name,
            version=(latest or 0) + 1,
            champion=champion,
            challenger=challenger,
            challenger_share=float(challenger_share),
            shadow=shadow,
            salt=salt,
            rollout_id=rollout_id,
            step=step,
            standby=standby,
            created_at=now,
        )
    except ValueError as error:
        raise UsageError(f"invalid routing for {model.name!r}: {error}") from None
    conn.execute(
        routing_tables.insert().values(
            model_id=model.id,
            version=table.version,
            champion=champion,
            challenger=challenger,
            challenger_share=table.challenger_share,
            shadow=shadow,
            salt=salt,
            rollout_id=rollout_id,
            step=step,
            standby=standby,
            created_at=now,
            created_by=actor,
        )
    )
    # Not the salt: events are shown on the open dashboard and in reports, and the salt lets a caller
    # pick user ids that land in the arm it wants; the routing table keeps it.
    numbers = {k: v for k, v in table.to_dict().items() if k not in ("model", "created_at", "salt")}
    record_event(
        conn,
        time=now,
        model_id=model.id,
        kind="routing_changed",
        actor=actor,
        from_state=None if before is None else before.describe(),
        to_state=table.describe(),
        rule=rule,
        reason=reason,
        rollout_id=rollout_id,
        data={**numbers, "previous_version": None if before is None else before.version, **(data or {})},
    )
    return table


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
    return write_routing(
        conn,
        model,
        champion=champion,
        challenger=None,
        challenger_share=0.0,
        shadow=None,
        salt=before.salt,
        now=now,
        actor=actor,
        reason=reason,
        rule="manual.set_champion",
    )


def routing_of(ws: Workspace, model: str) -> RoutingTable | None:
    """The table a gateway would serve for `model` now (None without a champion)."""
    with ws.reading() as conn:
        return effective_routing(conn, registry.get_model(conn, model), ws.clock.now())


def verified_version(ws: Workspace, model: str, ref: str | int) -> VersionInfo:
    """The version, once its artifact's sha256 (and signature, under a verify key) is re-checked:
    read only, never loaded, so no code runs (`Workspace.verified_artifact`).

    Raises ArtifactIntegrityError when the file is missing or changed: a version no gateway could load
    must not be routed to, where it would fail the routing change on every replica.
    """
    version, _ = ws.verified_artifact(model, ref)
    return version


def route(
    ws: Workspace,
    model: str,
    *,
    mode: ManualMode,
    challenger: str | int | None = None,
    share: float | None = None,
    reason: str,
    actor: str | None = None,
) -> RoutingTable:
    """Set a model's routing by hand (`pitstop route`): shadow a challenger, split users, or turn it off.

    The champion is the model's `champion` alias. A split without a `share` gives the challenger the
    workspace policy's `ab_test.share` (0.1 as shipped), the share an A/B test would start with. A
    change from off, or to another challenger, gets a fresh salt (a new experiment); a change of share
    for the same challenger keeps it, so users who already see the challenger keep seeing it. Asking
    for the routing already in use changes nothing: the current table is returned, and no event is
    recorded.
    """
    if not reason.strip():
        raise UsageError("--reason: say why the routing is changed by hand")
    if mode not in ("shadow", "split", "off"):
        raise UsageError(f"--mode: must be shadow or split, got {mode!r}")
    if mode != "off" and challenger is not None:
        verified_version(ws, model, challenger)  # before the write transaction: it reads a whole file
    with ws.writing() as conn:
        info = registry.get_model(conn, model, for_update=True)
        if mode != "off":  # turning a hand-made shadow or split off is still allowed
            info.refuse_if_archived("new routes")
        champion = info.aliases.get(Alias.CHAMPION.value)
        if champion is None:
            raise NotFoundError(
                f"model {model!r} has no champion to route around; set one with `pitstop models set-champion`"
            )
        running = active_rollout(conn, info.id)
        if running is not None:
            raise ConflictError(
                f"rollout {running.state.id} of {model!r} owns the routing ({running.state.phase}); "
                f"change it with `pitstop rollout promote|rollback|abort {model}`"
            )
        before = current_routing(conn, info.id)
        if mode == "split" and share is None:
            share = ws.config.ab_test.share
        target = _manual_target(conn, info, champion, mode, challenger, share)
        if before is not None and all(getattr(before, key) == value for key, value in target.items()):
            return before
        return write_routing(
            conn,
            info,
            **target,
            salt=_salt_for(before, target),
            standby=None if before is None else before.standby,
            now=ws.clock.now(),
            actor=actor or current_actor(),
            reason=reason,
            rule="manual",
        )


def _manual_target(
    conn: Connection,
    info: ModelInfo,
    champion: int,
    mode: ManualMode,
    challenger: str | int | None,
    share: float | None,
) -> dict[str, Any]:
    if mode == "off":
        if challenger is not None or share is not None:
            raise UsageError("--off takes neither --challenger nor --share")
        return {"champion": champion, "challenger": None, "challenger_share": 0.0, "shadow": None}
    if challenger is None:
        raise UsageError(f"--mode {mode}: name the --challenger version")
    number = registry.get_version(conn, info, challenger).version
    if number == champion:
        raise UsageError(f"--challenger: version {number} is the champion; pick another version")
    if mode == "shadow":
        if share is not None:
            raise UsageError("--share applies to --mode split only (shadow serves no users)")
        return {"champion": champion, "challenger": number, "challenger_share": 0.0, "shadow": number}
    if share is None or not 0.0 < share <= 1.0:
        given = "none" if share is None else f"{share:g}"
        raise UsageError(f"--share: a split needs a share in (0, 1], got {given}")
    return {"champion": champion, "challenger": number, "challenger_share": float(share), "shadow": None}


def _salt_for(before: RoutingTable | None, target: dict[str, Any]) -> str:
    same_experiment = (
        before is not None
        and before.mode != "off"
        and before.challenger == target["challenger"]
        and before.champion == target["champion"]
    )
    return before.salt if same_experiment and before is not None else new_salt()


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
