"""deploy/kubernetes: every overlay renders (Debian's kubectl), every object is valid against the
Kubernetes schemas, and the objects agree with each other and with pitstop itself: the ConfigMap's
pitstop.yaml loads, each container runs a pitstop command that exists, probes ask endpoints the
gateway serves, selectors select the pods they mean, and the pods run as the image's user.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from pitstop.cli import app as cli_app
from pitstop.config import load_config
from pitstop.http.app import router

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
OVERLAYS = sorted(path.parent for path in (KUBERNETES / "overlays").glob("*/kustomization.yaml"))
COMPONENTS = sorted(path.parent for path in (KUBERNETES / "components").glob("*/kustomization.yaml"))
# The oldest Kubernetes release the manifests promise to work on (every API they use is GA there).
KUBERNETES_VERSION = "1.30.0"
# Kinds from custom resource definitions: no schema ships with Kubernetes; checked by hand below.
CUSTOM_KINDS = {"ServiceMonitor"}

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")


def _render(folder: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        ["kubectl", "kustomize", str(folder)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module")
def everything(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The first overlay with every component switched on: each object that can be deployed."""
    copy = tmp_path_factory.mktemp("deploy") / "kubernetes"
    shutil.copytree(KUBERNETES, copy)  # kustomize reads only paths below and beside its root, relative
    overlay = copy / "overlays" / OVERLAYS[0].name
    kustomization = yaml.safe_load((overlay / "kustomization.yaml").read_text())
    kustomization["components"] = [f"../../components/{component.name}" for component in COMPONENTS]
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return _render(overlay)


def _containers(objects: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for obj in objects:
        if obj["kind"] == "Deployment":
            pod = obj["spec"]["template"]["spec"]
            for container in [*pod.get("initContainers", []), *pod["containers"]]:
                yield f"{obj['metadata']['name']}/{container['name']}", container


def _of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def _named(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [obj for obj in _of_kind(objects, kind) if obj["metadata"]["name"] == name]
    return found


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def test_there_is_an_overlay_and_every_component_is_reachable() -> None:
    assert OVERLAYS, "no overlay under deploy/kubernetes/overlays"
    mentioned = (OVERLAYS[0] / "kustomization.yaml").read_text()
    for component in COMPONENTS:
        assert f"../../components/{component.name}" in mentioned, f"{component.name} is not offered"


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda path: path.name)
def test_every_overlay_renders_valid_objects(overlay: Path) -> None:
    objects = _render(overlay)
    assert {"Deployment", "Service", "ConfigMap", "Secret"} <= {obj["kind"] for obj in objects}
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_components_render_valid_objects(everything: list[dict[str, Any]]) -> None:
    kinds = {obj["kind"] for obj in everything}
    assert {"HorizontalPodAutoscaler", "NetworkPolicy", "ServiceMonitor"} <= kinds
    for obj in everything:
        if obj["kind"] not in CUSTOM_KINDS:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_the_service_monitor_scrapes_the_gateways_metrics(everything: list[dict[str, Any]]) -> None:
    (monitor,) = _of_kind(everything, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    service = _named(everything, "Service", "pitstop-gateway")
    assert _selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    ports = {port["name"] for port in service["spec"]["ports"]}
    assert [(e["port"], e["path"]) for e in monitor["spec"]["endpoints"]] == [("http", "/metrics")]
    assert "http" in ports


def test_the_config_map_holds_a_pitstop_yaml_pitstop_accepts(
    everything: list[dict[str, Any]], tmp_path: Path
) -> None:
    (config_map,) = _of_kind(everything, "ConfigMap")
    path = tmp_path / "pitstop.yaml"
    path.write_text(config_map["data"]["pitstop.yaml"])
    config = load_config(path)
    mounted = {
        mount["mountPath"]
        for _, container in _containers(everything)
        for mount in container.get("volumeMounts", [])
    }
    assert config.artifact_store in mounted  # the model files' volume is where the file says


def test_every_container_runs_a_pitstop_command(everything: list[dict[str, Any]]) -> None:
    runner = CliRunner()
    for name, container in _containers(everything):
        assert container["image"].startswith("pitstop:"), name
        done = runner.invoke(cli_app, [*container["args"], "--help"])
        assert done.exit_code == 0, f"{name}: pitstop {' '.join(container['args'])}: {done.output}"


def test_probes_ask_what_the_gateway_serves(everything: list[dict[str, Any]]) -> None:
    paths = {route.path for route in router.routes}  # type: ignore[attr-defined]
    probed = 0
    for name, container in _containers(everything):
        ports = {port["name"] for port in container.get("ports", [])}
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            if probe in container:
                get = container[probe]["httpGet"]
                assert get["path"] in paths, f"{name} {probe}: {get['path']}"
                assert get["port"] in ports, f"{name} {probe}: port {get['port']}"
                probed += 1
    assert probed >= 3  # the gateway's readiness, liveness and start-up


def test_selectors_select_their_pods(everything: list[dict[str, Any]]) -> None:
    pods = {
        obj["metadata"]["name"]: obj["spec"]["template"]["metadata"]["labels"]
        for obj in _of_kind(everything, "Deployment")
    }
    for name, labels in pods.items():
        deployment = _named(everything, "Deployment", name)
        assert _selects(deployment["spec"]["selector"]["matchLabels"], labels)
    gateway = pods["pitstop-gateway"]
    service = _named(everything, "Service", "pitstop-gateway")
    assert _selects(service["spec"]["selector"], gateway)
    assert not _selects(service["spec"]["selector"], pods["pitstop-controller"])
    (budget,) = _of_kind(everything, "PodDisruptionBudget")
    assert _selects(budget["spec"]["selector"]["matchLabels"], gateway)
    (autoscaler,) = _of_kind(everything, "HorizontalPodAutoscaler")
    assert autoscaler["spec"]["scaleTargetRef"]["name"] == "pitstop-gateway"


def test_pods_need_no_privilege_and_run_as_the_images_user(everything: list[dict[str, Any]]) -> None:
    user = re.search(r"^USER (\d+):(\d+)$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert user is not None
    for deployment in _of_kind(everything, "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert str(pod["securityContext"]["runAsUser"]) == user.group(1)
        assert pod["automountServiceAccountToken"] is False  # way A reads no Kubernetes API
    for name, container in _containers(everything):
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False, name
        assert context["readOnlyRootFilesystem"] is True, name
        assert context["capabilities"]["drop"] == ["ALL"], name
        assert "memory" in container["resources"]["limits"], name


def test_way_b_gives_only_its_controller_the_minimal_namespaced_role() -> None:
    objects = _render(KUBERNETES / "overlays" / "versions")
    assert not _of_kind(objects, "ClusterRole") and not _of_kind(objects, "ClusterRoleBinding")
    rules = {
        (group, resource): sorted(rule["verbs"])
        for rule in _named(objects, "Role", "pitstop-controller")["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    assert rules == {
        ("apps", "deployments"): ["create", "get", "list", "watch"],
        ("apps", "deployments/scale"): ["patch"],
        ("", "services"): ["create", "get", "list", "patch", "watch"],
        ("discovery.k8s.io", "endpointslices"): ["get", "list", "watch"],
        ("", "events"): ["create"],  # each step shown in `kubectl describe`
    }
    binding = _named(objects, "RoleBinding", "pitstop-controller")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "pitstop-controller", "namespace": "pitstop"}
    ]
    controller = _named(objects, "Deployment", "pitstop-controller")["spec"]["template"]["spec"]
    gateway = _named(objects, "Deployment", "pitstop-gateway")["spec"]["template"]["spec"]
    assert (controller["serviceAccountName"], controller["automountServiceAccountToken"]) == (
        "pitstop-controller",
        True,
    )
    assert gateway["automountServiceAccountToken"] is False, "the gateways never call the Kubernetes API"


def test_way_b_runners_read_a_config_map_of_the_name_pitstop_gives_them(tmp_path: Path) -> None:
    objects = _render(KUBERNETES / "overlays" / "versions")
    runner_config = _named(objects, "ConfigMap", "pitstop-runner-config")
    (tmp_path / "pitstop.yaml").write_text(runner_config["data"]["pitstop.yaml"])
    config = load_config(tmp_path / "pitstop.yaml")
    assert config.routing.provider == "kubernetes"
    assert config.kubernetes.config_map == "pitstop-runner-config"
    assert config.kubernetes.namespace == _named(objects, "Namespace", "pitstop")["metadata"]["name"]
