"""Way B's fixtures: our own fake Kubernetes API on loopback, and a workspace whose model `eta` has
champion v1 and a challenger v2, on a manual clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cluster.fake_kubernetes import FakeKubernetes
from helpers import fit_regression_artifact, write_regression_csv
from pitstop import registry
from pitstop.clock import ManualClock
from pitstop.cluster.api import KubernetesCluster
from pitstop.cluster.reconcile import ClusterSync
from pitstop.routing.provider import provider
from pitstop.routing.store import Change
from pitstop.routing.table import Routes, RoutingTable
from pitstop.workspace import Workspace
from serving.conftest import running

START = datetime(2026, 3, 1, tzinfo=UTC)
CONFIG = """
routing: {provider: kubernetes}
kubernetes: {namespace: pitstop, replicas: 3, scale_down_delay: 30s}
"""


@pytest.fixture
def fake() -> Iterator[FakeKubernetes]:
    yield FakeKubernetes()


@pytest.fixture
def cluster(fake: FakeKubernetes) -> Iterator[KubernetesCluster]:
    with running(fake.app) as url:
        cluster = KubernetesCluster("pitstop", url=url)
        yield cluster
        cluster.close()


@pytest.fixture
def ws(workspace_dir: Path, tmp_path: Path) -> Iterator[Workspace]:
    (workspace_dir / "pitstop.yaml").write_text(CONFIG)
    ws = Workspace(workspace_dir, clock=ManualClock(START))
    csv = write_regression_csv(tmp_path / "train.csv")
    ws.add_dataset("train", csv, time_column="time")
    ws.create_model(
        "eta", task="regression", target="y", features="all", time_column="time", id_columns=["user_id"]
    )
    for seed in (0, 1):
        data = write_regression_csv(tmp_path / f"train{seed}.csv", seed=seed)
        ws.register("eta", fit_regression_artifact(data, tmp_path / f"v{seed}.joblib"), train_data="train")
    ws.set_champion("eta", 1, reason="bootstrap")
    yield ws
    ws.close()


@pytest.fixture
def sync(ws: Workspace, cluster: KubernetesCluster) -> ClusterSync:
    return ClusterSync(ws, cluster)


def set_routes(ws: Workspace, routes: Routes, reason: str, *, model: str = "eta") -> RoutingTable:
    """Commit a routing change the way a rollout does: through the provider, in a store transaction."""
    with ws.writing() as conn:
        info = registry.get_model(conn, model)
        return provider().set_routes(conn, info, routes, Change(ws.clock.now(), "test", reason))
