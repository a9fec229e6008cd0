"""Way B against kmock's in-process Kubernetes emulator (kopf's author's; aiohttp), through kr8s: the
sequence of objects and Service selectors a rollout's routing leaves in a cluster, read back from the
emulator's own history of each object, and the Events posted for its switches. kmock keeps no
resourceVersion, filters no list by label and runs no controllers, so the test plays the API
server's and the Deployment and EndpointSlice controllers' part over HTTP (`settle`); conflicts and
readiness rules are tested against our own fake (`test_reconcile.py`)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import kmock
import pytest

from cluster.conftest import set_routes
from pitstop.cluster import objects
from pitstop.cluster.api import KubernetesCluster
from pitstop.cluster.reconcile import ClusterSync
from pitstop.routing.table import Routes
from pitstop.workspace import Workspace

NAMESPACE = "/api/v1/namespaces/pitstop"
APPS = "/apis/apps/v1/namespaces/pitstop"
DISCOVERY = "/apis/discovery.k8s.io/v1/namespaces/pitstop"
START_TIMEOUT = 20.0  # seconds for the emulator's server to listen (a bound, not a timing assertion)


class Emulator:
    """kmock's emulator serving on loopback from a thread of its own (it is asyncio, our code is not)."""

    def __init__(self) -> None:
        self.url = ""
        self.kmock: Any = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with kmock.KubernetesEmulator() as emulator, kmock.Server(emulator) as server:
            emulator["get /version/"] << {
                "major": "1",
                "minor": "32",
                "gitVersion": "v1.32.0-kmock",
            }  # kr8s asks with a slash
            emulator.resources["discovery.k8s.io/v1/endpointslices"] = kmock.ResourceInfo(
                namespaced=True, kind="EndpointSlice"
            )
            self.kmock, self.url = emulator, str(server.url).rstrip("/")
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> Emulator:
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            raise RuntimeError("kmock's emulator did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(START_TIMEOUT)

    def history(self, plural: str, name: str) -> list[dict[str, Any]]:
        """Every state the emulator recorded of one object, oldest first."""
        for key, obj in self.kmock.objects.items():
            if key[0].plural == plural and key[2] == name:
                return [dict(version) for version in obj.history]
        return []

    def latest(self, plural: str) -> list[dict[str, Any]]:
        """The objects of one resource as they are now, in the order they were created."""
        found = [obj for key, obj in self.kmock.objects.items() if key[0].plural == plural]
        return [dict(list(obj.history)[-1]) for obj in found]

    def settle(self) -> None:
        """The cluster's controllers catch up: every Deployment available at its size, and each Service's
        EndpointSlice listing the ready pods its selector matches."""
        with httpx.Client(base_url=self.url, timeout=10) as client:
            deployments = client.get(f"{APPS}/deployments").json()["items"]
            pods = []
            for deployment in deployments:
                name, replicas = deployment["metadata"]["name"], deployment["spec"]["replicas"]
                status = {"observedGeneration": 0, "replicas": replicas, "availableReplicas": replicas}
                client.patch(
                    f"{APPS}/deployments/{name}",
                    json={"status": status},
                    headers={"Content-Type": "application/merge-patch+json"},
                ).raise_for_status()
                labels = deployment["spec"]["template"]["metadata"]["labels"]
                pods += [(f"{name}-abc12-{i}", labels) for i in range(replicas)]
            existing = {
                s["metadata"]["name"] for s in client.get(f"{DISCOVERY}/endpointslices").json()["items"]
            }
            for service in client.get(f"{NAMESPACE}/services").json()["items"]:
                name, selector = service["metadata"]["name"], service["spec"]["selector"]
                if "resourceVersion" not in service["metadata"]:  # kmock keeps none: play the API server
                    client.patch(
                        f"{NAMESPACE}/services/{name}",
                        json={"metadata": {"resourceVersion": "1"}},
                        headers={"Content-Type": "application/merge-patch+json"},
                    ).raise_for_status()
                endpoints = [
                    {
                        "addresses": ["10.0.0.1"],
                        "conditions": {"ready": True},
                        "targetRef": {"kind": "Pod", "name": pod},
                    }
                    for pod, labels in pods
                    if all(labels.get(key) == value for key, value in selector.items())
                ]
                piece = {
                    "apiVersion": "discovery.k8s.io/v1",
                    "kind": "EndpointSlice",
                    "metadata": {"name": f"{name}-x1", "labels": {objects.SERVICE_NAME: name}},
                    "addressType": "IPv4",
                    "endpoints": endpoints,
                }
                if f"{name}-x1" in existing:
                    client.patch(
                        f"{DISCOVERY}/endpointslices/{name}-x1",
                        json={"endpoints": endpoints},
                        headers={"Content-Type": "application/merge-patch+json"},
                    ).raise_for_status()
                else:
                    client.post(f"{DISCOVERY}/endpointslices", json=piece).raise_for_status()


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator() as running:
        yield running


def test_a_rollout_moves_the_stable_selector_v1_v2_v1_with_an_event_each_and_only_pitstop_objects(
    ws: Workspace, emulator: Emulator
) -> None:
    cluster = KubernetesCluster("pitstop", url=emulator.url)
    sync = ClusterSync(ws, cluster)

    def round_trip() -> None:
        for _ in range(2):  # a round, the cluster catches up, the next round sees it
            sync.reconcile()
            emulator.settle()

    try:
        round_trip()
        set_routes(ws, Routes.shadowing(1, 2, "s1"), "test: shadow")
        round_trip()
        set_routes(ws, Routes.champion_only(2, "s1", standby=1), "test: promoted")
        round_trip()
        set_routes(ws, Routes.champion_only(1, "s1"), "test: rolled back")
        round_trip()
        (state,) = sync.reconcile()
    finally:
        cluster.close()
    selectors = [
        version["spec"]["selector"][objects.VERSION]
        for version in emulator.history("services", "pitstop-eta")
    ]
    assert [v for i, v in enumerate(selectors) if i == 0 or selectors[i - 1] != v] == ["1", "2", "1"]
    assert state.complete and state.selected == 1
    for name in ("pitstop-eta", "pitstop-eta-v1", "pitstop-eta-v2"):
        (created, *_) = emulator.history("services", name)
        assert created["metadata"]["labels"][objects.MANAGED_BY] == "pitstop"
    for name in ("pitstop-eta-v1", "pitstop-eta-v2"):
        sizes = [version["spec"]["replicas"] for version in emulator.history("deployments", name)]
        assert set(sizes) == {3}, f"{name} never left full size while routed: {sizes}"
    switches = [
        event["message"]
        for event in emulator.latest("events")
        if (event["reason"], event["involvedObject"]["name"]) == ("SelectorSwitched", "pitstop-eta")
    ]
    assert switches == [
        "Service pitstop-eta created to version 1",
        "Service pitstop-eta moved from version 1 to version 2",
        "Service pitstop-eta moved from version 2 to version 1",
    ]
