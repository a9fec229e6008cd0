"""What the cluster should hold for a model's routes, and what an observed object says: pure, no I/O.

Way B (`routing.provider: kubernetes`), after Argo Rollouts' blue-green: every routed model version
runs as its own Deployment and Service (`pitstop-<model>-v<N>`, serving `pitstop serve-model`), and
clients call the model's stable Service, whose selector names the champion's version. A version is
ready only when its Deployment is observed at its generation with every replica available and its
Service's EndpointSlices list only ready pods of that version; the stable Service moves to it by one
merge patch carrying the `resourceVersion` read when readiness was confirmed.

Every object pitstop creates carries `app.kubernetes.io/managed-by: pitstop`; pitstop changes no other.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

from pitstop.config import KubernetesSettings
from pitstop.routing.table import RoutingTable

MANAGED_BY = "app.kubernetes.io/managed-by"
MODEL = "pitstop.io/model"
VERSION = "pitstop.io/version"
COMPONENT = "app.kubernetes.io/component"
SERVICE_NAME = "kubernetes.io/service-name"  # the label tying an EndpointSlice to its Service
OWNED = {MANAGED_BY: "pitstop"}
API_VERSIONS = {"Deployment": "apps/v1", "Service": "v1"}  # the kinds pitstop creates, and Events name
_NOT_DNS = re.compile(r"[^a-z0-9-]+")
_NOT_LABEL = re.compile(r"[^A-Za-z0-9._-]+")


def _short_hash(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=3).hexdigest()


def dns_name(text: str, limit: int = 63) -> str:
    """`text` as a Kubernetes object name (a DNS label): a short hash is added when anything changed.

    >>> dns_name("eta"), dns_name("eta.v2_b")
    ('eta', 'eta-v2-b-52d995')
    """
    cleaned = _NOT_DNS.sub("-", text.lower()).strip("-")
    if cleaned == text and len(cleaned) <= limit:
        return cleaned
    suffix = _short_hash(text)
    return f"{cleaned[: limit - len(suffix) - 1].strip('-')}-{suffix}"


def label_value(text: str) -> str:
    """`text` as a label value (at most 63 characters), with a short hash when it had to change.

    >>> label_value("delivery.eta")
    'delivery.eta'
    """
    cleaned = _NOT_LABEL.sub("-", text).strip("-._")
    if cleaned == text and len(cleaned) <= 63:
        return cleaned
    suffix = _short_hash(text)
    return f"{cleaned[: 63 - len(suffix) - 1].strip('-._')}-{suffix}"


def runner_name(model: str, version: int) -> str:
    """The Deployment and Service of one model version.

    >>> runner_name("eta", 3)
    'pitstop-eta-v3'
    """
    suffix = f"-v{version}"
    return f"pitstop-{dns_name(model, 63 - len('pitstop-') - len(suffix))}{suffix}"


def stable_name(settings: KubernetesSettings, model: str) -> str:
    """The Service clients call for `model` (`kubernetes.stable_service`)."""
    template = settings.stable_service
    return dns_name(template.replace("{model}", model)) if "{model}" in template else template


def selector(model: str, version: int) -> dict[str, str]:
    """The labels that select the pods of one model version."""
    return {MODEL: label_value(model), VERSION: str(version)}


def owned_selector(model: str) -> str:
    """A label selector for every object pitstop made for `model`."""
    return f"{MANAGED_BY}=pitstop,{MODEL}={label_value(model)}"


def _labels(model: str, version: int | None, component: str) -> dict[str, str]:
    labels = {**OWNED, "app.kubernetes.io/name": "pitstop", COMPONENT: component, MODEL: label_value(model)}
    return labels if version is None else {**labels, VERSION: str(version)}


def runner_deployment(settings: KubernetesSettings, model: str, version: int) -> dict[str, Any]:
    """The Deployment serving one version with `pitstop serve-model` over the Open Inference Protocol."""
    name = runner_name(model, version)
    labels = _labels(model, version, "runner")
    mounts: list[dict[str, Any]] = [
        {
            "name": "config",
            "mountPath": "/workspace/pitstop.yaml",
            "subPath": "pitstop.yaml",
            "readOnly": True,
        },
        {"name": "state", "mountPath": "/workspace/.pitstop"},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": settings.config_map}},
        {"name": "state", "emptyDir": {"sizeLimit": "512Mi"}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
    ]
    if settings.artifacts_claim is not None:
        mounts.append({"name": "artifacts", "mountPath": "/artifacts", "readOnly": True})
        volumes.append(
            {
                "name": "artifacts",
                "persistentVolumeClaim": {"claimName": settings.artifacts_claim, "readOnly": True},
            }
        )
    probe = {"httpGet": {"path": "/v2/health/ready", "port": "http"}, "periodSeconds": 5}
    container = {
        "name": "runner",
        "image": settings.runner_image,
        "args": ["serve-model", model, str(version), "--host", "0.0.0.0", "--port", str(settings.port)],
        "ports": [{"name": "http", "containerPort": settings.port}],
        "envFrom": [{"secretRef": {"name": settings.secret}}],
        "readinessProbe": {**probe, "failureThreshold": 2},
        "livenessProbe": {"httpGet": {"path": "/v2/health/live", "port": "http"}, "periodSeconds": 10},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": mounts,
    }
    return {
        "apiVersion": API_VERSIONS["Deployment"],
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": settings.namespace, "labels": labels},
        "spec": {
            "replicas": settings.replicas,
            "selector": {"matchLabels": selector(model, version)},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "runAsGroup": 10001,
                        "fsGroup": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


def _service(
    settings: KubernetesSettings, name: str, labels: dict[str, str], selects: dict[str, str]
) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSIONS["Service"],
        "kind": "Service",
        "metadata": {"name": name, "namespace": settings.namespace, "labels": labels},
        "spec": {
            "selector": selects,
            "ports": [{"name": "http", "port": settings.port, "targetPort": "http"}],
        },
    }


def runner_service(settings: KubernetesSettings, model: str, version: int) -> dict[str, Any]:
    """The Service of one version: what the gateway calls for a challenger or a shadow."""
    labels = _labels(model, version, "runner")
    return _service(settings, runner_name(model, version), labels, selector(model, version))


def stable_service(settings: KubernetesSettings, model: str, champion: int) -> dict[str, Any]:
    """The Service clients call, selecting the champion's pods."""
    labels = _labels(model, None, "stable")
    return _service(settings, stable_name(settings, model), labels, selector(model, champion))


def selector_patch(model: str, version: int, resource_version: str) -> dict[str, Any]:
    """The merge patch moving a stable Service to `version`: refused (409) by the API server when the
    Service changed since `resource_version` was read.

    >>> selector_patch("eta", 4, "812")["metadata"]
    {'resourceVersion': '812'}
    """
    return {"metadata": {"resourceVersion": resource_version}, "spec": {"selector": selector(model, version)}}


def selected_version(service: dict[str, Any] | None, model: str) -> int | None:
    """The model version a stable Service selects (None: no Service, or not one of ours)."""
    chosen = ((service or {}).get("spec") or {}).get("selector") or {}
    if chosen.get(MODEL) != label_value(model) or not str(chosen.get(VERSION, "")).isdigit():
        return None
    return int(chosen[VERSION])


@dataclass(frozen=True)
class ObjectRef:
    """The object a step is about, as its Kubernetes Event names it (`involvedObject`). `kubectl
    describe` finds an object's events by its uid too, so the uid is kept when the object was read."""

    kind: str  # Deployment or Service
    name: str
    uid: str | None = None


def reference(kind: str, obj: dict[str, Any] | None, name: str) -> ObjectRef:
    """A reference to `obj` as read (or created), or by name alone when it was not.

    >>> reference("Service", {"metadata": {"name": "pitstop-eta", "uid": "7f3a"}}, "pitstop-eta")
    ObjectRef(kind='Service', name='pitstop-eta', uid='7f3a')
    >>> reference("Deployment", None, "pitstop-eta-v2").uid is None
    True
    """
    uid = ((obj or {}).get("metadata") or {}).get("uid")
    return ObjectRef(kind, name, None if uid is None else str(uid))


@dataclass(frozen=True)
class Readiness:
    """Whether a version may receive users, and if not why (shown in events and `rollout status`)."""

    version: int
    ready: bool
    reason: str


def _endpoints(slices: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [endpoint for piece in slices for endpoint in piece.get("endpoints") or ()]


def _pod_of(endpoint: dict[str, Any]) -> str:
    target = endpoint.get("targetRef") or {}
    return str(target.get("name", "")) if target.get("kind", "Pod") == "Pod" else ""


def _is_ready(endpoint: dict[str, Any]) -> bool:
    # An absent `ready` means ready (discovery.k8s.io/v1); `serving` alone is a pod terminating.
    return (endpoint.get("conditions") or {}).get("ready") is not False


def version_readiness(
    version: int, deployment: dict[str, Any] | None, slices: Sequence[dict[str, Any]], replicas: int
) -> Readiness:
    """Whether `version` may receive users: its Deployment observed at its generation, at `replicas`
    with all of them available, and its Service's EndpointSlices listing exactly that many ready pods,
    all of this version's Deployment.

    >>> deployment = {"metadata": {"name": "pitstop-eta-v2", "generation": 3},
    ...               "spec": {"replicas": 1}, "status": {"observedGeneration": 2}}
    >>> version_readiness(2, deployment, [], 1).reason
    'pitstop-eta-v2: generation 3 not yet observed (2)'
    """
    if deployment is None:
        return Readiness(version, False, f"version {version} has no Deployment yet")
    name = deployment["metadata"]["name"]
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    generation, observed = deployment["metadata"].get("generation", 0), status.get("observedGeneration", 0)
    if observed < generation:
        return Readiness(version, False, f"{name}: generation {generation} not yet observed ({observed})")
    wanted, available = spec.get("replicas", 0), status.get("availableReplicas", 0)
    if wanted < replicas:
        return Readiness(version, False, f"{name}: {wanted} replicas wanted, {replicas} needed")
    if available < wanted:
        return Readiness(version, False, f"{name}: {available} of {wanted} replicas available")
    endpoints = _endpoints(slices)
    foreign = sorted(_pod_of(e) for e in endpoints if not _pod_of(e).startswith(f"{name}-"))
    if foreign:
        return Readiness(version, False, f"{name}: its Service lists pods of another version: {foreign}")
    ready = sum(1 for endpoint in endpoints if _is_ready(endpoint))
    if ready < wanted or ready < len(endpoints):
        return Readiness(
            version, False, f"{name}: {ready} ready endpoints of {len(endpoints)} listed, {wanted} wanted"
        )
    return Readiness(version, True, f"{name}: {available} of {wanted} replicas available and listed")


def serves_only(slices: Sequence[dict[str, Any]], model: str, version: int) -> bool:
    """Whether a stable Service's EndpointSlices list only pods of `version`, at least one ready: the
    end of a switch."""
    prefix = f"{runner_name(model, version)}-"
    endpoints = _endpoints(slices)
    return any(_is_ready(e) for e in endpoints) and all(_pod_of(e).startswith(prefix) for e in endpoints)


def routed_versions(table: RoutingTable | None) -> set[int]:
    """Every version a table names: served, scored or kept loaded (the standby)."""
    if table is None:
        return set()
    named = {table.champion, table.challenger, table.shadow, table.standby}
    return {version for version in named if version is not None}


def kept_versions(history: Sequence[RoutingTable], now: datetime, delay: timedelta) -> set[int]:
    """The versions that keep full size now: those the newest table names, and those a later table
    dropped less than `delay` ago (Argo Rollouts' `scaleDownDelaySeconds`).

    >>> t0 = datetime(2026, 1, 1)
    >>> history = [RoutingTable.initial("m", 1, t0), RoutingTable.initial("m", 2, t0 + timedelta(seconds=60))]
    >>> sorted(kept_versions(history, t0 + timedelta(seconds=80), timedelta(seconds=30)))
    [1, 2]
    >>> sorted(kept_versions(history, t0 + timedelta(seconds=95), timedelta(seconds=30)))
    [2]
    """
    if not history:
        return set()
    kept = routed_versions(history[-1])
    for before, after in pairwise(history):
        if now < after.created_at + delay:
            kept |= routed_versions(before) - routed_versions(after)
    return kept
