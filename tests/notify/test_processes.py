"""The processes that make decisions send in the background: `pitstop serve` and `pitstop controller`
as real processes deliver to a real receiver on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from notify.conftest import NotifyWorkspace, Receiver, cloudevents_receiver, free_port
from pitstop.rollout import routes
from serving.conftest import wait_until


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate(timeout=30)


def launch(processes: list[subprocess.Popen[str]], *args: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "pitstop", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    processes.append(process)
    return process


def test_pitstop_serve_sends_a_routing_set_by_hand(
    notify_ws: NotifyWorkspace, receiver: Receiver, processes: list[subprocess.Popen[str]]
) -> None:
    ws = notify_ws([cloudevents_receiver(receiver)], interval="100ms")
    port = free_port()
    server = launch(processes, "serve", "-w", str(ws.path), "--port", str(port))
    routes.route(ws, "eta", mode="shadow", challenger=2, reason="a look at v2", actor="carol")
    [request] = receiver.wait_for(1, timeout=60)
    assert server.poll() is None
    assert request.json()["type"] == "io.pitstop.routing.manual"
    counted = 'pitstop_notifications_total{outcome="delivered",receiver="hooks"} 1.0'
    wait_until(lambda: counted in _metrics(port), timeout=30, interval=0.1)


def _metrics(port: int) -> str:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return ""


def test_pitstop_controller_sends_a_rollout_started_by_a_person(
    notify_ws: NotifyWorkspace, receiver: Receiver, processes: list[subprocess.Popen[str]]
) -> None:
    ws = notify_ws([cloudevents_receiver(receiver)], interval="100ms")
    controller = launch(processes, "controller", "-w", str(ws.path), "--interval", "1h")
    ws.start_rollout("eta", 2, skip_gate=True, reason="tested offline elsewhere", actor="alice")
    [request] = receiver.wait_for(1, timeout=60)
    assert controller.poll() is None
    assert request.json()["data"]["actor"] == "alice"
