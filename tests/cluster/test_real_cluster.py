"""Way B end to end on a real cluster (kind or k3s): real Deployments, pods, readiness and EndpointSlices,
and the Events `kubectl describe` finds (by the object's uid).

Opt-in, skipped unless everything it needs is there (none of it is on the machines that build pitstop):

- `KUBECONFIG`: a cluster that answers, where `deploy/kubernetes/overlays/versions` is applied (the
  namespace, the Secret with `PITSTOP_DATABASE_URL`, the runners' ConfigMap and the artifacts claim);
- `PITSTOP_E2E_RUNNER_IMAGE`: pitstop's image (the Dockerfile) as the cluster can pull it;
- `PITSTOP_E2E_DATABASE_URL`: the same PostgreSQL the pods use, reachable from here too, and
  `PITSTOP_E2E_ARTIFACTS`: the artifact store the pods mount, reachable from here.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cluster.conftest import set_routes
from helpers import fit_regression_artifact, write_regression_csv
from pitstop.cluster.api import KubernetesCluster
from pitstop.cluster.reconcile import ClusterSync, ModelCluster
from pitstop.routing.table import Routes
from pitstop.workspace import Workspace

NEEDED = ("KUBECONFIG", "PITSTOP_E2E_RUNNER_IMAGE", "PITSTOP_E2E_DATABASE_URL", "PITSTOP_E2E_ARTIFACTS")
ROUND_TIMEOUT = 300.0  # seconds for pods to pull, start and turn ready (a bound, not a timing assertion)


def _missing() -> str | None:
    absent = [name for name in NEEDED if not os.environ.get(name)]
    if absent:
        return f"no real cluster: set {', '.join(absent)} (see this module's docstring)"
    try:
        import kr8s

        kr8s.api().version()
    except Exception as error:  # any failure to reach it is a reason to skip, said plainly
        return f"the cluster of KUBECONFIG does not answer: {type(error).__name__}: {error}"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")


def _until(sync: ClusterSync, done: Callable[[ModelCluster], bool]) -> ModelCluster:
    deadline = time.monotonic() + ROUND_TIMEOUT
    while True:
        (state,) = sync.reconcile()
        if done(state):
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"the cluster did not converge: {state}")
        time.sleep(2)


def _switch_events(service_name: str) -> int:
    """The `SelectorSwitched` Events `kubectl describe service` lists: matched by kind, name and uid."""
    import kr8s

    api = kr8s.api(namespace="pitstop")
    service = kr8s.objects.Service.get(service_name, namespace="pitstop", api=api)
    about = f"involvedObject.kind=Service,involvedObject.name={service_name}"
    found = api.get(
        kr8s.objects.Event,
        namespace="pitstop",
        field_selector=f"{about},involvedObject.uid={service.metadata.uid}",
    )
    return sum(1 for event in found if event.raw["reason"] == "SelectorSwitched")


def test_promotion_and_rollback_switch_the_stable_service_on_a_real_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "ws"
    monkeypatch.setenv("PITSTOP_DATABASE_URL", os.environ["PITSTOP_E2E_DATABASE_URL"])
    image = os.environ["PITSTOP_E2E_RUNNER_IMAGE"]
    Workspace.init(folder).close()
    (folder / "pitstop.yaml").write_text(
        f"artifact_store: {os.environ['PITSTOP_E2E_ARTIFACTS']}\n"
        "routing: {provider: kubernetes}\n"
        f"kubernetes: {{namespace: pitstop, replicas: 1, runner_image: {image}}}\n"
    )
    ws = Workspace(folder)
    name = f"e2e{int(time.time())}"
    csv = write_regression_csv(tmp_path / "train.csv")
    ws.add_dataset(name, csv, time_column="time")
    ws.create_model(
        name, task="regression", target="y", features="all", time_column="time", id_columns=["user_id"]
    )
    for seed in (0, 1):
        data = write_regression_csv(tmp_path / f"t{seed}.csv", seed=seed)
        ws.register(name, fit_regression_artifact(data, tmp_path / f"v{seed}.joblib"), train_data=name)
    ws.set_champion(name, 1, reason="e2e")
    cluster = KubernetesCluster("pitstop")
    sync = ClusterSync(ws, cluster)
    try:
        assert _until(sync, lambda s: s.complete).selected == 1
        set_routes(ws, Routes.shadowing(1, 2, "e2e"), "e2e: shadow", model=name)
        _until(sync, lambda s: 2 in s.ready_versions)
        set_routes(ws, Routes.champion_only(2, "e2e", standby=1), "e2e: promoted", model=name)
        assert _until(sync, lambda s: s.complete).selected == 2
        set_routes(ws, Routes.champion_only(1, "e2e"), "e2e: rolled back", model=name)
        state = _until(sync, lambda s: s.complete)
        assert state.selected == 1
        assert _switch_events(state.stable_service) == 3, "one Event per switch on the stable Service"
    finally:
        cluster.close()
        ws.close()
