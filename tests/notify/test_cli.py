"""`pitstop notify log|test|send`: tables, --json, exit codes."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from notify.conftest import NotifyWorkspace, Receiver, cloudevents_receiver


def test_notify_send_then_log_as_json(notify_ws: NotifyWorkspace, receiver: Receiver, cli: Any) -> None:
    ws = notify_ws([cloudevents_receiver(receiver)])
    ws.start_rollout("eta", 2, skip_gate=True, reason="tested offline elsewhere", actor="alice")
    sent = cli("notify", "send", "-w", ws.path, "--json")
    assert sent.exit_code == 0, sent.stderr
    assert json.loads(sent.stdout) == {
        "dispatched": 1,
        "delivered": 1,
        "retrying": 0,
        "failed": 0,
        "skipped": 0,
    }
    logged = cli("notify", "log", "-w", ws.path, "--model", "eta", "--json")
    assert logged.exit_code == 0, logged.stderr
    [row] = json.loads(logged.stdout)
    assert (row["model"], row["topic"], row["receiver"], row["status"]) == (
        "eta",
        "started",
        "hooks",
        "delivered",
    )
    assert (row["attempts"], row["last_status_code"]) == (1, 200)


def test_notify_log_shows_a_table(notify_ws: NotifyWorkspace, down_receiver: Receiver, cli: Any) -> None:
    ws = notify_ws([cloudevents_receiver(down_receiver)])
    ws.start_rollout("eta", 2, skip_gate=True, reason="tested offline elsewhere", actor="alice")
    assert cli("notify", "send", "-w", ws.path).exit_code == 0
    shown = cli("notify", "log", "-w", ws.path)
    assert shown.exit_code == 0, shown.stderr
    for word in ("started", "hooks", "pending", "ConnectError", "next 2026-"):
        assert word in shown.stdout


def test_notify_log_fits_80_columns_without_splitting_a_word(
    notify_ws: NotifyWorkspace, down_receiver: Receiver, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = notify_ws([cloudevents_receiver(down_receiver)])
    ws.start_rollout("eta", 2, skip_gate=True, reason="tested offline elsewhere", actor="alice")
    assert cli("notify", "send", "-w", ws.path).exit_code == 0
    monkeypatch.setenv("COLUMNS", "80")
    shown = cli("notify", "log", "-w", ws.path).stdout
    assert max(len(line) for line in shown.splitlines()) <= 80
    for whole in ("started", "pending", "ConnectError"):
        assert whole in shown  # not folded across lines
    assert re.search(r"next \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", shown)  # the time whole too


def test_notify_log_of_an_unknown_model_is_a_usage_error(notify_ws: NotifyWorkspace, cli: Any) -> None:
    ws = notify_ws([])
    result = cli("notify", "log", "-w", ws.path, "--model", "nope")
    assert result.exit_code == 2
    assert "nope" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_notify_test_reports_each_receiver(notify_ws: NotifyWorkspace, receiver: Receiver, cli: Any) -> None:
    ws = notify_ws([cloudevents_receiver(receiver), {"name": "team", "url": receiver.url, "format": "slack"}])
    result = cli("notify", "test", "-w", ws.path, "--json", "--by", "dana")
    assert result.exit_code == 0, result.stderr
    assert [(r["receiver"], r["ok"], r["status_code"]) for r in json.loads(result.stdout)] == [
        ("hooks", True, 200),
        ("team", True, 200),
    ]
    cloud, slack = receiver.requests
    assert cloud.json()["type"] == "io.pitstop.test"
    assert "dana" in slack.json()["text"]
    assert ws.notification_log() == []  # a test is not stored


def test_notify_test_exits_1_when_a_receiver_fails(
    notify_ws: NotifyWorkspace, receiver: Receiver, down_receiver: Receiver, cli: Any
) -> None:
    ws = notify_ws([cloudevents_receiver(receiver), {"name": "gone", "url": down_receiver.url}])
    result = cli("notify", "test", "-w", ws.path)
    assert result.exit_code == 1
    assert "hooks" in result.stdout and "ok (HTTP 200)" in result.stdout
    assert "gone" in result.stdout and "failed" in result.stdout
    one = cli("notify", "test", "-w", ws.path, "--receiver", "hooks", "--json")
    assert one.exit_code == 0
    assert [r["receiver"] for r in json.loads(one.stdout)] == ["hooks"]


def test_notify_test_of_an_unknown_receiver_names_the_configured_ones(
    notify_ws: NotifyWorkspace, receiver: Receiver, cli: Any
) -> None:
    ws = notify_ws([cloudevents_receiver(receiver)])
    result = cli("notify", "test", "-w", ws.path, "--receiver", "nope")
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: --receiver: no receiver named 'nope'; configured: hooks"


def test_notify_test_without_receivers_says_how_to_add_one(notify_ws: NotifyWorkspace, cli: Any) -> None:
    ws = notify_ws([])
    result = cli("notify", "test", "-w", ws.path)
    assert result.exit_code == 2
    assert "notifications.receivers" in result.stderr
