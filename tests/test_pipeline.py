"""`retrain` (train → gate → rollout start) when another rollout of the model is already running."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from helpers import fit_regression_artifact, one_line_error, write_regression_csv
from pitstop.clock import ManualClock
from pitstop.pipeline import retrain
from pitstop.workspace import Workspace

NOW = datetime(2026, 1, 20, tzinfo=UTC)


@pytest.fixture
def ws(workspace_dir: Path, tmp_path: Path) -> Iterator[Workspace]:
    """Champion v1 and v2 (the same linear fit), train rows Jan 1-5, a fresh test set Jan 10-14."""
    ws = Workspace(workspace_dir, clock=ManualClock(NOW))
    train = write_regression_csv(tmp_path / "train.csv", rows=120, seed=1)
    ws.add_dataset("train", train, time_column="time")
    test = write_regression_csv(tmp_path / "test.csv", rows=120, seed=2, start="2026-01-10")
    ws.add_dataset("test", test, time_column="time")
    ws.create_model(
        "eta", task="regression", target="y", features="all", time_column="time", id_columns=["user_id"]
    )
    artifact = fit_regression_artifact(train, tmp_path / "m.joblib")
    ws.register("eta", artifact, train_data="train")
    ws.register("eta", artifact, train_data="train")
    ws.set_champion("eta", 1, reason="bootstrap")
    yield ws
    ws.close()


def test_retrain_without_a_running_rollout_starts_one(ws: Workspace) -> None:
    result = retrain(ws, "eta", trainer="helpers:linear_trainer", data="train", test_set="test")
    assert result.started and result.stage == "rollout" and result.active_rollout is None
    assert result.to_dict()["rollout_id"] == ws.rollouts("eta")[-1].state.id


def test_a_running_rollout_stops_retrain_before_training(  # type: ignore[no-untyped-def]
    cli, ws: Workspace
) -> None:
    running = ws.start_rollout("eta", 2, skip_gate=True, reason="a rollout in progress")
    args = ["--trainer", "helpers:linear_trainer", "--data", "train", "--test-set", "test"]
    result = cli("retrain", "eta", *args, "--json", "-w", ws.path)
    assert result.exit_code == 1, result.stderr
    data = json.loads(result.stdout)
    assert data["stage"] == "rollout" and data["started"] is False
    assert data["active_rollout_id"] == running.state.id and data["version"] is None
    assert f"rollout {running.state.id} of 'eta' is active" in data["reason"]
    assert [v.version for v in ws.versions("eta")] == [1, 2]  # nothing trained, nothing registered
    human = cli("retrain", "eta", *args, "-w", ws.path)
    assert human.exit_code == 1 and "stopped before training" in human.stdout
    assert f"rollout {running.state.id}" in human.stdout


RACING_TRAINER = """
    from sklearn.linear_model import LinearRegression

    from pitstop.workspace import Workspace


    def fit(X, y, params):
        # Someone starts a rollout of the model while this one trains.
        with Workspace(params["workspace"]) as other:
            other.start_rollout("eta", 2, skip_gate=True, reason="started while retrain trained")
        return LinearRegression().fit(X, y)
"""


def test_a_rollout_started_during_training_names_the_new_version(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "racing_trainer.py").write_text(textwrap.dedent(RACING_TRAINER))
    monkeypatch.chdir(tmp_path)
    try:
        result = retrain(
            ws,
            "eta",
            trainer="racing_trainer:fit",
            data="train",
            test_set="test",
            params={"workspace": str(ws.path)},
        )
    finally:
        sys.modules.pop("racing_trainer", None)
    running = ws.rollouts("eta")[-1].state
    assert result.version is not None and result.version.version == 3
    assert result.gate is not None and result.gate.passed
    assert not result.started and result.stage == "rollout"
    assert result.active_rollout is not None and result.active_rollout.id == running.id
    assert running.challenger_version == 2
    assert result.to_dict()["version"] == 3 and result.to_dict()["active_rollout_id"] == running.id


def test_a_training_failure_stops_retrain_at_the_train_stage(ws: Workspace) -> None:
    result = retrain(ws, "eta", trainer="no_such_module:fit", data="train", test_set="test")
    assert result.stage == "train" and result.version is None and result.gate is None
    assert result.train_error is not None and "cannot import no_such_module" in result.train_error
    assert [v.version for v in ws.versions("eta")] == [1, 2]


def test_retrain_cli_says_the_train_stage_stopped_it_with_exit_2(  # type: ignore[no-untyped-def]
    cli, ws: Workspace
) -> None:
    args = ["--trainer", "no_such_module:fit", "--data", "train", "--test-set", "test", "-w", ws.path]
    result = cli("retrain", "eta", *args, "--json")
    assert result.exit_code == 2
    data = json.loads(result.stdout)
    assert data["stage"] == "train" and data["started"] is False and data["version"] is None
    assert "cannot import no_such_module" in data["train_error"] and data["gate"] is None
    human = cli("retrain", "eta", *args)
    assert human.exit_code == 2 and human.stdout == ""
    line = human.stderr.strip()
    assert line.startswith("error: retrain stopped at the train stage: --trainer 'no_such_module:fit'")
    assert len(line.splitlines()) == 1
    assert [v.version for v in ws.versions("eta")] == [1, 2]


def test_an_unknown_test_set_stops_retrain_before_training(cli, ws: Workspace) -> None:  # type: ignore[no-untyped-def]
    args = ["--trainer", "helpers:linear_trainer", "--data", "train", "--test-set", "tset", "-w", ws.path]
    result = cli("retrain", "eta", *args)
    assert result.exit_code == 2 and "tset" in result.stderr
    assert [v.version for v in ws.versions("eta")] == [1, 2]


def test_retrain_starts_its_rollout_with_the_policy_given(  # type: ignore[no-untyped-def]
    cli, ws: Workspace, tmp_path: Path
) -> None:
    """The policy's gate section judges the gate too: the CLI runs on the real clock, months after the
    test set, which pitstop.yaml's 30-day `max_test_set_age` would call stale."""
    policy_file = tmp_path / "strict.yaml"
    policy_file.write_text("gate:\n  max_test_set_age: 3650d\nab_test:\n  alpha: 0.01\n")
    ws.add_policy("strict", policy_file)
    args = ["--trainer", "helpers:linear_trainer", "--data", "train", "--test-set", "test", "-w", ws.path]
    result = cli("retrain", "eta", *args, "--policy", "strict", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["started"] and data["policy_source"] == "policy:strict@1"
    stored = ws.rollouts("eta")[-1]
    assert stored.policy_source == "policy:strict@1" and stored.policy.ab_test.alpha == 0.01
    ws.abort("eta", reason="next")
    human = cli("retrain", "eta", *args, "--policy", policy_file)
    assert human.exit_code == 0, human.stderr
    assert f"policy from file:{policy_file.resolve()} sha256:" in " ".join(human.stdout.split())


def test_a_bad_policy_stops_retrain_before_training(cli, ws: Workspace, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.yaml"
    bad.write_text("ramp:\n  stepz: [50, 100]\n")
    args = ["--trainer", "helpers:linear_trainer", "--data", "train", "--test-set", "test", "-w", ws.path]
    line = one_line_error(cli("retrain", "eta", *args, "--policy", bad))
    assert f"{bad}: ramp.stepz: unknown key" in line
    assert "is neither a file nor a named policy" in one_line_error(
        cli("retrain", "eta", *args, "--policy", "x")
    )
    assert [v.version for v in ws.versions("eta")] == [1, 2]  # nothing trained
