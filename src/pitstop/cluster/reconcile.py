"""Way B's reconciler: bring the cluster to what the store's routing says, one model at a time.

The store stays the source of truth: a rollout's step, a promotion or a rollback commits its routing
table first (through the routing provider, in the rollout's transaction), and the leading controller
reconciles the cluster toward it after each round (`Controller(after_round=…)`). Whatever crashed
where, the next round reads both sides again and does only what is missing, so it converges:

1. every version the routes name, or dropped less than `kubernetes.scale_down_delay` ago, or selected
   by the stable Service now, has its Deployment and Service, with at least `kubernetes.replicas` pods
   (an autoscaler that shrank the previous champion is undone, so a rollback never lands on too few
   pods; one that added pods is left alone); any other
   Deployment of the model pitstop made is scaled to zero;
2. when the stable Service does not select the champion, the champion's readiness is read
   (`objects.version_readiness`) and, only if ready, the selector is merge-patched with the
   `resourceVersion` read before; a 409 reads the Service and the readiness again;
3. the switch is complete when the stable Service's EndpointSlices list only the champion's pods.

Each step is a `cluster_step` event naming its objects and versions (a step found again unchanged, such
as a target still not ready for the same reason, is not recorded twice). Each step recorded is then
posted as a Kubernetes Event about its main object (`kube_events`), so `kubectl describe` shows it; an
Event the cluster refuses (a Role without `events`, an API down) is logged once per cause and dropped,
never failing the round: the store's event is the record. The cluster also reports like
a gateway (`kubernetes/<namespace>` in `gateway_heartbeats`): the routing version it has applied and
the versions whose pods are ready, so the controller holds a step until the cluster has the challenger
ready (`health.not_warm`) exactly as it waits for gateways.
"""

from __future__ import annotations

import logging
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from pitstop import registry
from pitstop.cluster import kube_events, objects
from pitstop.cluster.api import Cluster, ClusterError, KubernetesCluster, ResourceConflictError
from pitstop.cluster.objects import ObjectRef, Readiness
from pitstop.config import KubernetesSettings, RoutingProviderName
from pitstop.events import EventKind, list_events, record_event
from pitstop.routing.store import effective_routing, routing_history
from pitstop.routing.table import RoutingTable
from pitstop.rules import Rule
from pitstop.store import gateways
from pitstop.store.gateways import Heartbeat, ServedModel

if TYPE_CHECKING:
    from pitstop.context import Context

log = logging.getLogger("pitstop.cluster")
ACTOR = "controller"
CONFLICT_RETRIES = 3  # a Service changing this often under us is someone else's loop: try next round


@dataclass(frozen=True)
class Step:
    """One thing done or found in the cluster, recorded as a `cluster_step` event and posted as a
    Kubernetes Event about `regarding`: the stable Service for a switch, a version's Deployment or
    Service for what is done to it, the champion's Deployment for its readiness."""

    rule: Rule
    reason: str
    regarding: ObjectRef
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelCluster:
    """The cluster side of one model after a reconcile: what `rollout status` shows."""

    model: str
    routing_version: int  # the table the cluster was reconciled to
    champion: int
    stable_service: str
    selected: int | None  # the version the stable Service selects
    complete: bool  # it selects the champion and its endpoints are only the champion's pods
    readiness: tuple[Readiness, ...]
    steps: tuple[Step, ...]

    @property
    def ready_versions(self) -> tuple[int, ...]:
        return tuple(r.version for r in self.readiness if r.ready)


def reconcile_model(
    cluster: Cluster,
    settings: KubernetesSettings,
    history: list[RoutingTable],
    table: RoutingTable,
    now: datetime,
) -> ModelCluster:
    """Bring one model's objects to `table` (its newest routing; `history` the tables before and it)."""
    model, champion = table.model, table.champion
    steps: list[Step] = []
    stable_name = objects.stable_name(settings, model)
    stable = cluster.service(stable_name)
    if stable is not None and not _owned(stable):
        steps.append(_foreign("Service", stable, stable_name, model))
        stable = None
        selected = None
        switchable = False
    else:
        selected = objects.selected_version(stable, model)
        switchable = True
    kept = objects.kept_versions(history, now, settings.scale_down_delay) | objects.routed_versions(table)
    if selected is not None:
        kept.add(selected)  # the cluster routes to it: never scaled down while selected
    for version in sorted(kept):
        steps.extend(_keep_full_size(cluster, settings, model, version))
    for deployment in cluster.deployments(objects.owned_selector(model)):
        steps.extend(_scale_down_unless_kept(cluster, model, deployment, kept))
    if switchable:
        stable, switch_steps = _switch(cluster, settings, model, champion, stable)
        steps.extend(switch_steps)
        selected = objects.selected_version(stable, model)
    complete = (
        selected == champion
        and stable is not None
        and objects.serves_only(cluster.endpoint_slices(stable_name), model, champion)
    )
    if complete:
        steps.append(
            Step(
                Rule.CLUSTER_SWITCH_COMPLETE,
                f"Service {stable_name} serves only the pods of version {champion}",
                objects.reference("Service", stable, stable_name),
                {"service": stable_name, "version": champion, "routing_version": table.version},
            )
        )
    readiness = tuple(_readiness(cluster, settings, model, version)[1] for version in sorted(kept))
    return ModelCluster(
        model, table.version, champion, stable_name, selected, complete, readiness, tuple(steps)
    )


def _owned(obj: dict[str, Any]) -> bool:
    return (obj.get("metadata", {}).get("labels") or {}).get(objects.MANAGED_BY) == "pitstop"


def _foreign(kind: str, obj: dict[str, Any], name: str, model: str) -> Step:
    return Step(
        Rule.CLUSTER_FOREIGN,
        f"{kind} {name} exists but pitstop did not create it: left as it is",
        objects.reference(kind, obj, name),
        {"kind": kind, "name": name, "model": model},
    )


def _keep_full_size(cluster: Cluster, settings: KubernetesSettings, model: str, version: int) -> list[Step]:
    name = objects.runner_name(model, version)
    steps = []
    service = cluster.service(name)
    if service is None:
        created = _create(cluster, objects.runner_service(settings, model, version))
        regarding = objects.reference("Service", created, name)
        data: dict[str, Any] = {"service": name, "version": version}
        steps.append(Step(Rule.CLUSTER_CREATED, f"Service {name} created", regarding, data))
    elif not _owned(service):
        steps.append(_foreign("Service", service, name, model))
    deployment = cluster.deployment(name)
    if deployment is None:
        created = _create(cluster, objects.runner_deployment(settings, model, version))
        regarding = objects.reference("Deployment", created, name)
        data = {"deployment": name, "version": version, "replicas": settings.replicas}
        steps.append(Step(Rule.CLUSTER_CREATED, f"Deployment {name} created", regarding, data))
    elif not _owned(deployment):
        steps.append(_foreign("Deployment", deployment, name, model))
    elif (deployment.get("spec", {}).get("replicas") or 0) < settings.replicas:  # more: an autoscaler's
        before = deployment.get("spec", {}).get("replicas") or 0
        cluster.scale(name, settings.replicas)
        steps.append(
            Step(
                Rule.CLUSTER_SCALED,
                f"Deployment {name} set back from {before} to {settings.replicas} replicas",
                objects.reference("Deployment", deployment, name),
                {"deployment": name, "version": version, "from": before, "to": settings.replicas},
            )
        )
    return steps


def _create(cluster: Cluster, obj: dict[str, Any]) -> dict[str, Any] | None:
    # Created meanwhile (by a controller that lost its lease mid-round): read again next round.
    with suppress(ResourceConflictError):
        return cluster.create(obj)
    return None


def _scale_down_unless_kept(
    cluster: Cluster, model: str, deployment: dict[str, Any], kept: set[int]
) -> list[Step]:
    labels = deployment.get("metadata", {}).get("labels") or {}
    version = str(labels.get(objects.VERSION, ""))
    if not version.isdigit() or int(version) in kept or not deployment.get("spec", {}).get("replicas"):
        return []
    name = deployment["metadata"]["name"]
    cluster.scale(name, 0)
    data = {"deployment": name, "version": int(version), "from": deployment["spec"]["replicas"], "to": 0}
    reason = f"Deployment {name} scaled to zero: no longer routed"
    return [Step(Rule.CLUSTER_SCALED_DOWN, reason, objects.reference("Deployment", deployment, name), data)]


def _readiness(
    cluster: Cluster, settings: KubernetesSettings, model: str, version: int
) -> tuple[ObjectRef, Readiness]:
    """A version's readiness, and its Deployment (what a wait for it is about)."""
    name = objects.runner_name(model, version)
    deployment = cluster.deployment(name)
    slices = cluster.endpoint_slices(name) if deployment is not None else []
    readiness = objects.version_readiness(version, deployment, slices, settings.replicas)
    return objects.reference("Deployment", deployment, name), readiness


def _switch(
    cluster: Cluster, settings: KubernetesSettings, model: str, champion: int, stable: dict[str, Any] | None
) -> tuple[dict[str, Any] | None, list[Step]]:
    """Move the stable Service to the champion when it is ready; the Service as it is now, and the steps."""
    name = objects.stable_name(settings, model)
    steps: list[Step] = []
    for _ in range(CONFLICT_RETRIES):
        selected = objects.selected_version(stable, model)
        if selected == champion:
            return stable, steps
        data = {"service": name, "from_version": selected, "to_version": champion}
        target, readiness = _readiness(cluster, settings, model, champion)  # read after the Service
        if not readiness.ready:
            reason = f"Service {name} waits: {readiness.reason}"
            steps.append(Step(Rule.CLUSTER_NOT_READY, reason, target, data))
            return stable, steps
        try:
            if stable is None:
                cluster.create(objects.stable_service(settings, model, champion))
            else:
                version = str(stable["metadata"]["resourceVersion"])
                cluster.patch_service(name, objects.selector_patch(model, champion, version))
        except ResourceConflictError:
            reason = f"Service {name} changed since read: read again"
            regarding = objects.reference("Service", stable, name)
            steps.append(Step(Rule.CLUSTER_CONFLICT, reason, regarding, data))
            stable = cluster.service(name)
            continue
        stable = cluster.service(name)
        where = "created" if selected is None else f"moved from version {selected}"
        reason = f"Service {name} {where} to version {champion}"
        steps.append(Step(Rule.CLUSTER_SWITCHED, reason, objects.reference("Service", stable, name), data))
        return stable, steps
    return stable, steps


def heartbeat_name(settings: KubernetesSettings) -> str:
    """How the cluster appears among the gateways (`pitstop gateways`)."""
    return f"kubernetes/{settings.namespace}"


def served(state: ModelCluster) -> ServedModel:
    """The cluster's report of one model, read by the controller like a gateway's: the routing version
    it has applied (0 until the switch is complete) and the versions whose pods are all ready."""
    loaded = tuple(r.version for r in state.readiness)
    return ServedModel(
        state.model, state.routing_version if state.complete else 0, loaded, state.ready_versions
    )


class ClusterSync:
    """Reconcile every model with a champion, record the steps and the cluster's heartbeat."""

    def __init__(self, ctx: Context, cluster: Cluster) -> None:
        self.ctx = ctx
        self.cluster = cluster
        self.settings = ctx.config.kubernetes
        self.started_at = ctx.clock.now()
        self.event_failures: set[int | None] = set()  # HTTP statuses (None: unreachable) logged

    def __call__(self) -> None:
        self.reconcile()

    def finish(self, timeout: float) -> None:
        """Nothing to wait for: a reconcile runs within the round."""

    def reconcile(self) -> list[ModelCluster]:
        """One pass over every model with a champion. Once a cluster call fails, the models left are not
        tried this round (the failure is logged); each of them is reported serving nothing."""
        now = self.ctx.clock.now()
        with self.ctx.reading() as conn:
            plans = []
            for model in registry.list_models(conn):
                table = effective_routing(conn, model, now)
                if table is not None:
                    plans.append((model, routing_history(conn, model.id) or [table], table))
        states: list[ModelCluster] = []
        unknown: list[str] = []
        silent = False  # the API did not answer (or could not be reached): no Event is tried either
        for model, history, table in plans:
            if unknown:  # the cluster failed this round: the next models wait for the next round
                unknown.append(model.name)
                continue
            try:
                states.append(reconcile_model(self.cluster, self.settings, history, table, now))
            except ClusterError as error:
                unknown.append(model.name)
                silent = error.status is None
                log.warning(
                    "%s: the cluster was not reconciled, tried again next round: %s", model.name, error
                )
        # A model whose cluster could not be read is reported serving nothing: its rollout waits.
        reports = [served(state) for state in states] + [ServedModel(name, 0, (), ()) for name in unknown]
        recorded: list[tuple[str, Step]] = []
        with self.ctx.writing() as conn:
            for state in states:
                model = registry.get_model(conn, state.model)
                recorded += [(state.model, step) for step in _record_new_steps(conn, model.id, state, now)]
            beat = Heartbeat(heartbeat_name(self.settings), self.started_at, now, tuple(reports))
            gateways.beat(conn, beat)
        if not silent:  # a round waits on a silent API once at most: its lease must outlast it
            self._post_events(recorded, now)  # once committed: an Event never shows a step not recorded
        return states

    def _post_events(self, recorded: list[tuple[str, Step]], now: datetime) -> None:
        """Post each recorded step as a Kubernetes Event; one the cluster refuses is dropped, and each
        cause of refusal (an HTTP status, or none: unreachable) is logged once per process. Once the
        API cannot be reached (or does not answer), the round's other Events are dropped without
        trying: each try could wait `kubernetes.api_timeout`, and the round must end."""
        for model, step in recorded:
            event = kube_events.kubernetes_event(
                self.settings.namespace, model, step.rule, step.reason, step.regarding, now
            )
            try:
                self.cluster.create_event(event)
            except ResourceConflictError:
                continue  # this very step was posted already (its name is a hash of it)
            except ClusterError as error:
                if error.status not in self.event_failures:
                    self.event_failures.add(error.status)
                    cause = "unreachable" if error.status is None else f"HTTP {error.status}"
                    log.warning(
                        "Kubernetes Events are not posted (%s; does the Role allow `events`?): %s;"
                        " the steps stay in pitstop's event log, and this is not logged again",
                        cause,
                        error,
                    )
                if error.status is None:
                    return


# Findings a round makes again while nothing changed: recorded once per routing version and reason.
FINDINGS = frozenset({Rule.CLUSTER_NOT_READY, Rule.CLUSTER_SWITCH_COMPLETE, Rule.CLUSTER_FOREIGN})
RECENT = 50  # cluster steps looked back at for a finding already recorded


def _record_new_steps(conn: Connection, model_id: int, state: ModelCluster, now: datetime) -> list[Step]:
    """Record the round's steps: every action, and each finding not already recorded for this routing
    version (a wait that goes on, a switch found complete again). The steps recorded."""
    recent = list_events(conn, model_id, kinds=(EventKind.CLUSTER_STEP,), limit=RECENT)
    found = {(event.rule, event.reason, event.data.get("routing_version")) for event in recent}
    recorded = []
    for step in state.steps:
        if step.rule in FINDINGS and (str(step.rule), step.reason, state.routing_version) in found:
            continue
        recorded.append(step)
        record_event(
            conn,
            time=now,
            model_id=model_id,
            kind=EventKind.CLUSTER_STEP,
            actor=ACTOR,
            from_state=None if state.selected is None else f"v{state.selected}",
            to_state=f"v{state.champion}",
            rule=step.rule,
            reason=step.reason,
            data={**step.data, "model": state.model, "routing_version": state.routing_version},
        )
    return recorded


def cluster_sync(ctx: Context) -> ClusterSync | None:
    """What a leading controller runs after each round under `routing.provider: kubernetes`; None
    under the gateways provider."""
    if ctx.config.routing.provider is not RoutingProviderName.KUBERNETES:
        return None
    settings = ctx.config.kubernetes
    cluster = KubernetesCluster(settings.namespace, timeout=settings.api_timeout.total_seconds())
    return ClusterSync(ctx, cluster)
