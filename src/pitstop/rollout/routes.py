"""Routing set by hand (`pitstop route`): shadow a challenger, split users, or turn it off.

Refused while a rollout owns the model's routing; the change goes through the routing provider like
a rollout's own.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Literal

from sqlalchemy import Connection

from pitstop import loading, registry
from pitstop.errors import ConflictError, NotFoundError, UsageError
from pitstop.lineage import current_actor
from pitstop.registry import Alias, ModelInfo, VersionInfo
from pitstop.rollout.records import active_rollout
from pitstop.routing.provider import provider
from pitstop.routing.store import Change, current_routing
from pitstop.routing.table import Routes, RoutingTable, new_salt
from pitstop.rules import Rule

if TYPE_CHECKING:
    from pitstop.context import Context

ManualMode = Literal["shadow", "split", "off"]


def verified_version(ctx: Context, model: str, ref: str | int) -> VersionInfo:
    """The version, once its artifact's sha256 (and signature, under a verify key) is re-checked:
    read only, never loaded, so no code runs (`loading.verified_artifact`).

    Raises ArtifactIntegrityError when the file is missing or changed: a version no gateway could load
    must not be routed to, where it would fail the routing change on every replica.
    """
    version = loading.version_info(ctx, model, ref)
    loading.verified_artifact(ctx, version)
    return version


def route(
    ctx: Context,
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
        raise UsageError("say why the routing is changed by hand", field="reason")
    if mode not in ("shadow", "split", "off"):
        raise UsageError(f"must be shadow or split, got {mode!r}", field="mode")
    if mode != "off" and challenger is not None:
        verified_version(ctx, model, challenger)  # before the write transaction: it reads a whole file
    with ctx.writing() as conn:
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
            share = ctx.config.ab_test.share
        target = _manual_target(conn, info, champion, mode, challenger, share)
        if before is not None and _same_target(before.routes, target):
            return before
        routes = replace(
            target, salt=_salt_for(before, target), standby=None if before is None else before.standby
        )
        change = Change(ctx.clock.now(), actor or current_actor(), reason, Rule.MANUAL)
        return provider().set_routes(conn, info, routes, change)


def _manual_target(
    conn: Connection,
    info: ModelInfo,
    champion: int,
    mode: ManualMode,
    challenger: str | int | None,
    share: float | None,
) -> Routes:
    if mode == "off":
        if challenger is not None or share is not None:
            given = "challenger" if challenger is not None else "share"
            raise UsageError("mode off takes neither a challenger nor a share", field=given)
        return Routes(champion)
    if challenger is None:
        raise UsageError(f"mode {mode} needs a version to serve", field="challenger")
    number = registry.get_version(conn, info, challenger).version
    if number == champion:
        raise UsageError(f"version {number} is the champion; pick another version", field="challenger")
    if mode == "shadow":
        if share is not None:
            raise UsageError("applies to mode split only (shadow serves no users)", field="share")
        return Routes(champion, number, 0.0, number)
    if share is None or not 0.0 < share <= 1.0:
        given = "none" if share is None else f"{share:g}"
        raise UsageError(f"a split needs a share in (0, 1], got {given}", field="share")
    return Routes(champion, number, float(share))


def _same_target(before: Routes, target: Routes) -> bool:
    """The routing asked for is already in use (salt, rollout and standby aside)."""
    served = ("champion", "challenger", "challenger_share", "shadow")
    return all(getattr(before, key) == getattr(target, key) for key in served)


def _salt_for(before: RoutingTable | None, target: Routes) -> str:
    same_experiment = (
        before is not None
        and before.mode != "off"
        and before.challenger == target.challenger
        and before.champion == target.champion
    )
    return before.salt if same_experiment and before is not None else new_salt()
