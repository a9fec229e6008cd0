"""After a store outage the controller judges no window whose records are still in a gateway's spool."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from pitstop.errors import StoreUnavailableError
from pitstop.rollout.controller import OUTAGE_SETTLE, Controller
from pitstop.store import spool_backlog
from pitstop.workspace import Workspace


def announce(ws: Workspace, gateway: str) -> None:
    with ws.writing() as conn:
        spool_backlog.announce(conn, gateway, gateway, ws.clock.now())


def rename(ws: Workspace, old: str, new: str) -> None:
    with ws.writing() as conn:
        conn.execute(sa.text(f"ALTER TABLE {old} RENAME TO {new}"))


def advance(ws: Workspace, by: timedelta) -> None:
    ws.clock.advance(by)  # type: ignore[attr-defined]


def test_no_rollout_is_looked_at_while_a_gateway_announces_spooled_records(rollout_ws: Workspace) -> None:
    rollout_ws.start_rollout("eta", 2, skip_gate=True, reason="test")
    controller = Controller(rollout_ws)
    announce(rollout_ws, "gw-1")
    assert controller.tick() == []
    assert controller.waiting is not None and "spooled by 1 gateway(s): gw-1" in controller.waiting
    assert rollout_ws.rollout_status("eta").to_dict()["spooling"] == ["gw-1"]  # `rollout status` says so
    with rollout_ws.writing() as conn:
        spool_backlog.withdraw(conn, "gw-1")
    assert len(controller.tick()) == 1 and controller.waiting is None
    assert rollout_ws.rollout_status("eta").spooling == ()


def test_an_announcement_never_withdrawn_expires(rollout_ws: Workspace) -> None:
    """A gateway that stopped with records spooled holds no rollout for ever."""
    rollout_ws.start_rollout("eta", 2, skip_gate=True, reason="test")
    announce(rollout_ws, "gw-gone")
    controller = Controller(rollout_ws)
    assert controller.tick() == []
    advance(rollout_ws, spool_backlog.BACKLOG_TTL + timedelta(seconds=1))
    assert len(controller.tick()) == 1


def test_after_its_own_store_failure_the_controller_lets_spools_settle(rollout_ws: Workspace) -> None:
    if rollout_ws.engine.dialect.name != "sqlite":  # PostgreSQL calls a missing table the caller's error
        pytest.skip("the store fails here by a table taken away, an outage only on SQLite")
    rollout_ws.start_rollout("eta", 2, skip_gate=True, reason="test")
    controller = Controller(rollout_ws)
    assert len(controller.tick()) == 1
    rename(rollout_ws, "leases", "leases_away")  # the store fails the controller's first access
    with pytest.raises(StoreUnavailableError):
        controller.tick()
    rename(rollout_ws, "leases_away", "leases")
    assert controller.tick() == []  # back, but a gateway may not have announced its spool yet
    assert controller.waiting is not None and "answers again" in controller.waiting
    advance(rollout_ws, OUTAGE_SETTLE)
    assert len(controller.tick()) == 1
