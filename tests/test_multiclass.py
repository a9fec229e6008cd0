"""A multiclass model through the CLI and HTTP: trained, gated, served with its class and
probabilities, labelled with class values, and judged in shadow and A/B by its log loss."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss

from helpers import CLASSES, multiclass_frame, write_classification_csv, write_multiclass_csv
from misbehaving_models import PickyClassifier
from pitstop.clock import ManualClock
from pitstop.config import ServingSettings
from pitstop.http.app import create_app
from pitstop.rollout.controller import read_evidence
from pitstop.rollout.evidence import Evidence
from pitstop.serving import Gateway
from pitstop.workspace import Workspace
from replay.test_batched import assert_replays_agree, replay_both_ways
from serving.conftest import running, wait_until

TODAY = pd.Timestamp.now(tz="UTC").floor("D")  # the CLI gates on the real clock: data dated from it
TOKEN = {"Authorization": "Bearer s3cret"}
SHORT_POLICY = """
shadow: {min_duration: 1h, max_duration: 6h, min_labeled: 60, max_p99_ratio: 10}
ab_test: {share: 0.5, min_duration: 1h, max_duration: 8h, label_maturation: 15m, tau: 0.1,
  min_users_per_arm: 20}
guardrails: {min_samples: 30, max_p99_ratio: 10}
ramp: {steps: [50, 100], dwell: 30m, min_labeled_per_arm: 30, standby: 2h}
"""


@pytest.fixture
def kinds(workspace_dir: Path, tmp_path: Path, cli) -> Iterator[Workspace]:  # type: ignore[no-untyped-def]
    """Model `kinds` (multiclass): v1 a strongly regularised logistic regression (the champion), v2 a
    better one."""
    (workspace_dir / "pitstop.yaml").write_text(SHORT_POLICY)
    ws = ["-w", str(workspace_dir)]
    train = write_multiclass_csv(tmp_path / "train.csv", start=str(TODAY - pd.Timedelta(days=30)))
    test = write_multiclass_csv(
        tmp_path / "test.csv", rows=200, seed=1, start=str(TODAY - pd.Timedelta(days=10))
    )
    for name, path in (("train", train), ("test", test)):
        assert cli("dataset", "add", name, str(path), "--time-column", "time", *ws).exit_code == 0
    created = cli("models", "create", "kinds", "--task", "multiclass", "--target", "kind",
                  "--time-column", "time", "--id-columns", "user_id", "--features", "all",
                  "--json", *ws)  # fmt: skip
    assert created.exit_code == 0, created.stderr
    assert json.loads(created.stdout)["loss"] == "log_loss"
    for strength in ("0.05", "1.0"):
        result = cli("train", "kinds", "--trainer", "helpers:logistic_trainer", "--param", f"C={strength}",
                     "--data", "train", *ws)  # fmt: skip
        assert result.exit_code == 0, result.stderr
    workspace = Workspace(workspace_dir, clock=ManualClock(TODAY.to_pydatetime()))
    workspace.set_champion("kinds", 1, reason="bootstrap")
    yield workspace
    workspace.close()


def test_a_multiclass_model_fixes_its_classes_and_is_gated_by_log_loss(kinds: Workspace, cli) -> None:  # type: ignore[no-untyped-def]
    assert kinds.model("kinds").classes == list(CLASSES)
    result = cli("gate", "kinds", "2", "--test-set", "test", "--json", "-w", str(kinds.path))
    assert result.exit_code == 0, result.stdout
    report = json.loads(result.stdout)
    challenger, champion = report["metrics"]["challenger"], report["metrics"]["champion"]
    assert set(challenger) == {"log_loss", "roc_auc", "accuracy"}
    assert challenger["log_loss"] < champion["log_loss"] and challenger["accuracy"] > 0.8
    ratio = next(check for check in report["checks"] if check["name"] == "metric_ratio")
    assert "challenger log loss" in ratio["detail"]


def test_a_test_set_with_a_class_the_model_lacks_is_exit_2(kinds: Workspace, tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    frame = multiclass_frame(50, seed=3, start=str(TODAY - pd.Timedelta(days=3)))
    frame.loc[0, "kind"] = "extreme"
    frame.to_csv(tmp_path / "odd.csv", index=False)
    ws = ["-w", str(kinds.path)]
    assert (
        cli("dataset", "add", "odd", str(tmp_path / "odd.csv"), "--time-column", "time", *ws).exit_code == 0
    )
    result = cli("gate", "kinds", "2", "--test-set", "odd", *ws)
    assert result.exit_code == 2
    assert "class(es) extreme the model was not trained on (its classes: high, low, mid)" in result.stderr


def _settings() -> ServingSettings:
    """The shadow on a thread (`shadow_process: false`): this checks what it logs, not its isolation."""
    values = {
        "poll_interval": "50ms",
        "shadow_timeout": "5s",
        "log_flush_interval": "50ms",
        "shadow_process": False,
    }
    return ServingSettings.model_validate(values)


def _evidence(ws: Workspace) -> Evidence:
    """What the controller's next look at the active rollout of `kinds` would see."""
    return read_evidence(ws, ws.rollout_status("kinds").rollout, ws.clock.now())


def test_served_over_http_with_its_class_and_probabilities_and_judged_in_shadow_by_log_loss(
    kinds: Workspace,
) -> None:
    kinds.start_rollout("kinds", 2, skip_gate=True, reason="test: shadow evidence")
    rows = multiclass_frame(40, seed=5)
    gateway = Gateway(kinds, settings=_settings())
    with (
        running(create_app(gateway, api_token="s3cret")) as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        wait_until(lambda: client.get("/v1/models/kinds/routing").json()["shadow"] == 2)
        answers = []
        for i, row in rows.iterrows():
            body = {
                "features": {"a": row["a"], "b": row["b"]},
                "user_id": row["user_id"],
                "request_id": f"q{i}",
            }
            answer = client.post("/v1/models/kinds/predict", json=body)
            assert answer.status_code == 200, answer.text
            answers.append(answer.json())
        labels = [{"request_id": f"q{i}", "label": kind} for i, kind in enumerate(rows["kind"])]
        stored = client.post("/v1/models/kinds/labels", json={"labels": labels}, headers=TOKEN)
        unknown = client.post(
            "/v1/models/kinds/labels",
            json={"labels": [{"request_id": "q0", "label": "extreme"}]},
            headers=TOKEN,
        )
        wait_until(lambda: _evidence(kinds).paired.n == len(rows))
    first = answers[0]
    assert first["classes"] == list(CLASSES)
    assert (
        first["class"] == CLASSES[int(np.argmax(first["probabilities"]))] == CLASSES[int(first["prediction"])]
    )
    assert sum(first["probabilities"]) == pytest.approx(1.0)
    assert stored.status_code == 200
    assert unknown.status_code == 422
    assert unknown.json()["fields"] == [
        {
            "field": "labels[0].label",
            "problem": "unknown class 'extreme' (the model's classes: high, low, mid)",
        }
    ]
    truth = [CLASSES.index(kind) for kind in rows["kind"]]
    served = np.array([a["probabilities"] for a in answers])
    shadow = np.array(kinds.load("kinds", 2).predict_proba(rows[["a", "b"]]))
    evidence = _evidence(kinds)
    assert evidence.paired.champion_mean == pytest.approx(log_loss(truth, served, labels=[0, 1, 2]), rel=1e-6)
    assert evidence.paired.challenger_mean == pytest.approx(
        log_loss(truth, shadow, labels=[0, 1, 2]), rel=1e-6
    )


def _class_traffic() -> pd.DataFrame:
    """12 hours of requests labelled with class values 10 minutes later, from 200 users."""
    frame = multiclass_frame(3000, seed=7, start="2026-03-01")
    frame["time"] = pd.Timestamp("2026-03-01", tz="UTC") + pd.to_timedelta(np.arange(3000) * 14.4, unit="s")
    frame["user_id"] = [f"u{i % 200}" for i in range(3000)]  # the rules need enough users per arm
    frame["label"] = frame.pop("kind")
    frame["label_time"] = frame["time"] + timedelta(minutes=10)
    return frame


def test_a_better_multiclass_challenger_is_promoted_by_a_replay_with_class_labels(
    kinds: Workspace, tmp_path: Path, cli
) -> None:  # type: ignore[no-untyped-def]
    _class_traffic().to_csv(tmp_path / "traffic.csv", index=False)
    result = cli("simulate", "kinds", "--champion", "1", "--challenger", "2", "--traffic",
                 str(tmp_path / "traffic.csv"), "--json", "-w", str(kinds.path))  # fmt: skip
    assert result.exit_code == 0, result.stdout
    data = json.loads(result.stdout)
    assert data["outcome"] == "promoted"
    assert [item["to"].split()[0] for item in data["timeline"]][:2] == ["shadow", "ab_test"]  # "ab_test 50%"


def test_a_multiclass_challenger_failing_on_some_rows_replays_alike_both_ways(
    kinds: Workspace, tmp_path: Path
) -> None:
    """Its failed rows (raised in a call, or NaN probabilities) fail alone, as through the gateway."""
    base = kinds.load("kinds", 2)
    joblib.dump(PickyClassifier(base), tmp_path / "picky.joblib")
    picky = kinds.register(
        "kinds", tmp_path / "picky.joblib", train_data="train", skip_check="fails on some rows"
    )
    frame = _class_traffic()
    batched, gateway = replay_both_ways(kinds, tmp_path, picky.version, frame, model="kinds")
    assert (batched.outcome, batched.stage) == ("rejected", "shadow") and batched.rule == "shadow.error_rate"
    assert_replays_agree(batched, gateway)


def test_a_binary_answer_adds_its_class_and_both_probabilities(workspace: Workspace, tmp_path: Path) -> None:
    csv = write_classification_csv(tmp_path / "train.csv")
    workspace.add_dataset("train", csv, time_column="time")
    workspace.create_model("churn", task="classification", target="y", id_columns=["user_id"], features="all")
    workspace.train("churn", trainer="helpers:logistic_trainer", data="train")
    workspace.set_champion("churn", 1, reason="bootstrap")
    with running(create_app(Gateway(workspace, settings=_settings()))) as url:
        answer = httpx.post(f"{url}/v1/models/churn/predict", json={"features": {"a": 1.0, "b": -1.0}}).json()
    p = answer["prediction"]
    assert answer["classes"] == [0, 1]
    assert answer["probabilities"] == pytest.approx([1 - p, p])
    assert answer["class"] == (1 if p > 0.5 else 0)
