from __future__ import annotations

import json
from pathlib import Path


def test_demo_tells_the_gate_story(cli, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("PITSTOP_DATABASE_URL", raising=False)
    result = cli("demo", "--workspace", tmp_path / "demo", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    decided = {row["challenger"]: (row["verdict"], row["decided_by"]) for row in data["gates"]}
    assert decided == {
        "fresh retrain": ("passed", None),
        "leaky feature pipeline": ("rejected", "leakage_floor"),
        "simpler linear model": ("rejected", "metric_ratio"),
        "retrain, stale test set": ("rejected", "test_set_age"),
    }
