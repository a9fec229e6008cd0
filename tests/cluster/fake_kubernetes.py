"""A small Kubernetes API of our own, as a Starlette app: just the calls way B makes, with what kmock's
emulator lacks: every object has a `resourceVersion` and a `uid`, a merge patch naming a stale
`resourceVersion` is refused with 409 (as kube-apiserver does), a create of an existing name is 409,
and readiness is simulated. Events posted are kept like any object (`events()`); a create of a kind
in `forbidden` is refused with 403, as for a ServiceAccount whose Role lacks it.

No pods run: `settle()` plays the Deployment controller and the EndpointSlice controller, so each
Deployment gets `observedGeneration`, `availableReplicas` (all of them, or `available[name]`) and
every Service the EndpointSlice of the pods its selector matches (`unready`: pods listed not ready).
`before_patch` runs before a Service patch is checked: a test changes the Service there to play a
concurrent writer. `calls` keeps every write, refused or not, in order: (method, kind, name, body).
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import uuid
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

KINDS = {  # (path prefix, resource) -> kind
    ("/apis/apps/v1", "deployments"): "Deployment",
    ("/api/v1", "services"): "Service",
    ("/apis/discovery.k8s.io/v1", "endpointslices"): "EndpointSlice",
    ("/api/v1", "events"): "Event",
}
API_VERSIONS = {
    "Deployment": "apps/v1",
    "Service": "v1",
    "EndpointSlice": "discovery.k8s.io/v1",
    "Event": "v1",
}


def _status(code: int, reason: str, message: str) -> JSONResponse:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code}
    return JSONResponse({**body, "message": message}, status_code=code)


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 merge patch."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
    return target


def _matches(selector: str, labels: dict[str, str]) -> bool:
    pairs = [part.split("=", 1) for part in selector.split(",") if part]
    return all(labels.get(key) == value for key, value in pairs)


class FakeKubernetes:
    """The objects of one cluster, by (kind, namespace, name)."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._versions = itertools.count(1)
        self.available: dict[str, int] = {}  # Deployment name -> available replicas (default: all)
        self.unready: set[str] = set()  # Deployment names whose pods are listed not ready
        self.forbidden: set[str] = set()  # kinds the caller may not create (403)
        # kinds whose creation, and objects (by name) whose reading, is answered after these seconds
        self.silent: dict[str, float] = {}
        self.before_patch: Callable[[FakeKubernetes, str], None] | None = None
        self.calls: list[tuple[str, str, str, Any]] = []
        self.app = Starlette(
            routes=[
                Route("/version", self._version),
                Route(
                    "/{prefix:path}/namespaces/{namespace}/{resource}",
                    self._collection,
                    methods=["GET", "POST"],
                ),
                Route(
                    "/{prefix:path}/namespaces/{namespace}/{resource}/{name}",
                    self._one,
                    methods=["GET", "PATCH"],
                ),
                Route(
                    "/{prefix:path}/namespaces/{namespace}/{resource}/{name}/scale",
                    self._scale,
                    methods=["PATCH"],
                ),
            ]
        )

    # --- what tests call ---------------------------------------------------------------------------

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Store an object as the API server would (a uid when new, a new resourceVersion, generation
        on spec change)."""
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        key = (obj["kind"], meta.get("namespace", "default"), meta["name"])
        before = self.objects.get(key)
        meta["uid"] = before["metadata"]["uid"] if before is not None else str(uuid.uuid4())
        meta["resourceVersion"] = str(next(self._versions))
        if obj["kind"] == "Deployment":
            changed = before is None or before.get("spec") != obj.get("spec")
            meta["generation"] = (before or {}).get("metadata", {}).get("generation", 0) + (
                1 if changed else 0
            )
            obj.setdefault("status", {})
        self.objects[key] = obj
        return obj

    def get(self, kind: str, name: str, namespace: str = "pitstop") -> dict[str, Any] | None:
        return self.objects.get((kind, namespace, name))

    def select(self, name: str, namespace: str = "pitstop") -> dict[str, str]:
        """A Service's selector."""
        service = self.get("Service", name, namespace)
        assert service is not None, f"no Service {name}"
        return dict(service["spec"]["selector"])

    def events(self, namespace: str = "pitstop") -> list[dict[str, Any]]:
        """The Events posted in a namespace, oldest first."""
        return [obj for (kind, ns, _), obj in self.objects.items() if (kind, ns) == ("Event", namespace)]

    def replicas(self, name: str, namespace: str = "pitstop") -> int:
        deployment = self.get("Deployment", name, namespace)
        assert deployment is not None, f"no Deployment {name}"
        return int(deployment["spec"]["replicas"])

    def settle(self) -> None:
        """The controllers of a cluster catch up: Deployments observed and available, EndpointSlices
        listing each Service's pods (a pod of `unready` is listed not ready)."""
        pods: list[tuple[str, dict[str, str], bool]] = []
        for (kind, _, name), obj in list(self.objects.items()):
            if kind != "Deployment":
                continue
            wanted = int(obj["spec"].get("replicas", 0))
            available = min(self.available.get(name, wanted), wanted)
            status = {"observedGeneration": obj["metadata"]["generation"], "replicas": wanted}
            obj["status"] = {**status, "availableReplicas": available, "readyReplicas": available}
            labels = obj["spec"]["template"]["metadata"]["labels"]
            pods += [(f"{name}-abc12-{i}", labels, name not in self.unready) for i in range(wanted)]
        for (kind, namespace, name), obj in list(self.objects.items()):
            if kind != "Service":
                continue
            selector = obj["spec"].get("selector") or {}
            endpoints = [
                {
                    "addresses": ["10.0.0.1"],
                    "conditions": {"ready": ready},
                    "targetRef": {"kind": "Pod", "name": pod},
                }
                for pod, labels, ready in pods
                if selector and all(labels.get(k) == v for k, v in selector.items())
            ]
            self.objects[("EndpointSlice", namespace, f"{name}-x1")] = {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"{name}-x1",
                    "namespace": namespace,
                    "labels": {"kubernetes.io/service-name": name},
                    "resourceVersion": str(next(self._versions)),
                },
                "addressType": "IPv4",
                "endpoints": endpoints,
            }

    def autoscale(self, name: str, replicas: int, namespace: str = "pitstop") -> None:
        """What an HPA does: set a Deployment's replicas."""
        deployment = self.get("Deployment", name, namespace)
        assert deployment is not None
        self.put(_merge(copy.deepcopy(deployment), {"spec": {"replicas": replicas}}))

    # --- the API --------------------------------------------------------------------------------------

    async def _version(self, request: Request) -> JSONResponse:
        return JSONResponse({"major": "1", "minor": "32", "gitVersion": "v1.32.0-fake"})

    def _kind(self, request: Request) -> str | None:
        prefix = "/" + request.path_params["prefix"].strip("/")
        return KINDS.get((prefix, request.path_params["resource"]))

    async def _collection(self, request: Request) -> JSONResponse:
        kind, namespace = self._kind(request), request.path_params["namespace"]
        if kind is None:
            return _status(404, "NotFound", "unknown resource")
        if request.method == "POST":
            body = json.loads(await request.body())
            body.setdefault("metadata", {})["namespace"] = namespace
            name = body["metadata"]["name"]
            self.calls.append(("create", kind, name, body))
            if kind in self.silent:
                await asyncio.sleep(self.silent[kind])
            if kind in self.forbidden:
                resource = request.path_params["resource"]
                user = "system:serviceaccount:pitstop:pitstop-controller"
                message = f'{resource} is forbidden: User "{user}" cannot create resource "{resource}"'
                return _status(403, "Forbidden", f'{message} in the namespace "{namespace}"')
            if (kind, namespace, name) in self.objects:
                return _status(409, "AlreadyExists", f'{kind} "{name}" already exists')
            return JSONResponse(self.put({**body, "kind": kind}), status_code=201)
        selector = request.query_params.get("labelSelector", "")
        items = [
            obj
            for (k, ns, _), obj in sorted(self.objects.items())
            if k == kind and ns == namespace and _matches(selector, obj["metadata"].get("labels") or {})
        ]
        return JSONResponse(
            {"kind": f"{kind}List", "apiVersion": API_VERSIONS[kind], "metadata": {}, "items": items}
        )

    async def _one(self, request: Request) -> JSONResponse:
        kind, namespace, name = (
            self._kind(request),
            request.path_params["namespace"],
            request.path_params["name"],
        )
        if kind is None:
            return _status(404, "NotFound", "unknown resource")
        if name in self.silent:
            await asyncio.sleep(self.silent[name])
        if request.method == "PATCH" and kind == "Service" and self.before_patch is not None:
            hook, self.before_patch = self.before_patch, None  # once: a concurrent writer, not a loop
            hook(self, name)
        obj = self.objects.get((kind, namespace, name))
        if obj is None:
            return _status(404, "NotFound", f'{kind} "{name}" not found')
        if request.method == "GET":
            return JSONResponse(obj)
        patch = json.loads(await request.body())
        self.calls.append(("patch", kind, name, patch))
        wanted = (patch.get("metadata") or {}).get("resourceVersion")
        if wanted is not None and wanted != obj["metadata"]["resourceVersion"]:
            return _status(409, "Conflict", f'Operation cannot be fulfilled on {kind} "{name}": changed')
        return JSONResponse(self.put(_merge(copy.deepcopy(obj), patch)))

    async def _scale(self, request: Request) -> JSONResponse:
        namespace, name = request.path_params["namespace"], request.path_params["name"]
        obj = self.objects.get(("Deployment", namespace, name))
        if obj is None:
            return _status(404, "NotFound", f'Deployment "{name}" not found')
        patch = json.loads(await request.body())
        self.calls.append(("scale", "Deployment", name, patch))
        replicas = int(patch["spec"]["replicas"])
        self.put(_merge(copy.deepcopy(obj), {"spec": {"replicas": replicas}}))
        return JSONResponse({"kind": "Scale", "spec": {"replicas": replicas}, "metadata": {"name": name}})
