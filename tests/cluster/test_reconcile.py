"""Way B against our own fake Kubernetes API (resourceVersion conflicts and simulated readiness): the
stable Service moves only to a ready champion, in one guarded patch; routed and recently routed
versions keep their full size; a crash on either side of the store commit converges; every step is an
event; the cluster reports like a gateway, so a rollout waits for it."""

from __future__ import annotations

import socket
from datetime import timedelta
from typing import Any

from cluster.conftest import set_routes
from cluster.fake_kubernetes import FakeKubernetes
from pitstop import registry
from pitstop.clock import ManualClock
from pitstop.cluster import objects
from pitstop.cluster.api import KubernetesCluster
from pitstop.cluster.reconcile import ClusterSync
from pitstop.events import EventKind, list_events
from pitstop.rollout.acknowledged import when_gateways_ready
from pitstop.rollout.controller import read_evidence
from pitstop.rollout.decision import Decision
from pitstop.rollout.phases import Action
from pitstop.routing.table import Routes
from pitstop.rules import Rule
from pitstop.store import gateways
from pitstop.workspace import Workspace

STABLE, V1, V2 = "pitstop-eta", "pitstop-eta-v1", "pitstop-eta-v2"
SALT = "s1"


def selected(fake: FakeKubernetes) -> str:
    return fake.select(STABLE)[objects.VERSION]


def cluster_steps(ws: Workspace) -> list[tuple[str, str]]:
    with ws.reading() as conn:
        model = registry.get_model(conn, "eta")
        found = list_events(conn, model.id, kinds=(EventKind.CLUSTER_STEP,))
    return [(str(event.rule), event.reason or "") for event in found]


def writes(fake: FakeKubernetes) -> list[tuple[str, str, str]]:
    """The writes to the objects way B manages (the Events posted beside them are not among them)."""
    return [(method, kind, name) for method, kind, name, _ in fake.calls if kind != "Event"]


def serving_v1(sync: ClusterSync, fake: FakeKubernetes) -> None:
    """The start of every test: v1's runner is up and the stable Service selects it."""
    sync.reconcile()  # creates v1's Deployment and Service; not ready yet, so no stable Service
    fake.settle()
    sync.reconcile()  # v1 ready: the stable Service is created selecting it
    fake.settle()
    sync.reconcile()
    assert selected(fake) == "1"


def promote(ws: Workspace) -> None:
    set_routes(ws, Routes.champion_only(2, SALT, standby=1), "test: promoted")


def switched_to_v2(ws: Workspace, sync: ClusterSync, fake: FakeKubernetes) -> None:
    """v2 promoted in the store, its runner up and ready, and the stable Service switched to it."""
    promote(ws)
    sync.reconcile()
    fake.settle()
    sync.reconcile()
    assert selected(fake) == "2"


def manual_clock(ws: Workspace) -> ManualClock:
    assert isinstance(ws.clock, ManualClock)
    return ws.clock


def test_the_first_round_creates_the_runner_then_the_stable_service_once_it_is_ready(
    ws: Workspace, sync: ClusterSync, fake: FakeKubernetes
) -> None:
    (state,) = sync.reconcile()
    assert fake.get("Service", STABLE) is None, "no stable Service before its version is ready"
    assert (fake.replicas(V1), state.complete) == (3, False)
    assert fake.get("Deployment", V1)["metadata"]["labels"][objects.MANAGED_BY] == "pitstop"  # type: ignore[index]
    fake.settle()
    sync.reconcile()
    fake.settle()
    (state,) = sync.reconcile()
    assert fake.select(STABLE) == {objects.MODEL: "eta", objects.VERSION: "1"}
    assert state.complete and state.ready_versions == (1,)
    rules = [rule for rule, _ in cluster_steps(ws)]
    switched = ["cluster.not_ready", "cluster.switched", "cluster.switch_complete"]
    assert rules == ["cluster.created", "cluster.created", *switched]


def test_a_target_not_ready_is_not_switched_to_and_the_reason_is_recorded(
    ws: Workspace, sync: ClusterSync, fake: FakeKubernetes
) -> None:
    serving_v1(sync, fake)
    fake.unready.add(V2)
    promote(ws)
    for _ in range(3):  # rounds go by; the wait is recorded once
        sync.reconcile()
        fake.settle()
    assert selected(fake) == "1"
    waits = [reason for rule, reason in cluster_steps(ws) if rule == "cluster.not_ready"]
    assert waits[-1] == (
        "Service pitstop-eta waits: pitstop-eta-v2: 0 ready endpoints of 3 listed, 3 wanted"
    ), waits
    assert len([w for w in waits if "v2" in w]) <= 2  # once before settling, once after: not per round
    with ws.reading() as conn:
        (ack,) = gateways.acknowledgements(conn, "eta", ws.clock.now(), timedelta(seconds=15))
    assert (ack.gateway, ack.routing_version, ack.warmed) == ("kubernetes/pitstop", 0, (1,))
    fake.unready.discard(V2)
    fake.settle()
    sync.reconcile()
    fake.settle()
    (state,) = sync.reconcile()
    assert selected(fake) == "2" and state.complete


def test_the_old_version_is_never_scaled_down_while_the_stable_service_selects_it(
    ws: Workspace, sync: ClusterSync, fake: FakeKubernetes
) -> None:
    serving_v1(sync, fake)
    fake.unready.add(V2)
    promote(ws)
    sync.reconcile()
    set_routes(ws, Routes.champion_only(2, SALT), "test: standby over")  # v1 no longer in the routes
    clock = manual_clock(ws)
    clock.advance(timedelta(minutes=5))  # far past kubernetes.scale_down_delay
    fake.settle()
    sync.reconcile()
    assert selected(fake) == "1" and fake.replicas(V1) == 3
    assert ("scale", "Deployment", V1) not in writes(fake)


def test_a_version_dropped_from_the_routes_keeps_its_pods_for_the_delay_then_scales_to_zero(
    ws: Workspace, sync: ClusterSync, fake: FakeKubernetes
) -> None:
    serving_v1(sync, fake)
    switched_to_v2(ws, sync, fake)
    set_routes(ws, Routes.champion_only(2, SALT), "test: standby over")
    clock = manual_clock(ws)
    clock.advance(timedelta(seconds=20))
    sync.reconcile()
    assert fake.replicas(V1) == 3, "within kubernetes.scale_down_delay (30s)"
    clock.advance(timedelta(seconds=15))
    sync.reconcile()
    assert fake.replicas(V1) == 0
    scaled = ("cluster.scaled_down", f"Deployment {V1} scaled to zero: no longer routed")
    assert cluster_steps(ws)[-1] == scaled


def test_an_autoscaler_cannot_shrink_the_previous_champion_so_a_rollback_needs_no_scale_up(
    ws: Workspace, sync: ClusterSync, fake: FakeKubernetes
) -> None:
    serving_v1(sync, fake)
    switched_to_v2(ws, sync, fake)
    fake.autoscale(V1, 1)  # an HPA shrinks the idle previous champion
    fake.autoscale(V2, 5)  # and grows the busy champion
    sync.reconcile()  # the next round sets the previous champion back to full size
    assert (fake.replicas(V1), fake.replicas(V2)) == (3, 5)
    assert ("scale", "Deployment", V2) not in writes(fake), "pods an autoscaler added are left alone"
    assert ("cluster.scaled", f"Deployment {V1} set back from 1 to 3 replicas") in cluster_steps(ws)
    fake.settle()
    before = len(writes(fake))
    set_routes(ws, Routes.champion_only(1, SALT), "test: rolled back")
    (state,) = sync.reconcile()
    rollback = writes(fake)[before:]
    assert rollback == [("patch", "Service", STABLE)], "one selector patch, no scale-up"
    fake.settle()  # the endpoints follow the selector
    (state,) = sync.reconcile()
    assert selected(fake) == "1" and state.complete


def test_a_conflict_on_the_selector_patch_reads_again_and_checks_readiness_again(
    ws: Workspace, sync: ClusterSync, fake: FakeKubernetes
) -> None:
    serving_v1(sync, fake)
    sync_v2_ready(ws, sync, fake)

    def concurrent_writer(api: FakeKubernetes, name: str) -> None:
        """Between our read and our patch: someone edits the Service and v2's pods turn unready."""
        service = api.get("Service", name)
        assert service is not None
        api.put({**service, "metadata": {**service["metadata"], "annotations": {"edited": "yes"}}})
        api.unready.add(V2)
        api.settle()

    fake.before_patch = concurrent_writer
    sync.reconcile()
    assert selected(fake) == "1", "re-checked after the 409: v2 is no longer ready"
    steps = [rule for rule, _ in cluster_steps(ws)]
    assert steps[-2:] == ["cluster.conflict", "cluster.not_ready"]
    patches = [body for method, kind, _, body in fake.calls if (method, kind) == ("patch", "Service")]
    assert len(patches) == 1 and "resourceVersion" in patches[0]["metadata"]
    fake.unready.discard(V2)
    fake.settle()
    sync.reconcile()
    assert selected(fake) == "2"


def sync_v2_ready(ws: Workspace, sync: ClusterSync, fake: FakeKubernetes) -> None:
    """v2 routed as a shadow first, so its runner is up and ready; then promoted in the store."""
    set_routes(ws, Routes.shadowing(1, 2, SALT), "test: shadow")
    sync.reconcile()
    fake.settle()
    sync.reconcile()
    promote(ws)


def test_a_crash_after_the_store_commit_converges_at_the_next_round(
    ws: Workspace, cluster: Any, fake: FakeKubernetes
) -> None:
    first = ClusterSync(ws, cluster)
    serving_v1(first, fake)
    sync_v2_ready(ws, first, fake)  # the promotion committed; the controller dies before reconciling
    restarted = ClusterSync(ws, cluster)
    restarted.reconcile()
    fake.settle()
    restarted.reconcile()
    assert selected(fake) == "2"
    before = len(fake.calls)
    restarted.reconcile()
    assert fake.calls[before:] == [], "idempotent: nothing left to do"


def test_a_cluster_ahead_of_the_store_is_brought_back_to_the_store(
    ws: Workspace, sync: ClusterSync, fake: FakeKubernetes
) -> None:
    serving_v1(sync, fake)
    set_routes(ws, Routes.shadowing(1, 2, SALT), "test: shadow")
    sync.reconcile()
    fake.settle()
    # A controller patched the Service for a promotion whose store transaction then rolled back.
    service = fake.get("Service", STABLE)
    assert service is not None
    fake.put({**service, "spec": {**service["spec"], "selector": objects.selector("eta", 2)}})
    fake.settle()
    sync.reconcile()
    assert selected(fake) == "1"
    assert cluster_steps(ws)[-1][0] in ("cluster.switched", "cluster.switch_complete")


def test_objects_pitstop_did_not_create_are_left_alone(
    ws: Workspace, sync: ClusterSync, fake: FakeKubernetes
) -> None:
    fake.put(
        {
            "kind": "Service",
            "apiVersion": "v1",
            "metadata": {"name": STABLE, "namespace": "pitstop"},
            "spec": {"selector": {"app": "theirs"}},
        }
    )
    sync.reconcile()
    fake.settle()
    sync.reconcile()
    assert fake.select(STABLE) == {"app": "theirs"}
    assert ("patch", "Service", STABLE) not in writes(fake)
    assert ("cluster.foreign", f"Service {STABLE} exists but pitstop did not create it: left as it is") in (
        cluster_steps(ws)
    )


def test_a_rollout_step_waits_until_the_cluster_has_the_challenger_ready(
    ws: Workspace, sync: ClusterSync, fake: FakeKubernetes
) -> None:
    serving_v1(sync, fake)
    fake.unready.add(V2)
    ws.start_rollout("eta", 2, skip_gate=True, reason="test")
    sync.reconcile()  # v2's runner created, never ready: the cluster reports v1 warm only
    fake.settle()
    sync.reconcile()
    stored = ws.rollout_status("eta").rollout
    assert stored is not None
    evidence = read_evidence(ws, stored, ws.clock.now())
    passed = Decision(Action.ADVANCE, Rule.SHADOW_PASSED, "the shadow passed", {})
    held = when_gateways_ready(stored.state, evidence, passed)
    assert (held.action, held.rule) == (Action.STAY, Rule.HEALTH_NOT_WARM)
    assert "waiting for 1 of 1 gateway to load and warm challenger v2" in held.reason
    assert held.numbers["gateways_not_warm"] == {"kubernetes/pitstop": [1]}
    fake.unready.discard(V2)
    fake.settle()
    sync.reconcile()
    evidence = read_evidence(ws, stored, ws.clock.now())
    assert when_gateways_ready(stored.state, evidence, passed) == passed


def test_rollout_status_shows_the_cluster_side(
    ws: Workspace, sync: ClusterSync, fake: FakeKubernetes, cli
) -> None:  # type: ignore[no-untyped-def]
    serving_v1(sync, fake)
    fake.unready.add(V2)
    ws.start_rollout("eta", 2, skip_gate=True, reason="test")
    sync.reconcile()
    fake.settle()
    sync.reconcile()
    cluster = ws.rollout_status("eta").to_dict()["cluster"]
    assert (cluster["rule"], cluster["data"]["service"]) == ("cluster.switch_complete", STABLE)
    shown = cli("rollout", "status", "eta", "-w", ws.path)
    assert shown.exit_code == 0, shown.stderr
    line = f"cluster: Service {STABLE} serves only the pods of version 1 (cluster.switch_complete"
    assert line in " ".join(shown.stdout.split())


def test_a_cluster_that_cannot_be_reached_holds_the_rollout(ws: Workspace) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    unreachable = KubernetesCluster("pitstop", url=url)
    try:
        assert ClusterSync(ws, unreachable).reconcile() == []
    finally:
        unreachable.close()
    with ws.reading() as conn:
        (ack,) = gateways.acknowledgements(conn, "eta", ws.clock.now(), timedelta(seconds=15))
    assert (ack.gateway, ack.routing_version, ack.warmed) == ("kubernetes/pitstop", 0, ())
