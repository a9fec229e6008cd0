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
    assert all(
        set(row) >= {"challenger", "version", "outcome", "stage", "reason"} for row in data["rollouts"]
    )
    assert len(data["reports"]) == 4 and all(Path(path).stat().st_size > 100_000 for path in data["reports"])
