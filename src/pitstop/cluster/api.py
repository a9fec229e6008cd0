"""The Kubernetes API calls way B makes, through kr8s (httpx): read, create, scale, patch. No decisions.

`Cluster` is the interface the reconciler uses; `KubernetesCluster` implements it in one namespace with
exactly the verbs of the Role in deploy/kubernetes/overlays/versions: get and list, create, patch (the
Deployments' scale subresource, the stable Service's selector), and create for the Kubernetes Events
that show each step in the cluster (`kube_events`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any, Protocol

from pitstop.errors import PitstopError


class ResourceConflictError(PitstopError):
    """The object changed since its `resourceVersion` was read (HTTP 409): read it again."""


class ClusterError(PitstopError):
    """The Kubernetes API could not be reached (`status` None) or refused a call with HTTP `status`."""

    def __init__(self, *args: object, status: int | None = None) -> None:
        super().__init__(*args)
        self.status = status


class Cluster(Protocol):
    """The few calls the reconciler makes, in one namespace; objects are plain dictionaries."""

    def deployment(self, name: str) -> dict[str, Any] | None:
        """The Deployment, or None when there is none."""
        ...

    def deployments(self, label_selector: str) -> list[dict[str, Any]]:
        """The Deployments the selector matches."""
        ...

    def service(self, name: str) -> dict[str, Any] | None:
        """The Service, or None when there is none."""
        ...

    def endpoint_slices(self, service: str) -> list[dict[str, Any]]:
        """The EndpointSlices of a Service."""
        ...

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create a Deployment or a Service; the object as the API server stored it (with its uid)."""
        ...

    def create_event(self, event: dict[str, Any]) -> None:
        """Post a core/v1 Event."""
        ...

    def scale(self, deployment: str, replicas: int) -> None:
        """Set a Deployment's replicas through its scale subresource."""
        ...

    def patch_service(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """Merge-patch a Service; raises `ResourceConflictError` when a `resourceVersion` in it is stale."""
        ...


class KubernetesCluster:
    """A namespace of a real (or emulated) cluster, through kr8s: the kubeconfig, the pod's service
    account, or `url` (a test's emulator)."""

    def __init__(self, namespace: str, *, url: str | None = None, timeout: float = 10.0) -> None:
        """Nothing is called yet: the API is reached at the first call (kr8s asks its version then),
        so a controller starts, and decides, while the cluster does not answer. A call, that first one
        included, waits at most `timeout` seconds for each of connecting, sending and reading, then
        fails with a `ClusterError`: an API server that does not answer ends a round, never hangs it."""
        if not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.namespace = namespace
        self.timeout = timeout
        self._url = url
        self._client: Any = None

    @property
    def _api(self) -> Any:
        if self._client is None:
            with _errors(self.timeout):
                self._client = _connect(self._url, self.namespace, self.timeout)
        return self._client

    def close(self) -> None:
        """Close the connections to the API server (a controller keeps them for its lifetime)."""
        if self._client is not None:
            _close(self._client)

    def _object(self, kind: str, name: str) -> Any:
        from kr8s.objects import Deployment, Service

        known: dict[str, Any] = {"Deployment": Deployment, "Service": Service}
        return known[kind]({"metadata": {"name": name, "namespace": self.namespace}}, api=self._api)

    def _read(self, kind: str, name: str) -> dict[str, Any] | None:
        import kr8s

        obj = self._object(kind, name)
        with _errors(self.timeout):
            try:
                obj.refresh()
            except kr8s.NotFoundError:
                return None
        return dict(obj.raw)

    def _list(self, kind: Any, label_selector: str) -> list[dict[str, Any]]:
        with _errors(self.timeout):
            found = self._api.get(kind, namespace=self.namespace, label_selector=label_selector, raw=True)
        # Checked here too: an emulator that ignores the selector must not mix versions' endpoints.
        listed = [dict(obj) for obj in found]
        return [obj for obj in listed if _selects(label_selector, obj)]

    def deployment(self, name: str) -> dict[str, Any] | None:
        return self._read("Deployment", name)

    def deployments(self, label_selector: str) -> list[dict[str, Any]]:
        from kr8s.objects import Deployment

        return self._list(Deployment, label_selector)

    def service(self, name: str) -> dict[str, Any] | None:
        return self._read("Service", name)

    def endpoint_slices(self, service: str) -> list[dict[str, Any]]:
        from kr8s.objects import new_class

        slices = new_class("EndpointSlice", version="discovery.k8s.io/v1", namespaced=True)
        return self._list(slices, f"kubernetes.io/service-name={service}")

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        from kr8s.objects import object_from_spec

        created = object_from_spec(json.loads(json.dumps(obj)), api=self._api)
        with _errors(self.timeout):
            created.create()
        return dict(created.raw)

    def create_event(self, event: dict[str, Any]) -> None:
        self.create(event)

    def scale(self, deployment: str, replicas: int) -> None:
        with _errors(self.timeout):
            self._object("Deployment", deployment).patch(
                {"spec": {"replicas": replicas}}, subresource="scale"
            )

    def patch_service(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        obj = self._object("Service", name)
        with _errors(self.timeout):
            obj.patch(patch)
        return dict(obj.raw)


def _connect(url: str | None, namespace: str, timeout: float) -> Any:
    """A kr8s client whose every request waits at most `timeout` seconds, the version check that
    readies it included.

    `kr8s.api()` (0.20) takes no timeout and asks the server's version before it returns, so its
    documented `timeout` property would be set too late. The client is built here as `kr8s.api()`
    builds it (`bypass_factory`: a new client, never one kr8s cached for the thread; kr8s still
    records it, so a later bare `kr8s.api()` in this thread could get it, timeout included), given its
    timeout, and only then awaited, which authenticates and checks the version."""
    import kr8s
    from kr8s._async_utils import as_sync_func

    api = kr8s.Api(url=url, namespace=namespace, bypass_factory=True)
    api.timeout = timeout

    async def ready() -> Any:
        return await api

    try:
        return as_sync_func(ready)()
    except BaseException:
        _close(api)  # its connection waits for an answer that may never come: each round makes one
        raise


def _close(api: Any) -> None:
    from kr8s._async_utils import as_sync_func

    if api._session is not None:
        with suppress(RuntimeError):  # as kr8s's own close: a loop already gone has nothing to close
            as_sync_func(api._session.aclose)()


def _selects(label_selector: str, obj: dict[str, Any]) -> bool:
    """Whether an object's labels match an equality selector (`a=b,c=d`, the only kind pitstop sends).

    >>> _selects("app=x,tier=web", {"metadata": {"labels": {"app": "x", "tier": "web"}}})
    True
    >>> _selects("app=x", {"metadata": {}})
    False
    """
    labels = (obj.get("metadata") or {}).get("labels") or {}
    pairs = [part.split("=", 1) for part in label_selector.split(",") if part]
    return all(labels.get(key) == value for key, value in pairs)


@contextmanager
def _errors(timeout: float) -> Iterator[None]:
    """kr8s's and httpx's failures as pitstop's: a 409 is a `ResourceConflictError`, the rest (an object
    gone while it was patched too, no answer within `timeout` seconds) a `ClusterError`."""
    import httpx
    import kr8s

    try:
        yield
    except (kr8s.APITimeoutError, httpx.TimeoutException) as error:
        raise ClusterError(f"the Kubernetes API did not answer within {timeout:g} s: {error}") from error
    except kr8s.NotFoundError as error:
        raise ClusterError(f"gone from the cluster: {error}", status=404) from error
    except kr8s.ServerError as error:
        status = error.response.status_code if error.response is not None else None
        if status == 409:
            raise ResourceConflictError(f"changed since read: {error}") from error
        raise ClusterError(f"the Kubernetes API refused: {error}", status=status) from error
    except (httpx.HTTPError, OSError) as error:
        raise ClusterError(f"the Kubernetes API cannot be reached: {error}") from error
