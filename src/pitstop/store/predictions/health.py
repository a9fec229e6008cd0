"""The health triggers' evidence: users served by both arms, and how many matured served requests
have a label. Each is one grouped pass over the rows of a phase window (by routing version), never
over the whole log.
"""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import Connection, and_, distinct, func, select

from pitstop.store.predictions.rows import LogRange
from pitstop.store.tables import labels, predictions


def users_in_both_arms(conn: Connection, rows: LogRange) -> int:
    """Users (with a user_id) whose served requests in `rows` went to both arms. Sticky routing sends a
    user to one arm per routing table, so any such user is a broken assignment (a client changing ids,
    a gateway on another salt)."""
    p = predictions.c
    per_user = (
        select(p.user_id)
        .where(rows.where(), p.role == "served", p.user_id.is_not(None))
        .group_by(p.user_id)
        .having(func.count(distinct(p.arm)) > 1)
        .subquery()
    )
    return int(conn.execute(select(func.count()).select_from(per_user)).scalar() or 0)


class LabelCoverage(NamedTuple):
    """Served requests made at or before a cutoff, and how many of them have a label."""

    requests: int
    labelled: int

    @property
    def share(self) -> float | None:
        return self.labelled / self.requests if self.requests else None


def label_coverage(conn: Connection, rows: LogRange, before: float) -> LabelCoverage:
    """Distinct served request ids of `rows` made at or before `before` (epoch seconds), and those of
    them with a label: a request whose label had time to arrive but did not lowers the coverage."""
    p = predictions.c
    found = conn.execute(
        select(func.count(distinct(p.request_id)), func.count(distinct(labels.c.request_id)))
        .select_from(
            predictions.outerjoin(
                labels, and_(labels.c.model_id == p.model_id, labels.c.request_id == p.request_id)
            )
        )
        .where(rows.where(), p.role == "served", p.time <= before)
    ).one()
    return LabelCoverage(int(found[0] or 0), int(found[1] or 0))
