"""Reports of replays: what `pitstop simulate --report` and `pitstop demo` write (a replay workspace is a
folder with `pitstop.yaml` and its own SQLite store, `replay.db`)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from helpers import make_traffic
from pitstop.replay import replay_store_url, simulate
from pitstop.report import write_report
from pitstop.workspace import Workspace
from report.rollouts import MODEL, in_own_thread, rollout_workspace


def test_a_replay_gets_its_report(tmp_path: Path) -> None:
    source = rollout_workspace(tmp_path / "ws", tmp_path, f"sqlite:///{tmp_path / 'source.db'}")
    traffic = make_traffic("2026-03-02T00:00:00+00:00", 2.0, 500, seed=3)
    result = in_own_thread(
        lambda: simulate(
            source,
            MODEL,
            champion=1,
            challenger=3,
            traffic=traffic,
            policy=source.config.policy,
            interval=timedelta(minutes=10),
            workdir=tmp_path / "replay",
        )
    )
    source.close()
    with Workspace(result.workspace, database_url=replay_store_url(result.workspace)) as replay:
        path = write_report(replay, MODEL, tmp_path / "replay.html", rollout_id=result.rollout_id)
    page = path.read_text()
    assert result.outcome == "rejected" and "Rejected in shadow" in page and str(result.rule) in page
