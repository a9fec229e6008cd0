"""A workspace with a champion and two challengers, a short policy, and a manual clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import joblib
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from helpers import OffsetModel, write_regression_csv
from pitstop.clock import ManualClock
from pitstop.workspace import Workspace

START = datetime(2026, 3, 1, tzinfo=UTC)

SHORT_POLICY = """
shadow: {min_duration: 1h, max_duration: 6h, min_labeled: 60, max_p99_ratio: 10}
ab_test: {share: 0.5, min_duration: 1h, max_duration: 8h, label_maturation: 15m, tau: 0.1}
guardrails: {min_samples: 30, max_p99_ratio: 10}
ramp: {steps: [50, 75, 100], dwell: 30m, min_labeled_per_arm: 30, standby: 2h}
"""


@pytest.fixture
def rollout_ws(workspace_dir: Path, tmp_path: Path) -> Iterator[Workspace]:
    """Model `eta`: v1 champion (offset 1.0, stale), v2 good challenger (exact fit), v3 bad (offset 3)."""
    (workspace_dir / "pitstop.yaml").write_text(SHORT_POLICY)
    ws = Workspace(workspace_dir, clock=ManualClock(START))
    csv = write_regression_csv(tmp_path / "train.csv", rows=300)
    ws.add_dataset("train", csv, time_column="time")
    ws.create_model("eta", task="regression", target="y", time_column="time", id_columns=["user_id"])
    frame = pd.read_csv(csv)
    base = LinearRegression().fit(frame[["a", "b"]], frame["y"])
    for offset in (1.0, 0.0, 3.0):
        path = tmp_path / f"m{offset}.joblib"
        joblib.dump(OffsetModel(base, offset), path)
        ws.register("eta", path, train_data="train")
    ws.set_champion("eta", 1, reason="bootstrap")
    yield ws
    ws.close()
