"""`pitstop demo`, the main job, end to end: every stage catches the failure the earlier ones miss."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from rich.console import Console

from pitstop.config import default_database_url
from pitstop.report.data import report_data
from pitstop.workspace import Workspace


def earlier_demo(folder: Path) -> None:
    """What an earlier `pitstop demo -w folder` leaves behind: its policy, its store, the model in it."""
    from pitstop.demo.story import DEMO_POLICY, MODEL

    folder.mkdir(parents=True)
    (folder / "pitstop.yaml").write_text(DEMO_POLICY)
    (folder / "data").mkdir()
    (folder / "data" / "deliveries.csv").write_text("old\n")
    with Workspace.init(folder) as ws:
        ws.create_model(MODEL, task="regression", target="delivery_minutes", features="all")


@pytest.mark.slow  # its replay times real model calls: a latency guardrail decides one rollout
def test_demo_tells_the_whole_story(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    # One run (about 50 s) checked from every side. It runs where an earlier demo left its workspace,
    # with PITSTOP_DATABASE_URL naming a shared store that the demo must leave alone.
    monkeypatch.delenv("PITSTOP_DATABASE_URL", raising=False)
    folder = tmp_path / "demo"
    earlier_demo(folder)
    shared = f"sqlite:///{tmp_path / 'shared.db'}"
    monkeypatch.setenv("PITSTOP_DATABASE_URL", shared)
    Workspace.init(tmp_path / "shared").close()
    result = cli("demo", "--workspace", folder, "--out", tmp_path / "reports", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["workspace"] == str(folder.resolve())
    with Workspace(tmp_path / "shared") as ws:
        assert ws.models() == []
    stopped = {row["challenger"]: (row["outcome"], row["stage"], row["rule"]) for row in data["rollouts"]}
    assert stopped == {
        "leaky feature pipeline": ("rejected", "gate", "single_feature"),
        "training cut short": ("rejected", "gate", "metric_ratio"),
        "fresh retrain, stale test set": ("rejected", "gate", "test_set_age"),
        "trained without rain": ("rejected", "shadow", "shadow.error_ratio"),
        "retrain of the old period": ("rejected", "shadow", "ab.unwinnable"),
        "pooled feature lookup": ("rolled_back", "ramp", "guardrail.latency_p99"),
        "fresh retrain": ("promoted", "ramp", "ramp.completed"),
    }
    promoted = next(row for row in data["rollouts"] if row["outcome"] == "promoted")
    assert data["champion_version"] == promoted["version"]
    first = data["first_champion"]
    assert first["datasets"][0]["name"] == "deliveries" and first["as_of"].startswith("2026-07-01")
    assert first["params"] == {"max_iter": 200} and set(first["environment"]) == {"python", "pitstop"}
    assert {"scikit-learn", "numpy"} <= set(first["packages"])
    assert all(
        set(row) >= {"challenger", "version", "outcome", "stage", "reason"} for row in data["rollouts"]
    )
    assert len(data["reports"]) == 4 and all(Path(path).stat().st_size > 100_000 for path in data["reports"])

    # the kept workspace is a normal one: the CLI finds the demo's store where it looks by default
    monkeypatch.delenv("PITSTOP_DATABASE_URL")
    listed = cli("rollout", "list", "delivery-eta", "-w", folder, "--json")
    assert listed.exit_code == 0, listed.stderr
    rolled = [(row["challenger_version"], row["outcome"]) for row in json.loads(listed.stdout)]
    assert rolled == [(row["version"], row["outcome"]) for row in data["rollouts"] if row["stage"] != "gate"]
    assert not (folder / "data" / "deliveries.csv").read_text().startswith("old")

    # rollouts replayed one after another into one store keep their own labels: each rollout's report,
    # regenerated after all of them, sees the labelled pairs its shadow verdict was decided on
    with Workspace(folder) as ws:
        verdicts = [
            e
            for e in ws.events("delivery-eta")
            if e.kind == "rollout_transition" and e.from_state == "shadow"
        ]
        assert len(verdicts) == len(rolled)
        for verdict in verdicts:
            shadow = report_data(ws, "delivery-eta", verdict.rollout_id).shadow
            assert shadow is not None and shadow.n == verdict.data["labelled_pairs"] > 0, verdict.rollout_id


def test_demo_refuses_a_folder_holding_another_workspace(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("PITSTOP_DATABASE_URL", raising=False)
    assert cli("init", tmp_path / "mine").exit_code == 0
    config = (tmp_path / "mine" / "pitstop.yaml").read_text()
    result = cli("demo", "--workspace", tmp_path / "mine", "--out", tmp_path / "reports")
    assert result.exit_code == 2
    assert "already holds a pitstop workspace" in result.stderr
    assert (tmp_path / "mine" / "pitstop.yaml").read_text() == config
    assert not (tmp_path / "mine" / "data").exists()


def test_a_demo_run_again_in_its_folder_starts_afresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pitstop.demo.folder import demo_workspace
    from pitstop.demo.story import DEMO_POLICY

    monkeypatch.delenv("PITSTOP_DATABASE_URL", raising=False)
    earlier_demo(tmp_path / "demo")
    with demo_workspace(tmp_path / "demo", DEMO_POLICY) as ws:
        assert ws.models() == []
    assert (tmp_path / "demo" / "pitstop.yaml").read_text() == DEMO_POLICY
    assert not (tmp_path / "demo" / "data").exists()


@pytest.mark.parametrize("earlier", ["batch", "live", "batch before the shared rule"])
def test_either_demo_replaces_a_workspace_any_demo_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, earlier: str
) -> None:
    from pitstop.demo.folder import demo_workspace
    from pitstop.demo.live import LIVE_POLICY
    from pitstop.demo.story import DEMO_POLICY

    monkeypatch.delenv("PITSTOP_DATABASE_URL", raising=False)
    written = {
        "batch": DEMO_POLICY,
        "live": LIVE_POLICY,
        "batch before the shared rule": "# The demo's policy: the shipped thresholds…\n",
    }[earlier]
    (tmp_path / "pitstop.yaml").write_text(written)
    Workspace.init(tmp_path).close()
    (tmp_path / "gateway.log").write_text("old log")
    for policy in (LIVE_POLICY, DEMO_POLICY):
        demo_workspace(tmp_path, policy).close()
        assert (tmp_path / "pitstop.yaml").read_text() == policy
        assert not (tmp_path / "gateway.log").exists()


def test_a_demo_store_is_in_its_folder_whatever_the_environment_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pitstop.demo.folder import demo_workspace, show_workspace
    from pitstop.demo.story import DEMO_POLICY

    monkeypatch.setenv("PITSTOP_DATABASE_URL", f"sqlite:///{tmp_path / 'shared.db'}")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # without a folder: a new temporary one
    console = Console(record=True, width=200)
    with demo_workspace(None, DEMO_POLICY) as ws:
        assert ws.path.parent == tmp_path.resolve() and ws.path.name.startswith("pitstop-demo-")
        assert ws.database_url == default_database_url(ws.path)
        show_workspace(console, ws, "delivery-eta")
    assert not (tmp_path / "shared.db").exists()
    store = ws.path / ".pitstop" / "pitstop.db"
    assert store.exists()
    assert f"unset PITSTOP_DATABASE_URL first: the demo's store is {store}" in console.export_text()


def test_demo_shows_the_champions_lineage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pitstop.clock import ManualClock
    from pitstop.demo.story import DEMO_NOW, MODEL, World, build_world

    monkeypatch.delenv("PITSTOP_DATABASE_URL", raising=False)
    console = Console(record=True, width=120)
    with Workspace.init(tmp_path / "demo", clock=ManualClock(DEMO_NOW)) as ws:
        champion = build_world(ws, World(DEMO_NOW), console)
        version = ws.version(MODEL, champion)
    shown = console.export_text()
    snapshot = version.lineage.to_json()["datasets"][0]
    assert f"champion v{champion}: lineage" in shown
    assert f"{snapshot['name']}:{snapshot['version']} sha256 {snapshot['sha256'][:12]}" in shown
    assert "training window  2026-03-01" in shown and "as-of cutoff     2026-07-01 00:00" in shown
    assert "max_iter=200" in shown and "code commit" in shown and "scikit-learn" in shown
