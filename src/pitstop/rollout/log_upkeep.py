"""The prediction log's upkeep: days created ahead, and retention (`store.retention`) that never
removes a record an open rollout's windows may read.

Every window of a rollout reads from its start (less `gather.CLOCK_SKEW`) on, so the retention bound
is moved back to that point while a rollout is open: its evidence stays whole however long it runs.
The leading controller runs `upkeep` every `UPKEEP_INTERVAL`; `pitstop store prune` runs `prune_log`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pitstop.errors import ConfigError
from pitstop.rollout.gather import CLOCK_SKEW
from pitstop.store.predictions import partitions, retention
from pitstop.store.predictions.retention import PrunedPart

if TYPE_CHECKING:
    from pitstop.context import Context

UPKEEP_INTERVAL = timedelta(hours=1)


@dataclass(frozen=True)
class Pruning:
    """What one pass of retention removed (or, on a dry run, would remove)."""

    before: datetime  # records made before this go
    held_by_rollout: datetime | None  # an open rollout's start moved the bound back to it
    parts: tuple[PrunedPart, ...]
    dry_run: bool

    @property
    def rows(self) -> int:
        return sum(part.rows for part in self.parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "before": self.before.isoformat(),
            "held_by_rollout_since": self.held_by_rollout.isoformat() if self.held_by_rollout else None,
            "dry_run": self.dry_run,
            "rows": self.rows,
            "parts": [
                {"partition": p.name, "start": _iso(p.start), "end": _iso(p.end), "rows": p.rows}
                for p in self.parts
            ],
        }


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat()


def retention_bound(ctx: Context, now: datetime, keep: timedelta) -> tuple[datetime, datetime | None]:
    """Records before the first value may go: `now - keep`, or earlier while a rollout is open (then
    the second value is that rollout's start)."""
    with ctx.reading() as conn:
        since = retention.open_rollouts_since(conn)
    before = now - keep
    if since is not None and since - CLOCK_SKEW < before:
        return since - CLOCK_SKEW, since
    return before, None


def prune_log(ctx: Context, now: datetime, *, dry_run: bool = False) -> Pruning:
    """Remove the log's records older than `store.retention`, sparing open rollouts' windows."""
    keep = ctx.config.store.retention
    if keep is None:
        raise ConfigError(
            "store.retention: not set, so the prediction log keeps everything; set it in pitstop.yaml "
            "(e.g. retention: 90d under store:) to remove older records"
        )
    before, held = retention_bound(ctx, now, keep)
    parts = retention.prune(ctx.engine, before.timestamp(), dry_run=dry_run)
    return Pruning(before, held, tuple(parts), dry_run)


def upkeep(ctx: Context, now: datetime) -> Pruning | None:
    """The days ahead created, then retention when `store.retention` is set (its result, else None)."""
    partitions.keep_days_ahead(ctx.engine, now.timestamp())
    return prune_log(ctx, now) if ctx.config.store.retention is not None else None
