"""A rollout keeps the policy it started with, says where it came from, and decides by it alone."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pitstop.errors import ConfigError, UsageError
from pitstop.rollout.controller import Controller, read_evidence
from pitstop.rollout.decide import decide
from pitstop.rollout.phases import Action, Phase
from pitstop.rollout.records import active_rollout
from pitstop.rules import Rule
from pitstop.workspace import Workspace
from rollout.conftest import send_traffic

# pitstop.yaml (SHORT_POLICY) passes the shadow after 1 h and 60 labelled pairs; this file asks for more.
STRICTER = "shadow:\n  min_labeled: 5000\n"


@pytest.fixture
def stricter(tmp_path: Path) -> Path:
    path = tmp_path / "stricter.yaml"
    path.write_text(STRICTER)
    return path


def test_a_rollout_started_with_a_stricter_file_decides_by_it_while_pitstop_yaml_says_otherwise(
    rollout_ws: Workspace, stricter: Path
) -> None:
    stored = rollout_ws.start_rollout("eta", 2, skip_gate=True, reason="test", policy=stricter)
    assert stored.policy.shadow.min_labeled == 5000
    assert stored.policy.shadow.max_duration == rollout_ws.config.shadow.max_duration  # pitstop.yaml's 6h
    send_traffic(rollout_ws, hours=1.5, requests=600)  # the controller looks every 10 minutes
    with rollout_ws.reading() as conn:
        now_stored = active_rollout(conn, rollout_ws.model("eta").id)
    assert now_stored is not None and now_stored.state.phase is Phase.SHADOW  # still waiting for pairs
    now = rollout_ws.clock.now()
    evidence = read_evidence(rollout_ws, now_stored, now)
    assert decide(now_stored.state, rollout_ws.config.policy, evidence, now).action is Action.ADVANCE
    waits = decide(now_stored.state, now_stored.policy, evidence, now)
    assert waits.action is Action.STAY and waits.rule == Rule.SHADOW_MIN_LABELED
    [result] = Controller(rollout_ws).tick()
    assert result.decision.action is Action.STAY and result.decision.rule == Rule.SHADOW_MIN_LABELED


def test_the_rollout_records_the_file_it_started_with(rollout_ws: Workspace, stricter: Path) -> None:
    stored = rollout_ws.start_rollout("eta", 2, skip_gate=True, reason="test", policy=stricter)
    digest = hashlib.sha256(STRICTER.encode()).hexdigest()
    source = f"file:{stricter.resolve()} sha256:{digest}"
    assert stored.policy_source == source and stored.to_dict()["policy_source"] == source
    start = [e for e in rollout_ws.events("eta") if e.kind == "rollout_transition"][-1]
    assert start.data["policy_source"] == source
    stricter.write_text("shadow:\n  min_labeled: 10\n")  # a later edit does not reach the running rollout
    assert rollout_ws.rollout_policy("eta").policy.shadow.min_labeled == 5000
    data = rollout_ws.rollout_status("eta").to_dict()
    assert data["policy_source"] == source and data["policy"]["shadow"]["min_labeled"] == 5000


def test_a_rollout_started_with_a_named_policy_keeps_its_revision(
    rollout_ws: Workspace, stricter: Path, tmp_path: Path
) -> None:
    rollout_ws.add_policy("strict", stricter)
    stored = rollout_ws.start_rollout("eta", 2, skip_gate=True, reason="test", policy="strict")
    assert stored.policy_source == "policy:strict@1"
    assert stored.policy == rollout_ws.get_policy("strict", 1).policy
    looser = tmp_path / "looser.yaml"
    looser.write_text("shadow:\n  min_labeled: 100\n")
    rollout_ws.add_policy("strict", looser)  # revision 2: the running rollout stays on revision 1
    assert rollout_ws.rollout_policy("eta").policy.shadow.min_labeled == 5000
    assert rollout_ws.rollout_policy("eta").policy_source == "policy:strict@1"


def test_without_a_policy_the_rollout_takes_pitstop_yaml(rollout_ws: Workspace) -> None:
    stored = rollout_ws.start_rollout("eta", 2, skip_gate=True, reason="test")
    assert stored.policy_source == "pitstop.yaml" and stored.policy == rollout_ws.config.policy


def test_a_bad_policy_starts_nothing(rollout_ws: Workspace, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("ab_test:\n  shar: 0.2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: ab_test.shar: unknown key"):
        rollout_ws.start_rollout("eta", 2, skip_gate=True, reason="test", policy=bad)
    with pytest.raises(UsageError, match="is neither a file nor a named policy"):
        rollout_ws.start_rollout("eta", 2, skip_gate=True, reason="test", policy="nope")
    assert rollout_ws.rollouts("eta") == [] and "challenger" not in rollout_ws.model("eta").aliases
