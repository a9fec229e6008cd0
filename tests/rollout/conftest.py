"""A workspace with a champion and two challengers, a short policy, a manual clock, and real traffic."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import joblib
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from helpers import OffsetModel, make_traffic, write_regression_csv
from pitstop.clock import ManualClock
from pitstop.replay import Replay, prepare_traffic
from pitstop.workspace import Workspace

START = datetime(2026, 3, 1, tzinfo=UTC)

SHORT_POLICY = """
shadow: {min_duration: 1h, max_duration: 6h, min_labeled: 60, max_p99_ratio: 10}
ab_test: {share: 0.5, min_duration: 1h, max_duration: 8h, label_maturation: 15m, tau: 0.1,
  min_users_per_arm: 20}
guardrails: {min_samples: 30, max_p99_ratio: 10}
ramp: {steps: [50, 75, 100], dwell: 30m, min_labeled_per_arm: 30, standby: 2h}
"""


class FailsAfter:
    """A fitted model that answers its first `calls` predict calls, then raises on every one (a leak
    that only shows once it has served a while)."""

    def __init__(self, base: LinearRegression, calls: int) -> None:
        self.base, self.left = base, calls
        self.feature_names_in_ = base.feature_names_in_

    def predict(self, X: pd.DataFrame) -> object:
        if self.left <= 0:
            raise MemoryError("out of memory after serving a while")
        self.left -= 1
        return self.base.predict(X)


def fit_base(tmp_path: Path) -> LinearRegression:
    """The exact fit every test version is derived from (of the training data `rollout_ws` wrote)."""
    frame = pd.read_csv(tmp_path / "train.csv")
    return LinearRegression().fit(frame[["a", "b"]], frame["y"])


def register_model(ws: Workspace, model: object, path: Path, *, skip_check: str | None = None) -> int:
    """Register `model` (saved to `path`) as the next version of `eta` (`skip_check`: a model the door
    check would refuse, for a test of what a rollout does with it)."""
    joblib.dump(model, path)
    return ws.register("eta", path, train_data="train", skip_check=skip_check).version


def traffic(ws: Workspace, hours: float, requests: int, *, seed: int = 0) -> pd.DataFrame:
    """`hours` of requests (labels 10 minutes later) from just after the clock's now."""
    start = ws.clock.now() + timedelta(seconds=1)
    frame: pd.DataFrame = make_traffic(start.isoformat(), hours, requests, seed=seed)
    return frame


def replay(
    ws: Workspace, frame: pd.DataFrame, *, decide: bool = True, interval_minutes: float = 10
) -> Replay:
    """Replay `frame` through the real gateway (and, with `decide`, a controller looking every interval)."""
    run = Replay(
        ws,
        "eta",
        prepare_traffic(frame, ["a", "b"]),
        ["a", "b"],
        ws.clock,  # type: ignore[arg-type]
        timedelta(minutes=interval_minutes),
        timedelta(seconds=1),
        None,
    )
    asyncio.run(run.run(decide=decide))
    return run


def send_traffic(
    ws: Workspace,
    hours: float,
    requests: int,
    *,
    seed: int = 0,
    decide: bool = True,
    interval_minutes: float = 10,
) -> Replay:
    """Replay `hours` of traffic from the clock's now through the real gateway (and controller)."""
    frame = traffic(ws, hours, requests, seed=seed)
    return replay(ws, frame, decide=decide, interval_minutes=interval_minutes)


@pytest.fixture
def policy_yaml() -> str:
    """The workspace's pitstop.yaml; a test parametrizes it to try another policy."""
    return SHORT_POLICY


@pytest.fixture
def rollout_ws(workspace_dir: Path, tmp_path: Path, policy_yaml: str) -> Iterator[Workspace]:
    """Model `eta`: v1 champion (offset 1.0, stale), v2 good challenger (exact fit), v3 bad (offset 3)."""
    (workspace_dir / "pitstop.yaml").write_text(policy_yaml)
    ws = Workspace(workspace_dir, clock=ManualClock(START))
    csv = write_regression_csv(tmp_path / "train.csv", rows=300)
    ws.add_dataset("train", csv, time_column="time")
    ws.create_model(
        "eta", task="regression", target="y", features="all", time_column="time", id_columns=["user_id"]
    )
    base = fit_base(tmp_path)
    for offset in (1.0, 0.0, 3.0):
        register_model(ws, OffsetModel(base, offset), tmp_path / f"m{offset}.joblib")
    ws.set_champion("eta", 1, reason="bootstrap")
    yield ws
    ws.close()
