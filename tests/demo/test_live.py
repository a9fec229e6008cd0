"""`pitstop demo --live`: a real gateway process with its controller, real HTTP load, real clock.

One run (about two minutes) is checked from every side: what it prints, what it leaves running (nothing),
the reports it writes, and the workspace it keeps, which the CLI opens like any other.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import httpx
import pytest


def processes_naming(text: str) -> list[str]:
    """Command lines of this machine's processes that mention `text` (the demo's workspace folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # the process ended while we looked
            continue
        if text in command:
            found.append(command)
    return found


@pytest.mark.slow
@pytest.mark.timeout(600)  # two rollouts of at most 4 minutes each; about two minutes in all usually
def test_live_demo_promotes_one_rolls_back_the_other_and_keeps_a_workspace_the_cli_opens(
    cli,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PITSTOP_DATABASE_URL", raising=False)
    workspace, out = tmp_path / "live", tmp_path / "reports"
    result = cli("demo", "--live", "--workspace", workspace, "--out", out)
    assert result.exit_code == 0, result.stderr
    printed = result.stdout

    # it prints the dashboard and its progress: each rollout's bar and every change of phase
    url = re.search(r"dashboard: (http://127\.0\.0\.1:\d+)/", printed)
    assert url is not None, printed
    assert re.search(r"v2 fresh retrain: promoted .* / 0:04:00 +\d+ requests, 0 failed", printed), printed
    assert re.search(r"shadow -> A/B test \(25% of users\)", printed), printed
    assert re.search(r"-> ramp \(\d+% of users\)", printed), printed
    rolled_back = r"v3 rate-limited feature lookup: rolled back .* \d+ requests, 0 failed"
    assert re.search(rolled_back, printed), printed
    totals = re.search(r"(\d+) requests over HTTP, (\d+) failed", printed)
    assert totals is not None and int(totals[1]) > 1000 and int(totals[2]) == 0

    # it stops every process it started
    assert processes_naming(str(workspace)) == []
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url[1]}/healthz", timeout=2)
    log = (workspace / "gateway.log").read_text()
    assert "Traceback" not in log

    # it writes one report per rollout into --out and prints where
    reports = re.findall(r"report: (\S+\.html)", printed)
    assert len(reports) == 2 and all(Path(path).parent == out for path in reports)
    assert all(Path(path).stat().st_size > 100_000 for path in reports)

    # the kept workspace is a normal one: the CLI finds the demo's store where it looks by default
    listed = cli("rollout", "list", "delivery-eta", "-w", workspace, "--json")
    assert listed.exit_code == 0, listed.stderr
    outcomes = [(row["challenger_version"], row["outcome"]) for row in json.loads(listed.stdout)]
    assert outcomes == [(2, "promoted"), (3, "rolled_back")]
    again = cli("report", "delivery-eta", "-w", workspace, "--rollout", "2", "--out", tmp_path / "again.html")
    assert again.exit_code == 0, again.stderr
    assert (tmp_path / "again.html").stat().st_size > 100_000
    assert not (workspace / "pitstop.db").exists()


def test_live_demo_refuses_a_folder_holding_another_workspace(
    cli,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PITSTOP_DATABASE_URL", raising=False)
    assert cli("init", tmp_path / "mine").exit_code == 0
    result = cli("demo", "--live", "--workspace", tmp_path / "mine", "--out", tmp_path / "reports")
    assert result.exit_code == 2
    assert "already holds a pitstop workspace" in result.stderr
