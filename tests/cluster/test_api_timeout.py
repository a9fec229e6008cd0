"""An API server that accepts connections and never answers: every call, the version check that
building the kr8s client makes included, fails as a `ClusterError` after `timeout`, so a controller's
round ends (and its lease is renewed) instead of hanging."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from pitstop.cluster.api import ClusterError, KubernetesCluster
from pitstop.cluster.reconcile import cluster_sync
from pitstop.store import gateways
from pitstop.workspace import Workspace

# A bound on each test, should a call hang after all (the fix missing): the calls time out in 0.5 s.
pytestmark = pytest.mark.timeout(60)

VERSION = json.dumps({"major": "1", "minor": "30", "gitVersion": "v1.30.0"}).encode()
VERSION_ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
    + f"Content-Length: {len(VERSION)}\r\n\r\n".encode()
    + VERSION
)


@contextmanager
def silent_server(*, answered: int = 0) -> Iterator[str]:
    """A TCP server on 127.0.0.1 that accepts every connection and answers nothing, but the version
    check on its first `answered` connections; yields its URL."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.05)  # so the accepting loop sees `stop`
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        left = answered
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            held.append(conn)
            if left > 0:
                left -= 1
                conn.settimeout(5)
                conn.recv(65536)  # the request: GET /version
                conn.sendall(VERSION_ANSWER)
                conn.close()

    thread = threading.Thread(target=accept, name="silent-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        server.close()


def test_an_api_server_that_never_answers_fails_the_first_call() -> None:
    with silent_server() as url:
        cluster = KubernetesCluster("pitstop", url=url, timeout=0.5)
        try:
            with pytest.raises(ClusterError, match=r"did not answer within 0\.5 s") as raised:
                cluster.deployment("x")
        finally:
            cluster.close()
    assert raised.value.status is None


def test_a_call_after_the_version_check_is_bounded_too() -> None:
    with silent_server(answered=1) as url:
        cluster = KubernetesCluster("pitstop", url=url, timeout=3.0)  # the version's answer must come
        try:
            with pytest.raises(ClusterError, match=r"did not answer within 3 s"):
                cluster.deployment("x")
        finally:
            cluster.close()


def test_a_round_against_a_silent_api_server_ends(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (ws.path / "pitstop.yaml").write_text(
        "routing: {provider: kubernetes}\nkubernetes: {namespace: pitstop, api_timeout: 500ms}\n"
    )
    controller = Workspace(ws.path, clock=ws.clock)
    with silent_server() as url:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "silent", "cluster": {"server": url}}],
                    "users": [{"name": "nobody", "user": {}}],
                    "contexts": [{"name": "silent", "context": {"cluster": "silent", "user": "nobody"}}],
                    "current-context": "silent",
                }
            )
        )
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        sync = cluster_sync(controller)
        assert sync is not None
        try:
            assert sync.reconcile() == []
        finally:
            assert isinstance(sync.cluster, KubernetesCluster)
            sync.cluster.close()
            controller.close()
    with ws.reading() as conn:  # the round went on: the cluster reported serving nothing
        (ack,) = gateways.acknowledgements(conn, "eta", ws.clock.now(), timedelta(seconds=15))
    assert (ack.gateway, ack.routing_version, ack.warmed) == ("kubernetes/pitstop", 0, ())
