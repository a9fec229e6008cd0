"""What `rollout status` says about failures: the distinct errors of failed model calls, with counts and
when each was first and last seen, per version and role."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pitstop.workspace import Workspace
from rollout.conftest import FailsAfter, fit_base, register_model, send_traffic

OUT_OF_MEMORY = "MemoryError: out of memory after serving a while"


def test_status_lists_the_challengers_error_messages_with_counts_and_times(  # type: ignore[no-untyped-def]
    cli, rollout_ws: Workspace, tmp_path: Path
) -> None:
    version = register_model(rollout_ws, FailsAfter(fit_base(tmp_path), 3), tmp_path / "fails.joblib")
    rollout_ws.start_rollout("eta", version, skip_gate=True, reason="test")
    send_traffic(rollout_ws, 0.5, 100, decide=False)
    result = cli("rollout", "status", "eta", "--json", "-w", rollout_ws.path)
    assert result.exit_code == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    (message,) = data["errors"]["messages"]
    failures = data["evidence"]["shadow"]["failures"]
    assert (message["version"], message["role"], message["error"]) == (version, "shadow", OUT_OF_MEMORY)
    assert message["count"] == failures > 0 and data["errors"]["more"] == 0
    assert message["first_seen"] <= message["last_seen"]
    text = cli("rollout", "status", "eta", "-w", rollout_ws.path).stdout
    assert "failed calls in this phase" in text and OUT_OF_MEMORY in text
