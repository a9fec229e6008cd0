"""A person's override and the controller's look at the same moment, on PostgreSQL: one waits for the
other on the model's row, so the override never fails as stale (only a look is decided again)."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from pitstop import registry
from pitstop.rollout.apply import apply_decision
from pitstop.rollout.decision import Decision
from pitstop.rollout.phases import Action
from pitstop.rollout.records import StaleRolloutError, active_rollout
from pitstop.rules import Rule
from pitstop.workspace import Workspace
from serving.conftest import wait_until

WAITING_FOR_A_LOCK = sa.text(
    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
    " AND query ILIKE '%FOR UPDATE%'"
)


def lock_waits(watcher: sa.Connection) -> int:
    """Sessions waiting for a row lock now. PostgreSQL reads `pg_stat_activity` once per transaction:
    each look is a transaction of its own, or every later look would see the first one's answer."""
    try:
        return int(watcher.execute(WAITING_FOR_A_LOCK).scalar_one())
    finally:
        watcher.rollback()


def test_an_override_waits_for_no_look_and_a_look_waits_for_the_override(rollout_ws: Workspace) -> None:
    # `pitstop rollout promote` failed with "changed while this decision was made" when the
    # controller's every-look write (a stay, with its status) landed between its read and its write
    if not str(rollout_ws.engine.url).startswith("postgresql"):
        pytest.skip("the race needs two writers at once: SQLite runs one write at a time")
    ws = rollout_ws
    ws.start_rollout("eta", 2, skip_gate=True, reason="race")
    read_by_the_look = ws.rollouts("eta")[-1]  # the controller read it, then decided to stay
    stay = Decision(Action.STAY, Rule.SHADOW_MIN_DURATION, "waiting for the minimum duration", {})
    locked, outcomes = threading.Event(), {}

    def look() -> None:
        locked.wait(timeout=60)
        try:
            with ws.writing() as conn:
                apply_decision(conn, read_by_the_look, stay, now=ws.clock.now(), actor="controller")
            outcomes["look"] = "written"
        except StaleRolloutError:
            outcomes["look"] = "stale"

    thread = threading.Thread(target=look)
    thread.start()
    try:
        with ws.writing() as conn:  # the override, as `actions._manual` runs it
            info = registry.get_model(conn, "eta", for_update=True)
            stored = active_rollout(conn, info.id)
            assert stored is not None
            locked.set()
            with ws.engine.connect() as watcher:  # the look now waits for this transaction
                wait_until(lambda: lock_waits(watcher) >= 1, timeout=60)
            abort = Decision(Action.ABORT, Rule.MANUAL_ABORT, "by hand", {})
            apply_decision(conn, stored, abort, now=ws.clock.now(), actor="tester")
    finally:
        thread.join(timeout=90)
    assert outcomes == {"look": "stale"}  # decided again at the next look, on the aborted rollout
    final = ws.rollouts("eta")[-1].state
    assert final.outcome is not None and final.outcome.value == "aborted"
