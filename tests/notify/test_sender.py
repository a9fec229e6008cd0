"""The sender's parts: claims between senders, the background thread, backoff."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from notify.conftest import NotifyWorkspace, Receiver, cloudevents_receiver
from pitstop.notify import outbox
from pitstop.notify.background import BackgroundSender
from pitstop.notify.outbox import ReceiverFilter, Status
from pitstop.notify.sender import PassReport, Sender, backoff
from pitstop.workspace import Workspace


def test_a_delivery_claimed_by_one_sender_is_not_claimed_by_another(
    notify_ws: NotifyWorkspace, receiver: Receiver
) -> None:
    ws = notify_ws([cloudevents_receiver(receiver)])
    ws.start_rollout("eta", 2, skip_gate=True, reason="tested offline elsewhere")
    now = ws.clock.now()
    with ws.writing() as conn:
        assert outbox.dispatch(conn, [ReceiverFilter("hooks", None)], now) == 1
        assert outbox.dispatch(conn, [ReceiverFilter("hooks", None)], now) == 0  # once only
    with ws.reading() as conn:
        [(delivery, _)] = outbox.due(conn, "hooks", now)
    hold = now + timedelta(minutes=1)
    with ws.writing() as conn:
        assert outbox.claim(conn, delivery, now, hold)
        assert not outbox.claim(conn, delivery, now, hold)  # the second sender read the same row
    with ws.reading() as conn:
        assert outbox.due(conn, "hooks", now) == []  # held while the first sender's attempt runs


def test_the_background_sender_delivers_without_being_asked(
    notify_ws: NotifyWorkspace, receiver: Receiver
) -> None:
    ws = notify_ws([cloudevents_receiver(receiver)], interval="50ms")
    sender = BackgroundSender(ws)
    sender.start()
    try:
        ws.start_rollout("eta", 2, skip_gate=True, reason="tested offline elsewhere")
        [request] = receiver.wait_for(1)
    finally:
        sender.stop(timeout=10)
    assert request.json()["type"] == "io.pitstop.rollout.started"


def test_the_background_sender_outlives_a_store_that_fails(
    notify_ws: NotifyWorkspace, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    ws = notify_ws([cloudevents_receiver(receiver)])
    sender = BackgroundSender(ws)
    with ws.writing() as conn:  # the store loses the delivery table under the sender
        conn.exec_driver_sql("ALTER TABLE notification_deliveries RENAME TO moved_away")
    sender.round()  # logged, not raised
    assert [r.name for r in caplog.records if r.levelname in ("WARNING", "ERROR")] == ["pitstop.notify"]
    with ws.writing() as conn:
        conn.exec_driver_sql("ALTER TABLE moved_away RENAME TO notification_deliveries")
    ws.start_rollout("eta", 2, skip_gate=True, reason="tested offline elsewhere")
    sender.round()
    assert len(receiver.requests) == 1


def test_backoff_doubles_up_to_the_longest_wait_with_jitter() -> None:
    rng = random.Random(3)
    base, longest = timedelta(seconds=10), timedelta(minutes=5)
    for attempts, ceiling in ((1, 10), (2, 20), (3, 40), (6, 300), (20, 300)):
        waits = [backoff(attempts, base, longest, rng).total_seconds() for _ in range(50)]
        assert all(ceiling / 2 <= wait <= ceiling for wait in waits)
        assert len(set(waits)) > 1


def test_a_receiver_that_is_down_does_not_hold_up_another(
    notify_ws: NotifyWorkspace, receiver: Receiver, down_receiver: Receiver
) -> None:
    ws = notify_ws([{"name": "gone", "url": down_receiver.url}, {"name": "up", "url": receiver.url}])
    ws.start_rollout("eta", 2, skip_gate=True, reason="tested offline elsewhere")
    ws.abort("eta", reason="stop")
    report = ws.send_notifications()
    assert (report.delivered, report.retrying, report.skipped) == (2, 1, 1)
    assert len(receiver.requests) == 2


def test_deliveries_to_a_receiver_no_longer_configured_stay_pending(
    notify_ws: NotifyWorkspace, receiver: Receiver, workspace_dir: Path
) -> None:
    ws = notify_ws([{"name": "old", "url": receiver.url}])
    ws.start_rollout("eta", 2, skip_gate=True, reason="tested offline elsewhere")
    with ws.writing() as conn:
        outbox.dispatch(conn, [ReceiverFilter("old", None)], ws.clock.now())
    config = {"notifications": {"receivers": [{"name": "new", "url": receiver.url}]}}
    (workspace_dir / "pitstop.yaml").write_text(yaml.safe_dump(config))
    with Workspace(workspace_dir) as reopened:
        assert reopened.send_notifications() == PassReport(0, 0, 0, 0, 0)
        [left] = reopened.notification_log()
    assert (left.receiver, left.status, left.attempts) == ("old", Status.PENDING, 0)
    assert receiver.requests == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_idle_pass_takes_no_write_lock(
    notify_ws: NotifyWorkspace, receiver: Receiver, workspace_dir: Path
) -> None:
    """The sender runs beside decisions and the prediction log: with nothing to send it only reads."""
    ws = notify_ws([cloudevents_receiver(receiver)], interval="1s")
    config = yaml.safe_load((workspace_dir / "pitstop.yaml").read_text())
    (workspace_dir / "pitstop.yaml").write_text(yaml.safe_dump({**config, "store": {"busy_timeout": "1s"}}))
    with Workspace(workspace_dir) as sender_ws, ws.writing():  # another writer holds the lock throughout
        assert sender_ws.send_notifications() == PassReport(0, 0, 0, 0, 0)


def test_every_attempt_is_told_to_the_caller(
    notify_ws: NotifyWorkspace, receiver: Receiver, down_receiver: Receiver
) -> None:
    """How a gateway counts them in /metrics (pitstop_notifications_total)."""
    ws = notify_ws([{"name": "gone", "url": down_receiver.url}, {"name": "up", "url": receiver.url}])
    heard: list[tuple[str, Status]] = []
    ws.start_rollout("eta", 2, skip_gate=True, reason="tested offline elsewhere")
    Sender(ws, on_attempt=lambda name, status: heard.append((name, status))).send_due()
    assert heard == [("gone", Status.PENDING), ("up", Status.DELIVERED)]
