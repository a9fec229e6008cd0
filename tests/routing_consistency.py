"""No request served by a version its routing did not assign (guarantee 13), checked from the log.

`assert_served_as_routed(ws, model)` reads every logged prediction of the model and the routing table
of the routing version it was logged under, and checks that the table assigns the record's version,
arm and role to its user (or request): a served record gets the arm `RoutingTable.route` picks, a
shadow or timing record the table's shadow version. Routing version 0 is the champion alone (a gateway
serving without a stored table it could apply), checked against `champion_alone`, by default the
champion of the model's first stored table.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import select

from pitstop import registry
from pitstop.context import Context
from pitstop.routing.store import routing_history
from pitstop.routing.table import RoutingTable
from pitstop.store.tables import predictions


def assert_served_as_routed(ws: Context, model: str, *, champion_alone: int | None = None) -> Counter[str]:
    """How many records of each role were checked; AssertionError naming the first records their
    routing disagrees with."""
    with ws.reading() as conn:
        info = registry.get_model(conn, model)
        tables = {table.version: table for table in routing_history(conn, info.id)}
        c = predictions.c
        rows = conn.execute(
            select(c.request_id, c.user_id, c.version, c.arm, c.role, c.routing_version)
            .where(c.model_id == info.id)
            .order_by(c.id)
        ).all()
    if champion_alone is None and tables:
        champion_alone = tables[min(tables)].champion
    if champion_alone is not None:
        tables.setdefault(0, RoutingTable.initial(model, champion_alone, ws.clock.now()))
    wrong = [f"{_said(row)}, but {_assigned(tables, row)}" for row in rows if _disagrees(tables, row)]
    assert not wrong, f"{len(wrong)} of {len(rows)} predictions not served as routed: " + "; ".join(wrong[:5])
    return Counter(str(row.role) for row in rows)


def _expected(table: RoutingTable, row: Any) -> tuple[int | None, str]:
    """The (version, arm) the table assigns to the record's request in the record's role."""
    if row.role == "served":
        route = table.route(row.user_id, row.request_id)
        return route.version, route.arm
    return table.shadow, "champion" if table.shadow == table.champion else "challenger"


def _disagrees(tables: dict[int, RoutingTable], row: Any) -> bool:
    table = tables.get(row.routing_version)
    return table is None or _expected(table, row) != (row.version, row.arm)


def _said(row: Any) -> str:
    return (
        f"request {row.request_id} (user {row.user_id}) logged v{row.version} {row.arm} {row.role} "
        f"under routing #{row.routing_version}"
    )


def _assigned(tables: dict[int, RoutingTable], row: Any) -> str:
    table = tables.get(row.routing_version)
    if table is None:
        return "the model has no such routing table"
    version, arm = _expected(table, row)
    return f"that table assigns v{version} {arm}"
