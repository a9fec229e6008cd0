"""`pitstop demo`, the main job, end to end: every stage catches the failure the earlier ones miss."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def test_demo_tells_the_whole_story(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("PITSTOP_DATABASE_URL", raising=False)
    result = cli("demo", "--workspace", tmp_path / "demo", "--out", tmp_path / "reports", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    stopped = {row["challenger"]: (row["outcome"], row["stage"], row["rule"]) for row in data["rollouts"]}
    assert stopped == {
        "leaky feature pipeline": ("rejected", "gate", "leakage_floor"),
        "training cut short": ("rejected", "gate", "metric_ratio"),
        "fresh retrain, stale test set": ("rejected", "gate", "test_set_age"),
        "trained without rain": ("rejected", "shadow", "shadow.error_ratio"),
        "retrain of the old period": ("rejected", "ab_test", "ab.inconclusive"),
        "pooled feature lookup": ("rolled_back", "ramp", "guardrail.latency_p99"),
        "fresh retrain": ("promoted", "ramp", "ramp.completed"),
    }
    promoted = next(row for row in data["rollouts"] if row["outcome"] == "promoted")
    assert data["champion_version"] == promoted["version"]
    first = data["first_champion"]
    assert first["datasets"][0]["name"] == "deliveries" and first["as_of"].startswith("2026-07-01")
    assert first["params"] == {"max_iter": 200} and set(first["environment"]) == {"python", "packages"}
    assert all(
        set(row) >= {"challenger", "version", "outcome", "stage", "reason"} for row in data["rollouts"]
    )
    assert len(data["reports"]) == 4 and all(Path(path).stat().st_size > 100_000 for path in data["reports"])


def test_demo_shows_the_champions_lineage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    from pitstop.clock import ManualClock
    from pitstop.demo.story import DEMO_NOW, MODEL, World, build_world
    from pitstop.workspace import Workspace

    monkeypatch.delenv("PITSTOP_DATABASE_URL", raising=False)
    console = Console(record=True, width=120)
    with Workspace.init(tmp_path / "demo", clock=ManualClock(DEMO_NOW)) as ws:
        champion = build_world(ws, World(DEMO_NOW), console)
        version = ws.version(MODEL, champion)
    shown = console.export_text()
    snapshot = version.lineage["datasets"][0]
    assert f"champion v{champion}: lineage" in shown
    assert f"{snapshot['name']}:{snapshot['version']} sha256 {snapshot['sha256'][:12]}" in shown
    assert "training window  2026-03-01" in shown and "as-of cutoff     2026-07-01 00:00" in shown
    assert "max_iter=200" in shown and "code commit" in shown and "scikit-learn" in shown
