"""Rollout events reach a real receiver on loopback: signed CloudEvents, Slack text, retries, the log."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from notify.conftest import SECRET, NotifyWorkspace, Receiver, cloudevents_receiver
from pitstop.clock import ManualClock
from pitstop.events import EventKind, record_event
from pitstop.notify.outbox import Status
from pitstop.notify.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from pitstop.rollout import routes
from pitstop.rules import Rule
from pitstop.store.tables import notification_outbox
from pitstop.workspace import Workspace


def advance(ws: Workspace, delta: timedelta) -> None:
    clock = ws.clock
    assert isinstance(clock, ManualClock)
    clock.advance(delta)


def start(ws: Workspace) -> None:
    ws.start_rollout("eta", 2, skip_gate=True, reason="tested offline elsewhere", actor="alice")


def test_a_rollout_start_is_delivered_as_a_signed_cloudevent(
    notify_ws: NotifyWorkspace, receiver: Receiver
) -> None:
    ws = notify_ws([cloudevents_receiver(receiver)])
    start(ws)
    report = ws.send_notifications()
    assert (report.dispatched, report.delivered) == (1, 1)
    [request] = receiver.requests
    verify(
        SECRET,
        request.body,
        request.headers[TIMESTAMP_HEADER],
        request.headers[SIGNATURE_HEADER],
        now=ws.clock.now().timestamp(),
    )
    event = request.json()
    assert request.headers["Content-Type"] == "application/cloudevents+json"
    assert event["specversion"] == "1.0"
    assert event["type"] == "io.pitstop.rollout.started"
    assert event["subject"] == "eta"
    assert event["source"] == f"/pitstop/{ws.path.name}"
    assert event["time"] == "2026-03-01T00:00:00Z"
    assert event["id"] == request.headers["X-Pitstop-Event-Id"]
    data = event["data"]
    assert (data["model"], data["from"], data["to"]) == ("eta", "gate", "shadow")
    assert (data["rule"], data["actor"], data["reason"]) == (
        Rule.GATE_SKIPPED,
        "alice",
        "tested offline elsewhere",
    )
    assert data["rollout_id"] == ws.rollouts("eta")[-1].state.id
    assert data["numbers"]["challenger"] == 2
    assert "report_url" not in data
    [logged] = ws.notification_log()
    assert (logged.status, logged.attempts, logged.last_status_code) == (Status.DELIVERED, 1, 200)


def test_a_tampered_body_fails_the_signature_check(notify_ws: NotifyWorkspace, receiver: Receiver) -> None:
    ws = notify_ws([cloudevents_receiver(receiver)])
    start(ws)
    ws.send_notifications()
    [request] = receiver.requests
    with pytest.raises(ValueError, match="no signature matches"):
        verify(
            SECRET,
            request.body.replace(b"alice", b"mallory"),
            request.headers[TIMESTAMP_HEADER],
            request.headers[SIGNATURE_HEADER],
            now=ws.clock.now().timestamp(),
        )


def test_every_transition_and_no_rollout_routing_change_is_notified(
    notify_ws: NotifyWorkspace, receiver: Receiver
) -> None:
    """A rollout's own routing changes come with its transition: one notification per decision."""
    ws = notify_ws([cloudevents_receiver(receiver)])
    start(ws)
    ws.promote("eta", reason="shadow looks fine", actor="alice")
    ws.abort("eta", reason="changed our minds", actor="bob")
    ws.send_notifications()
    types = [r.json()["type"] for r in receiver.requests]
    assert types == [
        "io.pitstop.rollout.started",
        "io.pitstop.rollout.phase_changed",
        "io.pitstop.rollout.aborted",
    ]
    assert [r.json()["data"]["actor"] for r in receiver.requests] == ["alice", "alice", "bob"]


def test_a_routing_set_by_hand_is_notified(notify_ws: NotifyWorkspace, receiver: Receiver) -> None:
    ws = notify_ws([cloudevents_receiver(receiver)])
    routes.route(ws, "eta", mode="shadow", challenger=2, reason="a look at v2", actor="carol")
    ws.send_notifications()
    [request] = receiver.requests
    event = request.json()
    assert event["type"] == "io.pitstop.routing.manual"
    assert (event["data"]["rule"], event["data"]["actor"]) == (Rule.MANUAL, "carol")


def test_events_that_are_not_notified_make_no_delivery(
    notify_ws: NotifyWorkspace, receiver: Receiver
) -> None:
    ws = notify_ws([cloudevents_receiver(receiver)])  # a dataset, a model, versions, a champion
    assert ws.send_notifications().dispatched == 0
    assert receiver.requests == []


def test_an_event_of_a_rolled_back_transaction_is_never_sent(
    notify_ws: NotifyWorkspace, receiver: Receiver
) -> None:
    ws = notify_ws([cloudevents_receiver(receiver)])
    model_id = ws.model("eta").id
    with pytest.raises(RuntimeError, match="crash"), ws.writing() as conn:
        record_event(
            conn,
            time=ws.clock.now(),
            model_id=model_id,
            kind=EventKind.ROLLOUT_TRANSITION,
            actor="controller",
            from_state="ramp 50%",
            to_state="promoted",
            rule=Rule.AB_WIN,
        )
        raise RuntimeError("crash before the commit")
    with ws.reading() as conn:
        assert conn.execute(notification_outbox.select()).all() == []
    assert ws.send_notifications().dispatched == 0
    assert receiver.requests == []


def test_slack_gets_one_line_with_a_link_to_the_report(
    notify_ws: NotifyWorkspace, receiver: Receiver
) -> None:
    ws = notify_ws(
        [{"name": "team", "url": receiver.url, "format": "slack"}],
        report_url="https://pitstop.example.com/reports/{model}/{rollout}",
    )
    start(ws)
    ws.send_notifications()
    [request] = receiver.requests
    rollout = ws.rollouts("eta")[-1].state.id
    assert request.headers["Content-Type"] == "application/json"
    assert SIGNATURE_HEADER not in request.headers  # no secret_env: unsigned
    assert request.json() == {
        "text": f":rocket: eta: rollout {rollout} started (gate → shadow) by alice, gate.skipped: "
        f"tested offline elsewhere <https://pitstop.example.com/reports/eta/{rollout}|report>"
    }


def test_a_receiver_that_is_down_gets_the_event_later(
    notify_ws: NotifyWorkspace, down_receiver: Receiver
) -> None:
    ws = notify_ws([cloudevents_receiver(down_receiver)], backoff_base="10s", backoff_max="1m")
    start(ws)
    report = ws.send_notifications()
    assert (report.delivered, report.retrying) == (0, 1)
    [pending] = ws.notification_log()
    assert (pending.status, pending.attempts, pending.last_status_code) == (Status.PENDING, 1, None)
    assert pending.last_error and "Connect" in pending.last_error
    assert pending.next_attempt_at is not None and pending.next_attempt_at > ws.clock.now()
    assert ws.send_notifications().skipped == 0  # not due yet: nothing tried
    down_receiver.start()
    advance(ws, timedelta(minutes=1))
    assert ws.send_notifications().delivered == 1
    [request] = down_receiver.requests
    assert request.headers["X-Pitstop-Attempt"] == "2"
    [delivered] = ws.notification_log()
    assert (delivered.status, delivered.attempts, delivered.next_attempt_at) == (Status.DELIVERED, 2, None)


def test_a_retry_carries_the_same_event_id_and_body(notify_ws: NotifyWorkspace, receiver: Receiver) -> None:
    ws = notify_ws([cloudevents_receiver(receiver)], backoff_base="10s", backoff_max="1m")
    receiver.statuses = [500, 503]
    start(ws)
    for _ in range(3):
        ws.send_notifications()
        advance(ws, timedelta(minutes=1))
    first, second, third = receiver.requests
    assert first.headers["X-Pitstop-Event-Id"] == second.headers["X-Pitstop-Event-Id"] == third.json()["id"]
    assert first.body == second.body == third.body
    [delivered] = ws.notification_log()
    assert (delivered.status, delivered.attempts) == (Status.DELIVERED, 3)


def test_retries_stop_at_max_attempts_and_the_log_shows_failed(
    notify_ws: NotifyWorkspace, receiver: Receiver
) -> None:
    ws = notify_ws([cloudevents_receiver(receiver)], max_attempts=3, backoff_base="10s", backoff_max="1m")
    receiver.statuses = [500] * 10
    start(ws)
    for _ in range(6):
        ws.send_notifications()
        advance(ws, timedelta(minutes=1))
    assert len(receiver.requests) == 3
    [failed] = ws.notification_log()
    assert (failed.status, failed.attempts, failed.last_status_code) == (Status.FAILED, 3, 500)
    assert failed.last_error == "HTTP 500: no"
    assert failed.next_attempt_at is None


def test_a_client_error_fails_at_once(notify_ws: NotifyWorkspace, receiver: Receiver) -> None:
    """A 4xx other than a timeout or a rate limit (a wrong URL, a refused signature) needs a person."""
    ws = notify_ws([cloudevents_receiver(receiver)])
    receiver.statuses = [401]
    start(ws)
    assert ws.send_notifications().failed == 1
    [failed] = ws.notification_log()
    assert (failed.status, failed.attempts, failed.last_status_code) == (Status.FAILED, 1, 401)


def test_a_missing_secret_is_retried_and_named(
    notify_ws: NotifyWorkspace, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = notify_ws([cloudevents_receiver(receiver, secret_env="NOT_SET_ANYWHERE")])
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    start(ws)
    assert ws.send_notifications().retrying == 1
    assert receiver.requests == []  # nothing unsigned leaves
    [pending] = ws.notification_log()
    assert pending.last_error == "environment variable NOT_SET_ANYWHERE (secret_env) is not set"


def test_a_receiver_gets_only_the_topics_it_asks_for(notify_ws: NotifyWorkspace, receiver: Receiver) -> None:
    ws = notify_ws([cloudevents_receiver(receiver, events=["aborted", "rolled_*"])])
    start(ws)
    ws.abort("eta", reason="stop", actor="bob")
    ws.send_notifications()
    assert [r.json()["type"] for r in receiver.requests] == ["io.pitstop.rollout.aborted"]


def test_one_pass_tries_a_down_receiver_once(notify_ws: NotifyWorkspace, down_receiver: Receiver) -> None:
    """A receiver that is down costs one attempt per pass, not one per pending event."""
    ws = notify_ws([cloudevents_receiver(down_receiver)])
    start(ws)
    ws.abort("eta", reason="stop", actor="bob")
    report = ws.send_notifications()
    assert (report.retrying, report.skipped) == (1, 1)
    assert sorted(d.attempts for d in ws.notification_log()) == [0, 1]


def test_the_log_is_newest_first_and_filtered_by_model(
    notify_ws: NotifyWorkspace, receiver: Receiver
) -> None:
    ws = notify_ws([cloudevents_receiver(receiver), {"name": "team", "url": receiver.url, "format": "slack"}])
    start(ws)
    ws.abort("eta", reason="stop", actor="bob")
    ws.send_notifications()
    log = ws.notification_log("eta")
    assert [(d.topic, d.receiver) for d in log] == [
        ("aborted", "team"),
        ("aborted", "hooks"),
        ("started", "team"),
        ("started", "hooks"),
    ]
    assert len(ws.notification_log(limit=1)) == 1
    assert json.loads(json.dumps([d.to_dict() for d in log]))[0]["status"] == "delivered"


def test_a_retry_after_is_honoured_up_to_the_longest_wait(
    notify_ws: NotifyWorkspace, receiver: Receiver
) -> None:
    ws = notify_ws([cloudevents_receiver(receiver)], backoff_base="10s", backoff_max="10m")
    receiver.statuses, receiver.headers = [429, 429], {"Retry-After": "300"}
    start(ws)
    ws.send_notifications()
    [first] = ws.notification_log()
    assert first.next_attempt_at == ws.clock.now() + timedelta(seconds=300)
    receiver.headers = {"Retry-After": "86400"}
    advance(ws, timedelta(seconds=300))
    ws.send_notifications()
    [second] = ws.notification_log()
    assert second.next_attempt_at == ws.clock.now() + timedelta(minutes=10)


def test_a_champion_replaced_by_hand_is_notified_once(notify_ws: NotifyWorkspace, receiver: Receiver) -> None:
    """Its routing follows in the same transaction; the alias move alone says what happened."""
    ws = notify_ws([cloudevents_receiver(receiver), {"name": "team", "url": receiver.url, "format": "slack"}])
    routes.route(ws, "eta", mode="off", reason="pin the routing", actor="carol")
    ws.set_champion("eta", 2, force=True, reason="v1 corrupts orders", actor="dana")
    ws.send_notifications()
    cloud = [r.json() for r in receiver.requests if "specversion" in r.json()]
    assert [(e["type"], e["data"]["actor"]) for e in cloud] == [
        ("io.pitstop.routing.manual", "carol"),
        ("io.pitstop.champion.manual", "dana"),
    ]
    assert (cloud[1]["data"]["from"], cloud[1]["data"]["to"]) == ("1", "2")
    slack = [r.json()["text"] for r in receiver.requests if "text" in r.json()]
    assert slack[1] == ":wrench: eta: champion set by hand (v1 → v2) by dana: v1 corrupts orders"


def test_a_url_kept_in_the_environment_is_used_and_never_shown(
    notify_ws: NotifyWorkspace, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Slack incoming webhook's URL is itself a secret: `url_env` keeps it out of pitstop.yaml."""
    monkeypatch.setenv("TEAM_WEBHOOK_URL", receiver.url)
    ws = notify_ws([{"name": "team", "url_env": "TEAM_WEBHOOK_URL", "format": "slack"}])
    [sent] = ws.notify_test()
    assert (sent.answer.ok, sent.url) == (True, "$TEAM_WEBHOOK_URL")
    monkeypatch.delenv("TEAM_WEBHOOK_URL")
    start(ws)
    ws.send_notifications()
    [pending] = ws.notification_log()
    assert pending.last_error == "environment variable TEAM_WEBHOOK_URL (url_env) is not set"
    assert len(receiver.requests) == 1  # the test only
