"""`pitstop rollout status` and `history` as a person reads them: the live comparison, labelled units
against what the phase needs, the ramp step as stored, and the numbers behind every decision."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pitstop.formats import MAX_KEY_NUMBERS, key_numbers
from pitstop.workspace import Workspace
from rollout.conftest import send_traffic


def status(cli, ws: Workspace) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    result = cli("rollout", "status", "eta", "--json", "-w", ws.path)
    assert result.exit_code == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def shown(cli, ws: Workspace) -> str:  # type: ignore[no-untyped-def]
    result = cli("rollout", "status", "eta", "-w", ws.path)
    assert result.exit_code == 0, result.stderr
    text: str = result.stdout
    return text


def test_shadow_status_compares_both_models_on_the_same_requests(cli, rollout_ws: Workspace) -> None:  # type: ignore[no-untyped-def]
    rollout_ws.start_rollout("eta", 2, skip_gate=True, reason="test")
    send_traffic(rollout_ws, 0.5, 200, decide=False)
    data = status(cli, rollout_ws)
    paired, comparison = data["evidence"]["paired"], data["comparison"]
    assert comparison["error_ratio"] == pytest.approx(paired["challenger_mean"] / paired["champion_mean"])
    assert comparison["test"] == "paired_t" and comparison["p_value"] < 0.001  # an exact fit vs offset 1
    assert comparison["failure_rate"] == {"champion": 0.0, "challenger": 0.0}
    assert data["evidence"]["shadow"]["failure_rate"] == 0.0
    assert data["progress"] == {
        "unit": "labelled pairs",
        "labelled": {"pairs": paired["n"]},
        "required": {"pairs": 60},
    }
    text = shown(cli, rollout_ws)
    assert f"challenger/champion error {comparison['error_ratio']:.3f} (same {paired['n']} requests)" in text
    assert f"paired_t p = {comparison['p_value']:.3g}" in text
    assert "failure rate 0.0% vs 0.0%" in text
    assert f"labelled pairs: {paired['n']} of 60" in text


def test_ab_status_counts_labelled_users_against_the_planned_sample(cli, rollout_ws: Workspace) -> None:  # type: ignore[no-untyped-def]
    rollout_ws.start_rollout("eta", 2, skip_gate=True, reason="test")
    send_traffic(rollout_ws, 0.5, 200, decide=False)  # labelled pairs to plan the A/B test with
    plan = rollout_ws.promote("eta", reason="plan from the pairs").state.plan
    assert plan is not None
    send_traffic(rollout_ws, 1, 400, decide=False)
    data = status(cli, rollout_ws)
    progress, evidence, comparison = data["progress"], data["evidence"], data["comparison"]
    assert progress["unit"] == "labelled users"
    assert progress["required"] == {"champion": plan.n_champion, "challenger": plan.n_challenger}
    users = progress["labelled"]["challenger"]
    assert users == evidence["challenger"]["labelled_users"]
    assert 0 < users < evidence["challenger"]["labelled"]  # users, not their requests
    assert comparison["test"] == "msprt"
    assert comparison["p_value"] == data["next_check"]["numbers"]["sequential"]["p_value"]
    ratio = evidence["challenger"]["error_mean"] / evidence["champion"]["error_mean"]
    assert comparison["error_ratio"] == pytest.approx(ratio)
    text = shown(cli, rollout_ws)
    assert (
        f"labelled users: challenger {users} of {plan.n_challenger}, "
        f"champion {progress['labelled']['champion']} of {plan.n_champion}"
    ) in text
    assert f"challenger/champion error {ratio:.3f}:" in text and "msprt p = " in text


def test_at_full_share_the_champion_is_compared_in_shadow(cli, rollout_ws: Workspace) -> None:  # type: ignore[no-untyped-def]
    rollout_ws.start_rollout("eta", 2, skip_gate=True, reason="test")
    for why in ("to A/B", "to 75 %", "to 100 %"):
        rollout_ws.promote("eta", reason=why)
    send_traffic(rollout_ws, 0.5, 200, decide=False)
    data = status(cli, rollout_ws)
    champion = data["evidence"]["shadow"]  # serves nobody: scored in shadow on the same requests
    assert data["evidence"]["champion"]["requests"] == 0 and champion["requests"] > 0
    assert data["comparison"]["champion_error"] == pytest.approx(champion["error_mean"])
    assert data["progress"]["labelled"]["champion"] == champion["labelled"]
    assert data["progress"]["required"] == {"champion": 30, "challenger": 30}


def test_the_ramp_step_reads_the_same_in_json_and_text_also_once_ended(cli, rollout_ws: Workspace) -> None:  # type: ignore[no-untyped-def]
    rollout_ws.start_rollout("eta", 2, skip_gate=True, reason="test")
    for why in ("to A/B", "to 75 %", "to 100 %"):
        rollout_ws.promote("eta", reason=why)
    data = status(cli, rollout_ws)
    assert (data["phase"], data["step"], data["challenger_share"]) == ("ramp", 1, 1.0)
    assert "phase ramp step 1, challenger share 100%" in shown(cli, rollout_ws)
    rollout_ws.abort("eta", reason="drill over")
    data = status(cli, rollout_ws)
    assert (data["phase"], data["step"], data["stage"]) == ("done", 1, "ramp")
    text = shown(cli, rollout_ws)
    assert "aborted at ramp step 1: drill over" in text and "step 2" not in text
    assert data["comparison"] is None and data["progress"] is None


def test_history_shows_the_numbers_of_shadow_and_ab_decisions(cli, rollout_ws: Workspace) -> None:  # type: ignore[no-untyped-def]
    rollout_ws.start_rollout("eta", 2, skip_gate=True, reason="test")
    send_traffic(rollout_ws, 2.5, 1000)  # shadow passes after 1 h, the A/B test is won after 2 h
    events = {e.rule: e for e in rollout_ws.events("eta") if e.kind == "rollout_transition"}
    shadow, ab = key_numbers(events["shadow.passed"].data), key_numbers(events["ab.win"].data)
    assert shadow.startswith("ratio=") and "test p=" in shadow and "labelled_pairs=" in shadow
    assert ab.startswith("error_ratio=") and "sequential p=" in ab and "srm p=" in ab
    units = events["ab.win"].data["units"]
    assert f"units={units['challenger']}/{units['champion']}" in ab
    table = cli("rollout", "history", "eta", "-w", rollout_ws.path).stdout
    assert f"units={units['challenger']}/{units['champion']}" in table


def test_history_numbers_put_the_rule_first_and_stay_short() -> None:
    many = {f"n{i}": i for i in range(20)} | {"ratio": 1.2345678, "test": {"p_value": 0.0123, "n": 9}}
    numbers = key_numbers(many).split(", ")
    assert numbers[:2] == ["ratio=1.23", "test p=0.0123"]
    assert len(numbers) == MAX_KEY_NUMBERS
    assert key_numbers(None) == "" and key_numbers({"flag": True, "name": "x", "elapsed_hours": 3.0}) == ""


def test_a_rollout_recording_the_retired_diebold_mariano_test_stays_readable(
    cli, rollout_ws: Workspace
) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import update

    from pitstop.store.tables import rollouts

    started = rollout_ws.start_rollout("eta", 2, skip_gate=True, reason="test")
    with rollout_ws.writing() as conn:
        policy = conn.execute(rollouts.select()).one().policy
        recorded = {**policy, "shadow": {**policy["shadow"], "test": "diebold_mariano"}}
        conn.execute(update(rollouts).values(policy=recorded))
    data = status(cli, rollout_ws)
    assert data["rollout_id"] == started.state.id and data["phase"] == "shadow"
