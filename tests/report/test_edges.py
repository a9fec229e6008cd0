"""Reports of rollouts at their edges: just started, and promoted by hand then rolled back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from pitstop.clock import ManualClock
from pitstop.report import report_data, write_report
from pitstop.workspace import Workspace
from report.rollouts import MODEL, rollout_workspace


@pytest.fixture
def ws(tmp_path: Path, database_url: str) -> Iterator[Workspace]:
    workspace = rollout_workspace(tmp_path / "ws", tmp_path, database_url)
    yield workspace
    workspace.close()


def test_a_rollout_that_just_started_has_a_report(ws: Workspace, tmp_path: Path) -> None:
    ws.start_rollout(MODEL, 2, skip_gate=True, reason="just now")
    data = report_data(ws, MODEL)
    assert data.rollout["phase"] == "shadow" and data.outcome is None
    assert data.words.headline.startswith("In progress (shadow)")
    assert "has not looked" in data.words.because
    assert all(sum(series.requests) == 0 for series in data.arms.values())
    path = write_report(ws, MODEL, tmp_path / "started.html")
    assert "In progress (shadow)" in path.read_text()
    json.dumps(data.to_dict(), allow_nan=False)


def test_a_promotion_rolled_back_by_hand_reads_as_such(ws: Workspace, tmp_path: Path) -> None:
    clock = ws.clock
    assert isinstance(clock, ManualClock)
    ws.start_rollout(MODEL, 2, skip_gate=True, reason="hotfix")
    clock.advance(timedelta(minutes=30))
    ws.promote(MODEL, reason="urgent", to_end=True, actor="alice")
    clock.advance(timedelta(hours=1))
    ws.rollback(MODEL, reason="pager went off", actor="bob")
    data = report_data(ws, MODEL)
    assert data.outcome == "rolled_back"
    assert data.words.headline.startswith("Rolled back after promotion: version 1 is the champion")
    assert "bob applied rule manual.rollback" in data.words.because and "pager went off" in data.words.because
    assert [b.label for b in data.bands] == ["shadow"]  # users were routed by the rollout until promotion
    assert data.active_until < data.end  # the timeline goes on to the rollback
    assert [p.share for p in data.share] == [0.0, 1.0, 0.0]  # the challenger version's share of users
    assert [e.to_state for e in data.events if e.kind == "rollout_transition"] == [
        "shadow",
        "promoted",
        "rolled_back",
    ]
    assert "Rolled back after promotion" in write_report(ws, MODEL, tmp_path / "r.html").read_text()
