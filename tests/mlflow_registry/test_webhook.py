"""`POST /v1/mlflow/webhook` on a real gateway: a delivery from the real `mlflow server` imports the
version `@challenger` moved to; a replayed, badly signed or stale delivery acts on nothing."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from mlflow.webhooks.delivery import _generate_hmac_signature  # MLflow's own signer

from mlflow_registry.conftest import MODEL, NAME, MlflowServer
from pitstop.http.app import create_app
from pitstop.mlflow_source import client
from pitstop.serving import Gateway
from pitstop.workspace import Workspace
from serving.conftest import running, settings, wait_until

SECRET = "webhook-s3cret"
SECRET_ENV = "PITSTOP_TEST_MLFLOW_WEBHOOK_SECRET"


@pytest.fixture
def gateway(
    workspace_dir: Path, mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A gateway of a workspace that maps MLflow's `eta` to `delivery-eta`, with the webhook secret."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv(SECRET_ENV, SECRET)
    config = workspace_dir / "pitstop.yaml"
    mlflow = {"tracking_uri": mlflow_server.url, "models": {MODEL: NAME}, "webhook_secret_env": SECRET_ENV}
    config.write_text(yaml.safe_dump(yaml.safe_load(config.read_text()) | {"mlflow": mlflow}))
    with Workspace(workspace_dir) as ws:
        ws.create_model(MODEL, task="regression", target="y", features=["a", "b"])
        with running(create_app(Gateway(ws, poll=False, settings=settings()))) as url:
            yield url


def imported(workspace_dir: Path) -> list[tuple[int, str | None]]:
    with Workspace(workspace_dir) as ws:
        return [
            (v.version, v.lineage.mlflow.version if v.lineage.mlflow else None) for v in ws.versions(MODEL)
        ]


def delivery(
    version: str, *, delivery_id: str | None = None, at: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """A `model_version_alias.created` delivery for `eta@challenger`, signed as MLflow signs."""
    data = {"name": NAME, "alias": "challenger", "version": version}
    body = json.dumps({"entity": "model_version_alias", "action": "created", "timestamp": "", "data": data})
    delivery_id, stamp = delivery_id or str(uuid.uuid4()), str(at or int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-MLflow-Delivery-Id": delivery_id,
        "X-MLflow-Timestamp": stamp,
        "X-MLflow-Signature": _generate_hmac_signature(SECRET, delivery_id, stamp, body),
    }
    return body.encode(), headers


def test_mlflow_s_own_delivery_imports_the_challenger(
    gateway: str, workspace_dir: Path, mlflow_server: MlflowServer
) -> None:
    mlflow = client(mlflow_server.url)
    hook = mlflow.create_webhook(
        "pitstop", f"{gateway}/v1/mlflow/webhook", events=["model_version_alias.created"], secret=SECRET
    )
    last_set = [0.0]

    def delivered() -> bool:
        # MLflow caches each event's webhooks for MLFLOW_WEBHOOK_CACHE_TTL (1 s here): an alias set
        # within a second of an earlier one (another test's) may find the new hook not yet listed, and
        # send nothing. Setting it again until a delivery arrives is what a user would see: every set
        # is a delivery once the cache knows the hook, and the import is idempotent.
        if imported(workspace_dir):
            return True
        if time.monotonic() - last_set[0] > 2:
            mlflow.set_registered_model_alias(NAME, "challenger", "1")
            last_set[0] = time.monotonic()
        return False

    try:
        wait_until(delivered, timeout=120, interval=0.25)
        assert imported(workspace_dir) == [(1, "1")]  # once, however many deliveries arrived
    finally:
        mlflow.delete_webhook(hook.webhook_id)


def test_a_replayed_delivery_acts_once(gateway: str, workspace_dir: Path) -> None:
    body, headers = delivery("2")
    first = httpx.post(f"{gateway}/v1/mlflow/webhook", content=body, headers=headers, timeout=120)
    assert first.status_code == 200, first.text
    assert first.json()["repeated"] is False and first.json()["synced"][0]["outcome"] == "imported"
    again = httpx.post(f"{gateway}/v1/mlflow/webhook", content=body, headers=headers, timeout=120)
    assert again.status_code == 200 and again.json()["repeated"] is True
    assert imported(workspace_dir) == [(1, "2")]


def test_a_bad_or_stale_signature_or_no_secret_is_refused(
    gateway: str, workspace_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"{gateway}/v1/mlflow/webhook"
    body, headers = delivery("2")
    forged = httpx.post(url, content=body.replace(b'"2"', b'"1"'), headers=headers)
    assert forged.status_code == 401 and "no signature matches" in forged.text
    stale_body, stale = delivery("2", at=int(time.time()) - 600)
    assert httpx.post(url, content=stale_body, headers=stale).status_code == 401
    unsigned = {k: v for k, v in headers.items() if k != "X-MLflow-Signature"}
    assert httpx.post(url, content=body, headers=unsigned).status_code == 401
    monkeypatch.delenv(SECRET_ENV)
    assert httpx.post(url, content=body, headers=headers).status_code == 403
    assert imported(workspace_dir) == []
