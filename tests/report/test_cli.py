"""`pitstop report` through the real entry point (`pitstop.cli.main`, as the installed command runs it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from report.conftest import Story
from report.rollouts import MODEL


@pytest.fixture(autouse=True)
def story_store(monkeypatch: pytest.MonkeyPatch, store_url: str) -> None:
    """Every command reads the story's store."""
    monkeypatch.setenv("PITSTOP_DATABASE_URL", store_url)


def test_report_is_a_pitstop_command_with_help(cli) -> None:  # type: ignore[no-untyped-def]
    listed = cli("--help")
    assert listed.exit_code == 0
    assert any(line.split()[:1] == ["report"] for line in listed.stdout.splitlines())  # a listed command
    result = cli("report", "--help")
    assert result.exit_code == 0
    assert "--out" in result.stdout and "--rollout" in result.stdout and "--json" in result.stdout


def test_report_command_writes_the_file_and_says_where(cli, story: Story, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "reports" / "eta.html"
    result = cli("report", MODEL, "--out", out, "-w", story.ws.path, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {"path": str(out), "rollout_id": story.promoted}
    page = out.read_text()
    assert page.startswith("<!doctype html>") and "Promoted: version 2 replaced version 1" in page
    assert "policy from pitstop.yaml" in page  # which policy decided, and where it came from
    assert '<script src="' not in page and '<link rel="stylesheet"' not in page  # all inline: opens offline


def test_report_command_picks_a_rollout_and_prints_its_outcome(cli, story: Story, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "rejected.html"
    result = cli("report", MODEL, "--rollout", story.rejected, "--out", out, "-w", story.ws.path)
    assert result.exit_code == 0, result.stderr
    assert f"rollout {story.rejected}, rejected" in result.stdout and out.exists()


def test_report_command_without_a_rollout_is_a_usage_error(cli, story: Story, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("report", MODEL, "--rollout", 999, "--out", tmp_path / "x.html", "-w", story.ws.path)
    assert result.exit_code == 2
    rollouts = f"{story.rejected}, {story.promoted}"
    assert f"error: model '{MODEL}' has no rollout 999; its rollouts are {rollouts}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x.html").exists()
