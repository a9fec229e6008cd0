"""The offline gate against a real workspace: both models re-scored on the same test set, result stored."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest

import misbehaving_models
from helpers import one_line_error, write_classification_csv, write_regression_csv
from pitstop.clock import ManualClock
from pitstop.errors import UsageError
from pitstop.workspace import Workspace

NOW = datetime(2026, 1, 20, tzinfo=UTC)


@pytest.fixture
def ws(workspace_dir: Path, tmp_path: Path) -> Iterator[Workspace]:
    """Train rows Jan 1-5 (hourly), a fresh test set Jan 10-14; the clock says Jan 20."""
    ws = Workspace(workspace_dir, clock=ManualClock(NOW))
    ws.add_dataset(
        "train", write_regression_csv(tmp_path / "train.csv", rows=120, seed=1), time_column="time"
    )
    ws.add_dataset(
        "test",
        write_regression_csv(tmp_path / "test.csv", rows=120, seed=2, start="2026-01-10"),
        time_column="time",
    )
    ws.create_model(
        "eta", task="regression", target="y", features="all", time_column="time", id_columns=["user_id"]
    )
    yield ws
    ws.close()


def test_first_version_passes_without_champion(ws: Workspace) -> None:
    ws.train("eta", trainer="helpers:linear_trainer", data="train")
    report = ws.gate("eta", 1, test_set="test")
    assert report.passed and report.champion_version is None
    assert report.metrics["champion"] is None and report.metrics["challenger"]["mae"] < 0.2


def test_champion_is_rescored_on_the_same_test_set(ws: Workspace) -> None:
    ws.train("eta", trainer="helpers:linear_trainer", data="train")
    ws.set_champion("eta", 1, reason="bootstrap")
    ws.train("eta", trainer="helpers:linear_trainer", data="train", params={"intercept": False})
    report = ws.gate("eta", 2, test_set="test")
    assert report.champion_version == 1
    assert report.metrics["champion"] is not None
    ratio = next(c for c in report.checks if c.name == "metric_ratio")
    assert ratio.observed == pytest.approx(
        report.metrics["challenger"]["mae"] / report.metrics["champion"]["mae"], abs=1e-4
    )


def test_result_is_stored_on_the_version_and_recorded_as_event(ws: Workspace) -> None:
    ws.train("eta", trainer="helpers:linear_trainer", data="train")
    report = ws.gate("eta", 1, test_set="test")
    result = ws.version("eta", 1).gate_result
    stored = None if result is None else result.to_json()
    assert (
        stored is not None and stored["passed"] and stored["test_set"]["sha256"] == ws.dataset("test").sha256
    )
    event = [e for e in ws.events("eta") if e.kind == "gate_evaluated"][-1]
    assert event.to_state == "passed" and event.data["checks"] == report.to_dict()["checks"]


def test_overlapping_training_window_fails(ws: Workspace, tmp_path: Path) -> None:
    ws.add_dataset("late", write_regression_csv(tmp_path / "late.csv", rows=400, seed=3), time_column="time")
    ws.train("eta", trainer="helpers:linear_trainer", data="late")  # Jan 1 .. Jan 17: covers the test set
    report = ws.gate("eta", 1, test_set="test")
    assert not report.passed and report.decided_by == "temporal_overlap"


def test_as_of_before_the_test_set_removes_the_overlap(ws: Workspace, tmp_path: Path) -> None:
    ws.add_dataset("late", write_regression_csv(tmp_path / "late.csv", rows=400, seed=3), time_column="time")
    ws.train("eta", trainer="helpers:linear_trainer", data="late", as_of=pd.Timestamp("2026-01-10", tz="UTC"))
    assert ws.gate("eta", 1, test_set="test").passed


def test_stale_test_set_fails(ws: Workspace) -> None:
    ws.train("eta", trainer="helpers:linear_trainer", data="train")
    ws.clock.set(datetime(2026, 3, 1, tzinfo=UTC))  # type: ignore[attr-defined]
    report = ws.gate("eta", 1, test_set="test")
    assert report.decided_by == "test_set_age"


def test_test_set_missing_a_feature_fails_schema(ws: Workspace, tmp_path: Path) -> None:
    ws.train("eta", trainer="helpers:linear_trainer", data="train")
    frame = pd.read_csv(tmp_path / "test.csv").drop(columns=["b"])
    frame.to_csv(tmp_path / "nob.csv", index=False)
    ws.add_dataset("nob", tmp_path / "nob.csv", time_column="time")
    report = ws.gate("eta", 1, test_set="nob")
    assert report.decided_by == "schema" and "b" in report.checks[0].detail


def test_test_set_missing_the_target_is_an_input_error(ws: Workspace, tmp_path: Path) -> None:
    ws.train("eta", trainer="helpers:linear_trainer", data="train")
    pd.read_csv(tmp_path / "test.csv").drop(columns=["y"]).to_csv(tmp_path / "noy.csv", index=False)
    ws.add_dataset("noy", tmp_path / "noy.csv")
    with pytest.raises(UsageError, match="no target column 'y'"):
        ws.gate("eta", 1, test_set="noy")


def test_classification_gate(workspace_dir: Path, tmp_path: Path) -> None:
    with Workspace(workspace_dir, clock=ManualClock(NOW)) as ws:
        ws.add_dataset("train", write_classification_csv(tmp_path / "train.csv", seed=1), time_column="time")
        ws.add_dataset(
            "test",
            write_classification_csv(tmp_path / "test.csv", seed=2, start="2026-01-10"),
            time_column="time",
        )
        ws.create_model("churn", task="classification", target="y", features="all", id_columns=["user_id"])
        ws.train("churn", trainer="helpers:logistic_trainer", data="train")
        ws.set_champion("churn", 1, reason="bootstrap")
        ws.train("churn", trainer="helpers:logistic_trainer", data="train", params={"C": 0.001})
        report = ws.gate("churn", 2, test_set="test")
        assert set(report.metrics["challenger"] or {}) == {"log_loss", "roc_auc", "accuracy"}
        assert report.decided_by == "metric_ratio"  # heavy regularisation: far worse log loss


@pytest.fixture
def live_ws(workspace_dir: Path, tmp_path: Path) -> Iterator[Workspace]:
    """Like `ws`, but dated relative to the real clock the CLI uses: train 20 days ago, test 5 days ago."""
    ws = Workspace(workspace_dir)
    today = pd.Timestamp.now(tz="UTC").floor("D")
    ws.add_dataset(
        "train",
        write_regression_csv(
            tmp_path / "train.csv", rows=120, seed=1, start=str(today - pd.Timedelta(days=20))
        ),
        time_column="time",
    )
    ws.add_dataset(
        "test",
        write_regression_csv(tmp_path / "test.csv", rows=72, seed=2, start=str(today - pd.Timedelta(days=5))),
        time_column="time",
    )
    ws.create_model(
        "eta", task="regression", target="y", features="all", time_column="time", id_columns=["user_id"]
    )
    yield ws
    ws.close()


def test_gate_cli_exit_codes_and_json(cli, live_ws: Workspace) -> None:  # type: ignore[no-untyped-def]
    ws = live_ws
    ws.train("eta", trainer="helpers:linear_trainer", data="train")
    passed = cli("gate", "eta", "1", "--test-set", "test:1", "--json", "-w", ws.path)
    data = json.loads(passed.stdout)
    assert passed.exit_code == 0 and data["passed"]
    assert set(data) >= {"model", "version", "champion_version", "test_set", "passed", "checks"}
    assert set(data["test_set"]) >= {"name", "version", "sha256"}
    assert set(data["checks"][0]) >= {"name", "passed", "observed", "threshold", "detail"}
    human = cli("gate", "eta", "1", "--test-set", "test", "-w", ws.path)
    assert "verdict" in human.stdout and "temporal_overlap" in human.stdout
    assert "latest offline gate" in cli("models", "show", "eta", "1", "-w", ws.path).stdout
    assert cli("gate", "eta", "1", "--test-set", "nope", "-w", ws.path).exit_code == 2


def test_gate_cli_exit_1_when_failed(cli, live_ws: Workspace) -> None:  # type: ignore[no-untyped-def]
    live_ws.train("eta", trainer="helpers:linear_trainer", data="test")  # trained on the test period itself
    result = cli("gate", "eta", "1", "--test-set", "test", "--json", "-w", live_ws.path)
    assert result.exit_code == 1 and json.loads(result.stdout)["decided_by"] == "temporal_overlap"


# -- missing values and the model's time column -------------------------------------------------------


def _test_set_with(tmp_path: Path, name: str, column: str, rows: list[int]) -> Path:
    frame = pd.read_csv(tmp_path / "test.csv")
    frame.loc[rows, column] = None
    frame.to_csv(tmp_path / f"{name}.csv", index=False)
    return tmp_path / f"{name}.csv"


def test_missing_target_values_are_exit_2_naming_column_and_count(  # type: ignore[no-untyped-def]
    cli, live_ws: Workspace, tmp_path: Path
) -> None:
    live_ws.train("eta", trainer="helpers:linear_trainer", data="train")
    live_ws.add_dataset("holes", _test_set_with(tmp_path, "holes", "y", [1, 5, 9]), time_column="time")
    result = cli("gate", "eta", "1", "--test-set", "holes", "--json", "-w", live_ws.path)
    assert result.exit_code == 2 and result.stdout == ""
    assert "test set holes:1: target column 'y' has 3 missing value(s) in 72 rows" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert live_ws.version("eta", 1).gate_result is None
    assert not [e for e in live_ws.events("eta") if e.kind == "gate_evaluated"]


def test_a_model_failing_on_missing_features_is_exit_2_naming_version_columns_and_error(  # type: ignore[no-untyped-def]
    cli, live_ws: Workspace, tmp_path: Path
) -> None:
    live_ws.train("eta", trainer="helpers:linear_trainer", data="train")  # LinearRegression: no NaN
    live_ws.add_dataset("holes", _test_set_with(tmp_path, "holes", "a", [2, 4]), time_column="time")
    result = cli("gate", "eta", "1", "--test-set", "holes", "-w", live_ws.path)
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert "eta version 1 failed to predict on test set holes:1" in line
    assert "ValueError: Input X contains NaN" in line and "a (2 missing)" in line
    assert len(line.splitlines()) == 1 and "Traceback" not in line
    assert live_ws.version("eta", 1).gate_result is None


def test_missing_features_reach_a_model_that_handles_them(ws: Workspace, tmp_path: Path) -> None:
    from sklearn.ensemble import HistGradientBoostingRegressor

    frame = pd.read_csv(tmp_path / "train.csv")
    joblib.dump(HistGradientBoostingRegressor(max_iter=50).fit(frame[["a", "b"]], frame["y"]), tmp_path / "h")
    ws.register("eta", tmp_path / "h", train_data="train")
    ws.add_dataset("holes", _test_set_with(tmp_path, "holes", "b", [0, 3]), time_column="time")
    report = ws.gate("eta", 1, test_set="holes")
    assert report.metrics["challenger"] is not None and report.metrics["challenger"]["r2"] > 0.5


def test_a_test_set_without_the_models_time_column_is_an_input_error(ws: Workspace, tmp_path: Path) -> None:
    ws.train("eta", trainer="helpers:linear_trainer", data="train")
    frame = pd.read_csv(tmp_path / "test.csv").rename(columns={"time": "ts"})
    frame.to_csv(tmp_path / "renamed.csv", index=False)
    ws.add_dataset("renamed", tmp_path / "renamed.csv", time_column="ts")
    with pytest.raises(UsageError, match=r"dataset renamed:1 has no column 'time', the time column of model"):
        ws.gate("eta", 1, test_set="renamed")
    assert ws.version("eta", 1).gate_result is None


def test_the_models_time_column_dates_an_untimed_test_set(ws: Workspace, tmp_path: Path) -> None:
    ws.add_dataset("late", write_regression_csv(tmp_path / "late.csv", rows=400, seed=3), time_column="time")
    ws.train("eta", trainer="helpers:linear_trainer", data="late")  # Jan 1 .. Jan 17: covers the test set
    pd.read_csv(tmp_path / "test.csv").to_csv(tmp_path / "untimed.csv", index=False)
    ws.add_dataset("untimed", tmp_path / "untimed.csv")  # no --time-column: the model's `time` dates it
    report = ws.gate("eta", 1, test_set="untimed")
    overlap = next(c for c in report.checks if c.name == "temporal_overlap")
    assert not overlap.skipped and not overlap.passed and report.decided_by == "temporal_overlap"


# -- models that do not answer one number per row, printing models, bad test sets via the CLI ------------


@pytest.mark.parametrize(
    ("trainer", "reads"),
    [
        ("short_answer", "returned 3 prediction(s) for the 72 rows of test set test:1"),
        ("words_answer", "failed to predict on test set test:1 (ValueError: could not convert"),
        ("broken_predict", "failed to predict on test set test:1 (RuntimeError: feature store unreachable)"),
    ],
)
def test_a_model_without_one_number_per_row_is_exit_2_naming_the_version(  # type: ignore[no-untyped-def]
    cli, live_ws: Workspace, trainer: str, reads: str
) -> None:
    live_ws.train(
        "eta", trainer=f"misbehaving_models:{trainer}", data="train", skip_check=misbehaving_models.SKIP_CHECK
    )
    result = cli("gate", "eta", "1", "--test-set", "test", "--json", "-w", live_ws.path)
    assert result.exit_code == 2 and result.stdout == ""
    assert f"error: eta version 1 {reads}" in one_line_error(result)
    assert live_ws.version("eta", 1).gate_result is None


def test_gate_json_stays_parseable_when_the_model_prints(cli, live_ws: Workspace) -> None:  # type: ignore[no-untyped-def]
    live_ws.train("eta", trainer="misbehaving_models:chatty_model", data="train")
    result = cli("gate", "eta", "1", "--test-set", "test", "--json", "-w", live_ws.path)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["passed"] and misbehaving_models.PREDICT_CHATTER in result.stderr


def test_a_non_binary_target_for_a_classifier_is_exit_2(  # type: ignore[no-untyped-def]
    cli, live_ws: Workspace, tmp_path: Path
) -> None:
    live_ws.add_dataset("labels", write_classification_csv(tmp_path / "c.csv"), time_column="time")
    live_ws.create_model("churn", task="classification", target="y", features="all", id_columns=["user_id"])
    live_ws.train("churn", trainer="helpers:logistic_trainer", data="labels")
    result = cli("gate", "churn", "1", "--test-set", "test", "-w", live_ws.path)  # `y` is continuous there
    assert result.exit_code == 2
    line = one_line_error(result)
    assert "test set test:1: classification needs a binary target, found 72 classes" in line
    assert live_ws.version("churn", 1).gate_result is None


def test_an_unknown_test_set_version_is_exit_2_inone_line_error(cli, live_ws: Workspace) -> None:  # type: ignore[no-untyped-def]
    live_ws.train("eta", trainer="helpers:linear_trainer", data="train")
    result = cli("gate", "eta", "1", "--test-set", "test:99", "-w", live_ws.path)
    assert result.exit_code == 2
    assert "dataset 'test' has no version 99" in one_line_error(result)


# -- leakage through `pitstop gate`: direct findings name the column; a bare floor breach holds ------


def _write_leak_csvs(
    tmp_path: Path, today: pd.Timestamp, *, leak_noise: float | None, b_weight: float
) -> None:
    """Train (30..10 days ago) and test (5 days ago) sets: y = 10a - b_weight*b + noise, and `leak`, the
    target read back with `leak_noise` of noise (no column when None)."""
    for name, rows, start, seed in (("train", 480, 30, 1), ("test", 100, 5, 2)):
        rng = np.random.default_rng(seed)
        frame = pd.DataFrame(
            {
                "time": pd.date_range(today - pd.Timedelta(days=start), periods=rows, freq="h", tz="UTC"),
                "user_id": [f"u{i % 20}" for i in range(rows)],
                "a": rng.normal(size=rows),
                "b": rng.normal(size=rows),
            }
        )
        frame["y"] = 10 * frame["a"] - b_weight * frame["b"] + rng.normal(size=rows)
        if leak_noise is not None:
            frame["leak"] = frame["y"] + rng.normal(scale=leak_noise, size=rows)
        frame.to_csv(tmp_path / f"{name}-leak.csv", index=False)


@pytest.fixture
def leak_ws(workspace_dir: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Workspace]:
    leak_noise, b_weight = getattr(request, "param", (0.9, 5.0))
    _write_leak_csvs(
        tmp_path, pd.Timestamp.now(tz="UTC").floor("D"), leak_noise=leak_noise, b_weight=b_weight
    )
    ws = Workspace(workspace_dir)
    ws.add_dataset("train", tmp_path / "train-leak.csv", time_column="time")
    ws.add_dataset("test", tmp_path / "test-leak.csv", time_column="time")
    ws.create_model(
        "eta", task="regression", target="y", features="all", time_column="time", id_columns=["user_id"]
    )
    yield ws
    ws.close()


def _gate_json(cli, ws: Workspace, version: str, *extra: str) -> tuple[int, dict[str, Any]]:  # type: ignore[no-untyped-def]
    result = cli("gate", "eta", version, "--test-set", "test", "--json", "-w", ws.path, *extra)
    return result.exit_code, json.loads(result.stdout)


def _check_named(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in data["checks"] if c["name"] == name)


def test_a_subtle_leak_improving_less_than_2x_is_caught_by_name(cli, leak_ws: Workspace) -> None:  # type: ignore[no-untyped-def]
    ws = leak_ws
    ws.train("eta", trainer="pitstop.demo.trainers:linear_on", data="train", params={"columns": "a,b"})
    ws.set_champion("eta", 1, reason="honest champion")
    ws.train("eta", trainer="helpers:linear_trainer", data="train")  # learns from `leak`
    code, data = _gate_json(cli, ws, "2")
    ratio = _check_named(data, "metric_ratio")["observed"]
    assert 0.5 < ratio < 1  # better than the champion, by less than 2x: the old floor let it through
    assert code == 1 and data["verdict"] == "failed" and data["decided_by"] == "single_feature"
    assert _check_named(data, "single_feature")["observed"] == "leak"
    human = cli("gate", "eta", "2", "--test-set", "test", "-w", ws.path)
    assert human.exit_code == 1 and "leak alone" in human.stdout


def test_a_first_model_is_checked_for_leakage(cli, leak_ws: Workspace) -> None:  # type: ignore[no-untyped-def]
    leak_ws.train("eta", trainer="helpers:linear_trainer", data="train")
    code, data = _gate_json(cli, leak_ws, "1")
    assert code == 1 and data["champion_version"] is None and data["decided_by"] == "single_feature"
    assert "leak alone" in _check_named(data, "single_feature")["detail"]


@pytest.mark.parametrize("leak_ws", [(None, 3.0)], indirect=True)
def test_a_genuine_large_improvement_is_held_for_review_then_accepted_and_rolled_out(  # type: ignore[no-untyped-def]
    cli, leak_ws: Workspace, tmp_path: Path
) -> None:
    ws = leak_ws
    ws.train("eta", trainer="pitstop.demo.trainers:linear_on", data="train", params={"columns": "a"})
    ws.set_champion("eta", 1, reason="stale champion: never saw b")
    ws.train("eta", trainer="helpers:linear_trainer", data="train")
    code, data = _gate_json(cli, ws, "2")
    assert _check_named(data, "metric_ratio")["observed"] < 0.5  # over 2x better than the champion
    assert code == 1 and data["verdict"] == "review" and data["decided_by"] == "leakage.review"
    assert not any(c["detail"].startswith("leakage:") for c in data["checks"])
    held = cli("gate", "eta", "2", "--test-set", "test", "-w", ws.path)
    assert held.exit_code == 1 and "held for review" in held.stdout and "--accept-review" in held.stdout
    assert "REVIEW" in held.stdout
    assert cli("rollout", "start", "eta", "2", "-w", ws.path).exit_code == 1  # held: not startable

    assert "--reason" in one_line_error(
        cli("gate", "eta", "2", "--test-set", "test", "--accept-review", "-w", ws.path)
    )
    code, data = _gate_json(
        cli, ws, "2", "--accept-review", "--reason", "b is a new real feature", "--by", "ana"
    )
    assert code == 0 and data["passed"] and data["verdict"] == "accepted"
    assert data["accepted"] == {"actor": "ana", "reason": "b is a new real feature"}
    event = [e for e in ws.events("eta") if e.kind == "gate_review_accepted"][-1]
    assert (
        event.actor == "ana" and event.reason == "b is a new real feature" and event.rule == "leakage.review"
    )
    assert cli("rollout", "start", "eta", "2", "-w", ws.path).exit_code == 0
    report = cli("report", "eta", "-w", ws.path, "--out", tmp_path / "r.html")
    assert report.exit_code == 0, report.stderr
    page = (tmp_path / "r.html").read_text()
    assert (
        "held for review, accepted by ana: b is a new real feature" in page and "held for review</td>" in page
    )


def test_accepting_a_review_never_passes_a_direct_finding(cli, leak_ws: Workspace) -> None:  # type: ignore[no-untyped-def]
    leak_ws.train("eta", trainer="helpers:linear_trainer", data="train")
    code, data = _gate_json(cli, leak_ws, "1", "--accept-review", "--reason", "looks fine to me")
    assert code == 1 and data["verdict"] == "failed" and data["accepted"] is None
    assert not [e for e in leak_ws.events("eta") if e.kind == "gate_review_accepted"]


def test_a_feature_available_after_the_event_fails_naming_it(  # type: ignore[no-untyped-def]
    cli, live_ws: Workspace, tmp_path: Path
) -> None:
    live_ws.train("eta", trainer="helpers:linear_trainer", data="train")
    frame = pd.read_csv(tmp_path / "test.csv")
    times = pd.to_datetime(frame["time"], utc=True)
    frame["b_available_at"] = times + pd.to_timedelta(
        [2 if i % 10 == 0 else -1 for i in range(len(frame))], unit="h"
    )
    frame.to_csv(tmp_path / "late.csv", index=False)
    live_ws.add_dataset("late", tmp_path / "late.csv", time_column="time")
    result = cli("gate", "eta", "1", "--test-set", "late", "--json", "-w", live_ws.path)
    data = json.loads(result.stdout)
    check = _check_named(data, "feature_time")
    assert result.exit_code == 1 and data["decided_by"] == "feature_time" and check["observed"] == "b"
    assert "b_available_at is later than the event time on 8 of 72 rows" in check["detail"]


def test_an_overlap_is_named_in_the_gate_output(cli, live_ws: Workspace) -> None:  # type: ignore[no-untyped-def]
    live_ws.train("eta", trainer="helpers:linear_trainer", data="test")
    result = cli("gate", "eta", "1", "--test-set", "test", "--json", "-w", live_ws.path)
    assert (
        "training overlaps the test set from"
        in _check_named(json.loads(result.stdout), "temporal_overlap")["detail"]
    )


def test_a_first_model_far_better_than_a_linear_fit_is_held_for_review(  # type: ignore[no-untyped-def]
    cli, workspace_dir: Path, tmp_path: Path
) -> None:
    today = pd.Timestamp.now(tz="UTC").floor("D")
    for name, rows, start, seed in (("train", 1500, 70, 1), ("test", 100, 5, 2)):
        rng = np.random.default_rng(seed)
        frame = pd.DataFrame(
            {
                "time": pd.date_range(today - pd.Timedelta(days=start), periods=rows, freq="h", tz="UTC"),
                "user_id": [f"u{i % 20}" for i in range(rows)],
                "a": rng.normal(size=rows),
                "b": rng.normal(size=rows),
            }
        )
        frame["y"] = 5 * frame["a"] * frame["b"] + rng.normal(scale=0.3, size=rows)  # no feature alone tells
        frame.to_csv(tmp_path / f"{name}-ab.csv", index=False)
    with Workspace(workspace_dir) as ws:
        ws.add_dataset("train", tmp_path / "train-ab.csv", time_column="time")
        ws.add_dataset("test", tmp_path / "test-ab.csv", time_column="time")
        ws.create_model(
            "eta", task="regression", target="y", features="all", time_column="time", id_columns=["user_id"]
        )
        ws.train(
            "eta", trainer="pitstop.demo.trainers:gradient_boosting", data="train", params={"max_iter": 60}
        )
        code, data = _gate_json(cli, ws, "1")
    floor = _check_named(data, "leakage_floor")
    assert code == 1 and data["champion_version"] is None and data["verdict"] == "review"
    assert floor["review"] and "a linear model's" in floor["detail"]
    assert _check_named(data, "single_feature")["passed"]


def test_a_feature_available_after_the_event_in_the_training_rows_fails_naming_it(  # type: ignore[no-untyped-def]
    cli, live_ws: Workspace, tmp_path: Path
) -> None:
    frame = pd.read_csv(tmp_path / "train.csv")
    late = pd.to_datetime(frame["time"], utc=True) + pd.Timedelta(hours=3)
    frame["a_available_at"] = late.where(frame.index % 4 == 0, pd.to_datetime(frame["time"], utc=True))
    frame.to_csv(tmp_path / "train-late.csv", index=False)
    live_ws.add_dataset("train-late", tmp_path / "train-late.csv", time_column="time")
    live_ws.create_model("eta2", task="regression", target="y", time_column="time", features=["a", "b"])
    live_ws.train("eta2", trainer="helpers:linear_trainer", data="train-late")
    result = cli("gate", "eta2", "1", "--test-set", "test", "--json", "-w", live_ws.path)
    data = json.loads(result.stdout)
    check = _check_named(data, "feature_time")
    assert result.exit_code == 1 and data["decided_by"] == "feature_time" and check["observed"] == "a"
    assert "on 30 of 120 rows of the training rows" in check["detail"]
