"""A model whose class lives in a module of the user's working folder (`taxitrainers.py` beside them),
served by a real `pitstop serve` started from that folder: its shadow process imports what the gateway
imports. Started from another folder, the gateway says the version cannot be loaded: in `/v1/health`,
in `/metrics` and in the store, where the controller ends the rollout (`shadow.unavailable`)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from pitstop.http.auth import ALLOW_ENV, LABELS_ENV, LEGACY_ENV, OPERATOR_ENV, PREDICT_ENV
from pitstop.rollout.controller import Controller
from pitstop.rollout.phases import Outcome
from pitstop.store.tables import predictions
from pitstop.workspace import Workspace
from serving.conftest import MODEL, Served, free_port

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the fork server is Linux's")

TESTS = Path(__file__).resolve().parents[1]
TOKEN_PREFIXES = (ALLOW_ENV, LABELS_ENV, LEGACY_ENV, OPERATOR_ENV, PREDICT_ENV)
TRAINERS = '''
class Shifted:
    """The base model's answer plus a constant."""

    def __init__(self, base, shift):
        self.base, self.shift = base, shift
        self.feature_names_in_ = base.feature_names_in_

    def predict(self, X):
        return self.base.predict(X) + self.shift
'''


@pytest.fixture
def local_challenger(served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Version 3 of `eta`, a `taxitrainers.Shifted` from the folder it yields, in shadow (rollout started
    with a grace of one second for a challenger that cannot be loaded)."""
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "taxitrainers.py").write_text(TRAINERS)
    monkeypatch.syspath_prepend(str(folder))
    module = importlib.import_module("taxitrainers")
    try:
        version = served.ws.register(
            MODEL,
            _dumped(module.Shifted(served.base, 0.5), folder / "v3.joblib"),
            train_data="train",
            allow_pickle=True,
        ).version
    finally:
        sys.modules.pop("taxitrainers", None)
    assert version == 3
    (served.ws.path / "pitstop.yaml").write_text(
        "shadow: {unavailable_after: 1s}\nserving: {poll_interval: 200ms}\n"
    )
    with Workspace(served.ws.path) as ws:
        ws.start_rollout(MODEL, 3, skip_gate=True, reason="a challenger from a local module")
    yield folder


def _dumped(model: object, path: Path) -> Path:
    import joblib

    joblib.dump(model, path)
    return path


@contextmanager
def gateway(ws: Workspace, cwd: Path) -> Iterator[str]:
    """`pitstop serve` (the console script, as a user runs it) started in `cwd`; yields its base URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(TOKEN_PREFIXES)}
    env["PYTHONPATH"] = os.pathsep.join((str(TESTS.parent / "src"), str(TESTS)))  # this checkout's code
    script = Path(sys.executable).parent / "pitstop"
    process = subprocess.Popen(
        [str(script), "serve", "--port", str(port), "--log-level", "warning", "-w", str(ws.path)],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240  # a bound for a busy machine, not a timing assertion
        while not _ready(base):
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            assert time.monotonic() < deadline, "the gateway did not become ready within 240 s"
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:  # a stuck gateway: stop it, and reap it
            process.kill()
            process.communicate()


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _shadow_part(base: str) -> dict[str, object]:
    part: dict[str, object] = httpx.get(f"{base}/v1/health", timeout=5).json()["models"][MODEL]["shadow"]
    return part


def _wait_for(predicate, what: str, seconds: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.1)


def test_a_challenger_from_a_module_in_the_working_folder_is_scored_in_shadow(
    served: Served, local_challenger: Path
) -> None:
    def shadow_rows() -> list[sa.Row[tuple[float | None, str | None]]]:
        with served.ws.reading() as conn:
            query = sa.select(predictions.c.prediction, predictions.c.error).where(
                predictions.c.role == "shadow", predictions.c.version == 3
            )
            return list(conn.execute(query).all())

    with gateway(served.ws, cwd=local_challenger) as base:
        _wait_for(lambda: _shadow_part(base)["status"] == "ok", "the shadow loaded")
        with httpx.Client(base_url=base, timeout=10) as client:
            sent = 0

            def scored_five() -> bool:
                """One more request, unless five shadow predictions are recorded. A shadow at idle CPU
                priority may be skipped on a busy machine (reason `starved`, by design): ask again."""
                nonlocal sent
                if len(shadow_rows()) >= 5:
                    return True
                reply = client.post(f"/v1/models/{MODEL}/predict", json={"features": {"a": sent, "b": 1.0}})
                assert reply.status_code == 200, reply.text
                sent += 1
                time.sleep(0.4)
                return False

            _wait_for(scored_five, "five shadow predictions recorded")
    assert all(error is None and prediction is not None for prediction, error in shadow_rows())


def test_a_challenger_the_gateway_cannot_import_is_reported_and_rejected(
    served: Served, local_challenger: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with gateway(served.ws, cwd=elsewhere) as base:
        _wait_for(lambda: _shadow_part(base)["status"] == "unavailable", "the shadow reported unavailable")
        problem = str(_shadow_part(base)["problem"])
        assert "ModuleNotFoundError: No module named 'taxitrainers'" in problem
        metrics = httpx.get(f"{base}/metrics", timeout=5).text
        assert 'pitstop_version_load_failed{model="eta",role="shadow",version="3"} 1.0' in metrics
        with Workspace(served.ws.path) as ws:
            _wait_for(lambda: bool(ws.rollout_status(MODEL).load_failures), "the failure reached the store")
            during = ws.rollout_status(MODEL).to_dict()
            controller = Controller(ws)
            _wait_for(lambda: bool(controller.tick()) and bool(ws.rollouts(MODEL)[-1].state.outcome), "ended")
            final = ws.rollouts(MODEL)[-1].state
    said = "challenger v3 cannot be loaded: ModuleNotFoundError: No module named 'taxitrainers'"
    assert during["unavailable"][0].startswith(said)
    assert during["load_failures"][0]["role"] == "shadow"
    assert during["next_check"]["rule"] == "shadow.unavailable"
    assert (final.outcome, final.stage) == (Outcome.REJECTED, "shadow")
    assert final.reason is not None and final.reason.startswith(said)
