"""One interval of a batched replay routed by a routing table: who serves each request, who
shadows which, which shadows are also timed, by the gateway's own rules (`RoutingTable.route`,
`RoutingTable.sampled`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pitstop.replay.columns import Traffic
from pitstop.routing.table import SERVED, SHADOW, TIMING, RoutingTable

Ints = npt.NDArray[np.int64]
Flags = npt.NDArray[np.bool_]


def _served_by_challenger(table: RoutingTable, traffic: Traffic, rows: Ints) -> Flags:
    """Which of `rows` the table's challenger serves (`RoutingTable.route`)."""
    if table.challenger is None or table.challenger_share <= 0:
        return np.zeros(len(rows), dtype=bool)
    users, ids = traffic.user_ids, traffic.request_ids
    arms = [table.route(users[r], ids[r]).arm for r in rows.tolist()]
    return np.array([arm == "challenger" for arm in arms], dtype=bool)


def _sampled(rows: Ints, traffic: Traffic, table: RoutingTable, sample: str, share: float) -> Ints:
    """The rows in one of the table's samples (`RoutingTable.sampled`)."""
    if share >= 1.0 or not len(rows):
        return rows
    ids = traffic.request_ids.of(rows.tolist())
    chosen: Ints = rows[np.array([table.sampled(sample, i, share) for i in ids], dtype=bool)]
    return chosen


@dataclass(frozen=True)
class Routed:
    """One interval's valid requests routed by a table: who serves each, who shadows which."""

    rows: Ints
    champion: int
    challenger: int  # -1: none
    challenger_served: Flags
    shadow: int | None
    shadowed: Ints
    timed: Ints

    @classmethod
    def of(cls, table: RoutingTable, traffic: Traffic, rows: Ints, sample: float, timing: float) -> Routed:
        """`rows` routed by `table`, with the gateway's shadow `sample` and `timing` sample shares."""
        champion, challenger = table.champion, table.challenger if table.challenger is not None else -1
        by_challenger = _served_by_challenger(table, traffic, rows)
        shadowed = timed = np.zeros(0, dtype=np.int64)
        if table.shadow is not None:
            served_version = np.where(by_challenger, challenger, champion)
            shadowed = _sampled(rows[served_version != table.shadow], traffic, table, "shadow", sample)
            timed = _sampled(shadowed, traffic, table, "timing", timing)
        return cls(rows, champion, challenger, by_challenger, table.shadow, shadowed, timed)

    def arm_of(self, version: int) -> str:
        return "champion" if version == self.champion else "challenger"

    def other_than(self, version: int) -> int:
        """The rollout's other version."""
        return self.challenger if version == self.champion else self.champion

    def parts(self) -> list[tuple[str, str, int, Ints]]:
        """(role, arm, version, rows) of every group of predictions the interval makes."""
        out = [
            (SERVED, "champion", self.champion, self.rows[~self.challenger_served]),
            (SERVED, "challenger", self.challenger, self.rows[self.challenger_served]),
        ]
        if self.shadow is not None:
            arm = self.arm_of(self.shadow)
            out += [(SHADOW, arm, self.shadow, self.shadowed), (TIMING, arm, self.shadow, self.timed)]
        return [part for part in out if len(part[3])]

    def versions(self) -> list[int]:
        return sorted({version for _, _, version, _ in self.parts()})

    def rows_of(self, version: int) -> Ints:
        """Every row `version` scores (served or shadow), ascending."""
        chosen = [rows for role, _, v, rows in self.parts() if v == version and role != TIMING]
        return np.unique(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)
