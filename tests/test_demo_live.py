"""`pitstop demo --live`: a real gateway process with its controller, real HTTP load, real clock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_live_demo_promotes_one_and_rolls_back_the_other(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("demo", "--live", "--workspace", tmp_path / "live", "--out", tmp_path / "reports", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    outcomes = [(row["challenger"], row["outcome"]) for row in data["rollouts"]]
    assert outcomes == [("fresh retrain", "promoted"), ("rate-limited feature lookup", "rolled_back")]
    assert data["failed_requests"] == 0 and data["requests"] > 1000
    assert all(Path(path).stat().st_size > 100_000 for path in data["reports"])
    log = (tmp_path / "live" / "gateway.log").read_text()
    assert "Traceback" not in log
