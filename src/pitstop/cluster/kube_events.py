"""The Kubernetes Event each new cluster step posts beside its `cluster_step` event: pure, no I/O.

pitstop's own event log stays the record (`pitstop events`); the Event shows the same step where a
platform engineer looks, `kubectl describe deployment|service …` and `kubectl get events`, as Argo
Rollouts and Flagger post theirs. It is a core/v1 `Event`, not an events.k8s.io/v1 one: both are
the same stored object, but core/v1 is what `kubectl describe` lists on every cluster version, and
its `firstTimestamp`/`count` form needs no `eventTime`, `action` or `reportingInstance`, which the
newer form requires. `kubectl describe` matches an object's events by kind, name and uid, so the
Event carries the uid of the object as the reconciler read it.

The Event's `reason` is a CamelCase word for the rule (`SelectorSwitched`), its `message` the
step's own reason, its `type` Warning when the step is a wait or a problem a person may need to look
at (a version not ready, a conflict, an object pitstop did not create), Normal otherwise.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pitstop.cluster.objects import API_VERSIONS, MANAGED_BY, MODEL, ObjectRef, label_value
from pitstop.rules import Rule

COMPONENT = "pitstop"  # `source.component` and `reportingComponent`: the SOURCE column of kubectl


class EventType(StrEnum):
    """The two types Kubernetes knows."""

    NORMAL = "Normal"
    WARNING = "Warning"


# Every cluster rule's Event reason and type, here only (tests check that each cluster rule has one).
REASONS: dict[Rule, tuple[str, EventType]] = {
    Rule.CLUSTER_CREATED: ("VersionCreated", EventType.NORMAL),
    Rule.CLUSTER_SCALED: ("ScaledUp", EventType.NORMAL),
    Rule.CLUSTER_SCALED_DOWN: ("ScaledDown", EventType.NORMAL),
    Rule.CLUSTER_NOT_READY: ("VersionNotReady", EventType.WARNING),
    Rule.CLUSTER_CONFLICT: ("SelectorConflict", EventType.WARNING),
    Rule.CLUSTER_SWITCHED: ("SelectorSwitched", EventType.NORMAL),
    Rule.CLUSTER_SWITCH_COMPLETE: ("SwitchComplete", EventType.NORMAL),
    Rule.CLUSTER_FOREIGN: ("NotManagedByPitstop", EventType.WARNING),
}


def event_name(regarding: ObjectRef, rule: Rule, message: str, now: datetime) -> str:
    """`<object>.<hex>`, as kubectl's recorders name Events. The hex is a hash of the step, not a
    random number, so posting the same step again is refused (409) instead of shown twice.

    >>> event_name(ObjectRef("Service", "pitstop-eta"), Rule.CLUSTER_SWITCHED, "moved", datetime(2026, 3, 1))
    'pitstop-eta.20d42bbafe633181'
    """
    step = f"{regarding.kind}/{regarding.name}/{rule}/{message}/{now.isoformat()}"
    return f"{regarding.name}.{hashlib.blake2b(step.encode(), digest_size=8).hexdigest()}"


def _timestamp(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def kubernetes_event(
    namespace: str, model: str, rule: Rule, message: str, regarding: ObjectRef, now: datetime
) -> dict[str, Any]:
    """The core/v1 Event of one step about `regarding`, in `namespace`; labelled with the model, so
    `kubectl get events -l pitstop.io/model=<model>` lists one model's steps."""
    reason, kind = REASONS[rule]
    involved = {
        "apiVersion": API_VERSIONS[regarding.kind],
        "kind": regarding.kind,
        "name": regarding.name,
        "namespace": namespace,
    }
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": event_name(regarding, rule, message, now),
            "namespace": namespace,
            "labels": {MANAGED_BY: "pitstop", MODEL: label_value(model)},
        },
        "involvedObject": involved if regarding.uid is None else {**involved, "uid": regarding.uid},
        "reason": reason,
        "message": message,
        "type": str(kind),
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "firstTimestamp": _timestamp(now),
        "lastTimestamp": _timestamp(now),
        "count": 1,
    }
