"""Way B posts each new cluster step as a Kubernetes Event about the step's main object, where
`kubectl describe` and `kubectl get events` show it; a cluster that refuses Events (a Role without
them) costs neither the reconcile nor pitstop's own event."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from cluster.fake_kubernetes import FakeKubernetes
from cluster.test_reconcile import STABLE, V1, V2, cluster_steps, promote, selected, serving_v1
from helpers import fit_regression_artifact, write_regression_csv
from pitstop.cluster import kube_events, objects
from pitstop.cluster.api import KubernetesCluster
from pitstop.cluster.kube_events import EventType
from pitstop.cluster.reconcile import ClusterSync
from pitstop.rules import CLUSTER, Rule
from pitstop.workspace import Workspace
from serving.conftest import running

KUBERNETES_VERSION = "1.30.0"  # the oldest release deploy/kubernetes promises (tests/deploy)


def shown(event: dict[str, Any]) -> tuple[str, str, str, str]:
    """What `kubectl describe` lists of an Event, with the object it is about."""
    involved = event["involvedObject"]
    return event["type"], event["reason"], f"{involved['kind']}/{involved['name']}", event["message"]


def uid(fake: FakeKubernetes, kind: str, name: str) -> str:
    obj = fake.get(kind, name)
    assert obj is not None, f"no {kind} {name}"
    return str(obj["metadata"]["uid"])


def test_every_cluster_rule_has_one_event_reason_and_only_waits_and_problems_warn() -> None:
    cluster_rules = {rule for rule in Rule if rule.stage == CLUSTER}
    assert set(kube_events.REASONS) == cluster_rules
    reasons = [reason for reason, _ in kube_events.REASONS.values()]
    assert len(set(reasons)) == len(reasons)
    assert all(reason.isalpha() and reason[0].isupper() for reason in reasons), reasons
    warnings = {rule for rule, (_, kind) in kube_events.REASONS.items() if kind is EventType.WARNING}
    assert warnings == {Rule.CLUSTER_NOT_READY, Rule.CLUSTER_CONFLICT, Rule.CLUSTER_FOREIGN}


def test_a_switch_to_a_version_not_ready_then_ready_shows_as_events_on_its_objects(
    ws: Workspace, sync: ClusterSync, fake: FakeKubernetes
) -> None:
    serving_v1(sync, fake)
    assert [shown(event) for event in fake.events()] == [
        ("Normal", "VersionCreated", f"Service/{V1}", f"Service {V1} created"),
        ("Normal", "VersionCreated", f"Deployment/{V1}", f"Deployment {V1} created"),
        (
            "Warning",
            "VersionNotReady",
            f"Deployment/{V1}",
            f"Service {STABLE} waits: {V1}: generation 1 not yet observed (0)",
        ),
        ("Normal", "SelectorSwitched", f"Service/{STABLE}", f"Service {STABLE} created to version 1"),
        (
            "Normal",
            "SwitchComplete",
            f"Service/{STABLE}",
            f"Service {STABLE} serves only the pods of version 1",
        ),
    ]
    fake.unready.add(V2)
    promote(ws)
    before = len(fake.events())
    for _ in range(3):  # the wait goes on: one Event per reason, as one cluster_step
        sync.reconcile()
        fake.settle()
    assert selected(fake) == "1"
    waits = [e for e in fake.events()[before:] if e["reason"] == "VersionNotReady"]
    assert [shown(wait) for wait in waits][-1] == (
        "Warning",
        "VersionNotReady",
        f"Deployment/{V2}",
        f"Service {STABLE} waits: {V2}: 0 ready endpoints of 3 listed, 3 wanted",
    )
    assert {wait["involvedObject"]["uid"] for wait in waits} == {uid(fake, "Deployment", V2)}
    fake.unready.discard(V2)
    fake.settle()
    sync.reconcile()
    assert selected(fake) == "2"
    switched = fake.events()[-1]
    assert shown(switched) == (
        "Normal",
        "SelectorSwitched",
        f"Service/{STABLE}",
        f"Service {STABLE} moved from version 1 to version 2",
    )
    assert switched["involvedObject"]["uid"] == uid(fake, "Service", STABLE)  # what kubectl matches
    steps = cluster_steps(ws)
    assert [event["message"] for event in fake.events()] == [reason for _, reason in steps]


def test_the_events_are_valid_core_v1_events_from_pitstop(
    ws: Workspace, sync: ClusterSync, fake: FakeKubernetes
) -> None:
    serving_v1(sync, fake)
    assert fake.events()
    for event in fake.events():
        kubernetes_validate.validate(event, KUBERNETES_VERSION, strict=True)
        involved = event["involvedObject"]
        assert event["metadata"]["name"].startswith(f"{involved['name']}.")
        assert event["metadata"]["namespace"] == involved["namespace"] == "pitstop"
        assert event["metadata"]["labels"] == {objects.MANAGED_BY: "pitstop", objects.MODEL: "eta"}
        assert (event["source"], event["reportingComponent"]) == ({"component": "pitstop"}, "pitstop")
        assert involved["uid"] == uid(fake, involved["kind"], involved["name"])


def test_events_the_cluster_forbids_are_logged_once_and_lose_neither_the_step_nor_the_switch(
    ws: Workspace, sync: ClusterSync, fake: FakeKubernetes, caplog: pytest.LogCaptureFixture
) -> None:
    fake.forbidden.add("Event")  # the Role lacks `events`: every post is answered 403
    with caplog.at_level(logging.WARNING, logger="pitstop.cluster"):
        serving_v1(sync, fake)
        promote(ws)
        sync.reconcile()
        fake.settle()
        sync.reconcile()
    assert selected(fake) == "2"
    assert fake.events() == []
    # kr8s tries a 403 again after reauthenticating: count each Event once.
    posts = {name for method, kind, name, _ in fake.calls if (method, kind) == ("create", "Event")}
    assert len(posts) == len(cluster_steps(ws)) > 1, "every step was offered as an Event"
    (warning,) = [record.getMessage() for record in caplog.records if "Kubernetes Events" in record.msg]
    assert "403" in warning and "forbidden" in warning
    assert ("cluster.switched", f"Service {STABLE} moved from version 1 to version 2") in cluster_steps(ws)


def test_once_an_event_gets_no_answer_the_rounds_other_events_are_not_tried(
    ws: Workspace, fake: FakeKubernetes
) -> None:
    """Each try could wait the API timeout: a round of several steps against a silent API would last
    that many timeouts, and a controller's round must end well within its lease."""
    fake.silent["Event"] = 6.0  # longer than the client waits
    with running(fake.app) as url:
        cluster = KubernetesCluster("pitstop", url=url, timeout=2.0)  # the other calls answer at once
        try:
            ClusterSync(ws, cluster).reconcile()  # creates v1's Deployment and Service, finds it not ready
        finally:
            cluster.close()
    assert len(cluster_steps(ws)) == 3  # the steps are recorded all the same
    posted = {name for method, kind, name, _ in fake.calls if (method, kind) == ("create", "Event")}
    assert len(posted) == 1


def test_a_round_the_api_stopped_answering_in_posts_no_event(
    ws: Workspace, fake: FakeKubernetes, tmp_path: Path
) -> None:
    """`eta` is reconciled and its steps recorded; then the API stops answering for `eta2`: the round
    ends after that one wait, without trying `eta`'s Events (each could wait as long)."""
    data = write_regression_csv(tmp_path / "second.csv", seed=3)
    ws.create_model(
        "eta2", task="regression", target="y", features="all", time_column="time", id_columns=["user_id"]
    )
    ws.register("eta2", fit_regression_artifact(data, tmp_path / "second.joblib"), train_data="train")
    ws.set_champion("eta2", 1, reason="bootstrap")
    fake.silent["pitstop-eta2"] = 6.0  # eta2's stable Service: its first read gets no answer in time
    with running(fake.app) as url:
        cluster = KubernetesCluster("pitstop", url=url, timeout=2.0)
        try:
            ClusterSync(ws, cluster).reconcile()
        finally:
            cluster.close()
    assert cluster_steps(ws)  # eta's steps are recorded all the same
    assert not any(kind == "Event" for _, kind, _, _ in fake.calls)
