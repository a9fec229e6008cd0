"""`pitstop compare`: a shadow set by hand, judged live by the tests and words of a rollout's shadow
phase, on the evidence gathered since that shadow began; nothing decided or written."""

from __future__ import annotations

import html
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from browser import CHART_MARKS, PageWatch, headless_chromium
from helpers import one_line_error
from pitstop.events import EventKind
from pitstop.report.words import verdict
from pitstop.rollout.manual_shadow import shadow_start
from pitstop.routing.table import RoutingTable
from pitstop.workspace import Workspace
from rollout.conftest import START, send_traffic


def compared(cli, ws: Workspace) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    result = cli("compare", "eta", "--json", "-w", ws.path)
    assert result.exit_code == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def shadow_by_hand(ws: Workspace, version: int) -> None:
    ws.route("eta", mode="shadow", challenger=version, reason="try it on live traffic")


def test_a_good_shadow_set_by_hand_passes_the_shadow_rules(cli, rollout_ws: Workspace) -> None:  # type: ignore[no-untyped-def]
    shadow_by_hand(rollout_ws, 2)
    send_traffic(rollout_ws, 2, 400, decide=False)
    data = compared(cli, rollout_ws)
    assert (data["champion_version"], data["shadow_version"]) == (1, 2)
    paired = data["evidence"]["paired"]
    assert paired["n"] >= 60 and data["progress"]["labelled"] == {"pairs": paired["n"]}
    assert data["comparison"]["error_ratio"] < 0.8  # an exact fit against an offset of 1
    text = cli("compare", "eta", "-w", rollout_ws.path).stdout
    assert (
        f"challenger/champion error {data['comparison']['error_ratio']:.3f} (same {paired['n']} requests)"
        in text
    )
    verdict = data["verdict"]
    assert f"a rollout's shadow phase would now: {verdict['action']} ({verdict['rule']})" in text
    result = rollout_ws.compare("eta")  # on the workspace's clock (the CLI's is the real one)
    assert (result.verdict.action, result.verdict.rule) == ("advance", "shadow.passed")


def test_a_worse_shadow_would_be_rejected_and_nothing_is_written(cli, rollout_ws: Workspace) -> None:  # type: ignore[no-untyped-def]
    shadow_by_hand(rollout_ws, 3)
    send_traffic(rollout_ws, 2, 400, decide=False)
    events_before = len(rollout_ws.events("eta"))
    data = compared(cli, rollout_ws)
    assert data["verdict"]["action"] == "reject" and data["verdict"]["rule"] == "shadow.error_ratio"
    assert data["comparison"]["error_ratio"] > 1
    assert len(rollout_ws.events("eta")) == events_before  # a comparison decides nothing
    assert rollout_ws.routing("eta").shadow == 3  # type: ignore[union-attr]


def test_only_the_evidence_since_the_shadow_began_counts(cli, rollout_ws: Workspace) -> None:  # type: ignore[no-untyped-def]
    shadow_by_hand(rollout_ws, 3)
    send_traffic(rollout_ws, 1, 200, decide=False, seed=1)
    shadow_by_hand(rollout_ws, 2)
    began = rollout_ws.routing("eta")
    assert began is not None
    rollout_ws.route("eta", mode="shadow", challenger=2, reason="the same again: nothing changes")
    send_traffic(rollout_ws, 0.5, 100, decide=False, seed=2)
    result = rollout_ws.compare("eta")  # on the workspace's clock (the CLI's is the real one)
    assert result.shadow_version == 2 and result.since_routing_version == began.version
    assert result.since == began.created_at
    assert result.evidence.shadow.requests <= 100  # none of the first shadow's calls
    assert result.verdict.rule == "shadow.min_duration"  # half an hour of the hour it needs


def test_without_a_hand_made_shadow_compare_says_how_to_set_one(cli, rollout_ws: Workspace) -> None:  # type: ignore[no-untyped-def]
    line = one_line_error(cli("compare", "eta", "-w", rollout_ws.path))
    assert "has no shadow set by hand" in line and "`pitstop route eta --mode shadow" in line


def test_a_rollout_s_shadow_is_compared_by_rollout_status(cli, rollout_ws: Workspace) -> None:  # type: ignore[no-untyped-def]
    rollout_ws.start_rollout("eta", 2, skip_gate=True, reason="test")
    line = one_line_error(cli("compare", "eta", "-w", rollout_ws.path))
    assert "rollout 1 of 'eta' is active" in line and "`pitstop rollout status eta`" in line
    assert EventKind.ROLLOUT_TRANSITION in {e.kind for e in rollout_ws.events("eta")}


def _table(
    version: int, *, shadow: int | None, champion: int = 1, rollout_id: int | None = None
) -> RoutingTable:
    return RoutingTable(
        model="eta",
        version=version,
        champion=champion,
        challenger=shadow,
        challenger_share=0.0,
        shadow=shadow,
        salt="s",
        rollout_id=rollout_id,
        step=None,
        standby=None,
        created_at=START + timedelta(minutes=version),
    )


def test_the_shadow_began_at_the_oldest_table_of_its_unbroken_run() -> None:
    history = [_table(1, shadow=None), _table(2, shadow=3), _table(3, shadow=2), _table(4, shadow=2)]
    assert shadow_start(history) == history[2]
    assert shadow_start([*history, _table(5, shadow=2, champion=4)]) is not None
    assert shadow_start([*history, _table(5, shadow=2, champion=4)]).version == 5  # type: ignore[union-attr]
    assert shadow_start([*history, _table(5, shadow=None)]) is None
    assert shadow_start([*history, _table(5, shadow=2, rollout_id=7)]) is None
    assert shadow_start([]) is None


def test_a_stricter_policy_judges_the_same_shadow_otherwise(rollout_ws: Workspace) -> None:
    shadow_by_hand(rollout_ws, 2)
    send_traffic(rollout_ws, 2, 400, decide=False)
    strict = rollout_ws.path / "strict.yaml"
    strict.write_text("shadow: {min_labeled: 100000}\n")
    by_yaml, by_file = rollout_ws.compare("eta"), rollout_ws.compare("eta", policy=strict)
    assert by_yaml.verdict.rule == "shadow.passed" and by_yaml.policy_source == "pitstop.yaml"
    assert by_file.verdict.rule == "shadow.min_labeled" and by_file.policy_source.startswith("file:")
    assert by_file.progress["required"] == {"pairs": 100000}


def test_report_shadow_writes_what_compare_says_as_a_page_a_browser_draws(  # type: ignore[no-untyped-def]
    cli, rollout_ws: Workspace, tmp_path: Path, artifacts: Path
) -> None:
    shadow_by_hand(rollout_ws, 2)
    send_traffic(rollout_ws, 2, 400, decide=False)
    out = tmp_path / "pages" / "shadow.html"
    result = cli("report", "eta", "--shadow", "--out", out, "-w", rollout_ws.path, "--json")
    assert result.exit_code == 0, result.stderr
    written = json.loads(result.stdout)
    assert written["path"] == str(out) and written["shadow"]["shadow_version"] == 2
    said = compared(cli, rollout_ws)
    page_text = html.unescape(out.read_text())
    assert verdict(said["comparison"], said["progress"]) in page_text  # the words `compare` prints
    assert f"would now: {said['verdict']['action']} ({said['verdict']['rule']})" in page_text
    assert f"{said['evidence']['paired']['n']} labelled pairs" in page_text

    with headless_chromium() as chromium:  # after the traffic: its replay runs its own event loop
        page = chromium.new_page(viewport={"width": 1280, "height": 900})
        watch = PageWatch(page, allowed=("file:", "data:"))
        page.goto(out.as_uri())
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 2")
        charts = page.evaluate(CHART_MARKS)
        assert {c["chart"] for c in charts} == {"progress", "shadow"}
        assert all(c["traces"] > 0 and c["marks"] > 0 for c in charts), charts
        assert "set by hand" in page.inner_text("header")
        page.screenshot(path=str(artifacts / "report-hand-made-shadow.png"), full_page=True)
        page.close()
    assert watch.errors == [] and watch.outside == []


def test_report_shadow_without_one_says_how_to_set_one_and_keeps_flags_apart(  # type: ignore[no-untyped-def]
    cli, rollout_ws: Workspace, tmp_path: Path
) -> None:
    out = tmp_path / "shadow.html"
    line = one_line_error(cli("report", "eta", "--shadow", "--out", out, "-w", rollout_ws.path))
    assert "has no shadow set by hand" in line and not out.exists()
    both = one_line_error(
        cli("report", "eta", "--shadow", "--rollout", "1", "--out", out, "-w", rollout_ws.path)
    )
    assert "--rollout" in both and "--shadow" in both
    alone = one_line_error(cli("report", "eta", "--policy", "strict", "--out", out, "-w", rollout_ws.path))
    assert "--policy" in alone and "add --shadow" in alone
