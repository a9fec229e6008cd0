"""Real rollouts for report tests: a workspace with a stale champion, a good and a bad challenger, a short
policy, a manual clock, and real traffic replayed through the gateway (and, when asked, the controller)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import joblib
import pandas as pd
from sklearn.linear_model import LinearRegression

from helpers import OffsetModel, make_traffic, write_regression_csv
from pitstop.clock import ManualClock
from pitstop.replay import Replay, prepare_traffic
from pitstop.workspace import Workspace

T = TypeVar("T")
MODEL = "eta"
START = datetime(2026, 3, 1, tzinfo=UTC)
# Latency limits are wide: latencies are real, and a loaded test machine must not decide these stories.
SHORT_POLICY = """
shadow: {min_duration: 1h, max_duration: 6h, min_labeled: 60, max_p99_ratio: 1000}
ab_test: {share: 0.5, min_duration: 1h, max_duration: 8h, label_maturation: 15m, tau: 0.1,
  min_users_per_arm: 20}
guardrails: {min_samples: 30, max_p99_ratio: 1000}
ramp: {steps: [50, 75, 100], dwell: 30m, min_labeled_per_arm: 30, standby: 2h}
serving: {batch_max_wait: 0ms}
"""


def rollout_workspace(
    folder: Path,
    scratch: Path,
    database_url: str | None = None,
    *,
    policy: str = SHORT_POLICY,
    loss: str | None = None,
) -> Workspace:
    """Model `eta`: v1 champion (offset 1.0, stale), v2 good challenger (exact fit), v3 bad (offset 3);
    `loss` its per-request loss (default absolute error)."""
    Workspace.init(folder, database_url=database_url).close()
    (folder / "pitstop.yaml").write_text(policy)
    ws = Workspace(folder, clock=ManualClock(START), database_url=database_url)
    csv = write_regression_csv(scratch / "train.csv", rows=300)
    ws.add_dataset("train", csv, time_column="time")
    ws.create_model(
        MODEL,
        task="regression",
        target="y",
        features="all",
        time_column="time",
        id_columns=["user_id"],
        loss=loss,
    )
    frame = pd.read_csv(csv)
    base = LinearRegression().fit(frame[["a", "b"]], frame["y"])
    for offset in (1.0, 0.0, 3.0):
        path = scratch / f"m{offset}.joblib"
        joblib.dump(OffsetModel(base, offset), path)
        ws.register(MODEL, path, train_data="train")
    ws.set_champion(MODEL, 1, reason="bootstrap")
    return ws


def send_traffic(ws: Workspace, hours: float, requests: int, *, seed: int = 0, decide: bool = True) -> None:
    """Replay `hours` of traffic from the clock's now through the real gateway (and controller, every
    10 simulated minutes); stops early when the rollout ends."""
    start = ws.clock.now() + timedelta(seconds=1)
    frame = prepare_traffic(make_traffic(start.isoformat(), hours, requests, seed=seed), ["a", "b"])
    clock = ws.clock
    assert isinstance(clock, ManualClock)
    replay = Replay(ws, MODEL, frame, ["a", "b"], clock, timedelta(minutes=10), timedelta(seconds=1), None)
    in_own_thread(lambda: asyncio.run(replay.run(decide=decide)))


def in_own_thread(work: Callable[[], T]) -> T:
    """Run `work` on a fresh thread: Playwright's sync API keeps an event loop running on the test's
    thread, where `asyncio.run` (the replay, `simulate`) refuses to start."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(work).result()
