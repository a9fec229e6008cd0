"""Named policies in the store (SQLite and PostgreSQL), and which policy `--policy` / `policy=` means."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from pitstop.clock import ManualClock
from pitstop.config import Policy, parse_policy
from pitstop.errors import ConfigError, NotFoundError, UsageError
from pitstop.events import EventKind
from pitstop.policies import choose, policy_yaml
from pitstop.workspace import Workspace

NOW = datetime(2026, 3, 1, tzinfo=UTC)
WORKSPACE_POLICY = "ab_test: {share: 0.3, alpha: 0.02}\nramp: {dwell: 2h}\n"
STRICT = "ab_test:\n  alpha: 0.01\nramp:\n  steps: [5, 20, 50, 100]\n"


@pytest.fixture
def ws(workspace_dir: Path) -> Iterator[Workspace]:
    (workspace_dir / "pitstop.yaml").write_text(WORKSPACE_POLICY)
    ws = Workspace(workspace_dir, clock=ManualClock(NOW))
    yield ws
    ws.close()


@pytest.fixture
def strict_file(tmp_path: Path) -> Path:
    path = tmp_path / "strict.yaml"
    path.write_text(STRICT)
    return path


def test_a_named_policy_is_the_file_over_pitstop_yaml_validated_and_stored_with_its_text(
    ws: Workspace, strict_file: Path
) -> None:
    named, created = ws.add_policy("strict", strict_file, description="stricter A/B", actor="alice")
    assert created and (named.name, named.revision, named.ref) == ("strict", 1, "strict@1")
    assert named.policy.ab_test.alpha == 0.01 and named.policy.ramp.steps == [5, 20, 50, 100]
    assert named.policy.ab_test.share == 0.3 and named.policy.ramp.dwell == timedelta(hours=2)  # pitstop.yaml
    assert named.policy.shadow == Policy().shadow  # neither names it: the defaults
    assert named.source_text == STRICT and named.sha256 == hashlib.sha256(STRICT.encode()).hexdigest()
    assert (named.created_by, named.created_at, named.description) == ("alice", NOW, "stricter A/B")
    assert ws.get_policy("strict") == named


def test_adding_a_name_again_makes_the_next_revision_and_keeps_the_old_one(
    ws: Workspace, strict_file: Path, tmp_path: Path
) -> None:
    first, _ = ws.add_policy("strict", strict_file, actor="alice")
    stricter = tmp_path / "stricter.yaml"
    stricter.write_text("ab_test:\n  alpha: 0.005\n")
    ws.clock.advance(timedelta(hours=1))  # type: ignore[attr-defined]
    second, created = ws.add_policy("strict", stricter, description="even stricter", actor="bob")
    assert created and second.revision == 2 and second.policy.ab_test.alpha == 0.005
    assert ws.get_policy("strict", 1) == first and ws.get_policy("strict") == second
    [listed] = ws.list_policies()
    assert (listed.ref, listed.revisions, listed.created_by) == ("strict@2", 2, "bob")
    added = [e for e in ws.events() if e.kind == EventKind.POLICY_ADDED]
    assert [(e.actor, e.from_state, e.to_state, e.time) for e in added] == [
        ("alice", None, "strict@1", NOW),
        ("bob", "strict@1", "strict@2", NOW + timedelta(hours=1)),
    ]
    assert added[1].reason == "even stricter" and added[1].data["sha256"] == second.sha256


def test_adding_the_same_policy_text_and_description_again_adds_nothing(
    ws: Workspace, strict_file: Path
) -> None:
    first, _ = ws.add_policy("strict", strict_file, description="x")
    again, created = ws.add_policy("strict", strict_file, description="x")
    assert not created and again == first
    described, created = ws.add_policy("strict", strict_file, description="y")
    assert created and described.revision == 2
    assert len([e for e in ws.events() if e.kind == EventKind.POLICY_ADDED]) == 2


def test_a_policy_object_is_stored_with_its_yaml_as_text(ws: Workspace) -> None:
    policy = Policy.model_validate({"guardrails": {"max_error_ratio": 1.05}})
    named, _ = ws.add_policy("tight", policy)
    assert named.policy == policy
    assert parse_policy(yaml.safe_load(named.source_text), Policy(), "x") == policy


def test_list_shows_the_latest_revision_of_each_name_by_name(ws: Workspace, strict_file: Path) -> None:
    assert ws.list_policies() == []
    for name in ("zeta", "alpha", "zeta"):
        ws.add_policy(name, strict_file, description=name + str(len(ws.list_policies())))
    assert [(p.ref, p.revisions) for p in ws.list_policies()] == [("alpha@1", 1), ("zeta@2", 2)]


def test_unknown_names_and_revisions_say_what_exists(ws: Workspace, strict_file: Path) -> None:
    with pytest.raises(NotFoundError, match="no named policy 'strict'; add one with `pitstop policy add"):
        ws.get_policy("strict")
    ws.add_policy("strict", strict_file)
    with pytest.raises(NotFoundError, match="'strict' has no revision 4; its revisions are 1 to 1"):
        ws.get_policy("strict", 4)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("ab_test:\n  shar: 0.2\n", "ab_test.shar: unknown key"),
        ("serving:\n  poll_interval: 2s\n", "serving: unknown key (a policy holds only gate"),
        ("ramp: {steps: [10, 50]", "not valid YAML at line 1"),
        ("ab_test: {alpha: '0.1'}\n", "ab_test.alpha: Input should be a valid number"),
    ],
)
def test_a_bad_file_is_refused_naming_the_file_and_the_key_and_nothing_is_stored(
    ws: Workspace, tmp_path: Path, text: str, fragment: str
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError) as raised:
        ws.add_policy("strict", bad)
    assert str(raised.value).startswith(f"{bad}: ") and fragment in str(raised.value)
    assert ws.list_policies() == []


def test_a_bad_name_is_refused(ws: Workspace, strict_file: Path) -> None:
    with pytest.raises(UsageError, match="invalid policy name 'Strict'"):
        ws.add_policy("Strict", strict_file)


# -- which policy a rollout starts with (`choose`) ---------------------------------------------------


def test_nothing_chosen_is_pitstop_yaml(ws: Workspace) -> None:
    chosen = choose(ws, None)
    assert (chosen.policy, chosen.source) == (ws.config.policy, "pitstop.yaml")


def test_a_file_is_chosen_over_pitstop_yaml_with_its_path_and_sha256(
    ws: Workspace, strict_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    digest = hashlib.sha256(STRICT.encode()).hexdigest()
    monkeypatch.chdir(strict_file.parent)
    for given in (strict_file, "strict.yaml", str(strict_file)):
        chosen = choose(ws, given)
        assert chosen.source == f"file:{strict_file.resolve()} sha256:{digest}"
        assert chosen.policy.ab_test.alpha == 0.01 and chosen.policy.ab_test.share == 0.3


def test_a_name_is_its_latest_revision_or_the_one_given(ws: Workspace, strict_file: Path) -> None:
    ws.add_policy("strict", strict_file)
    ws.add_policy("strict", Policy())
    assert choose(ws, "strict").source == "policy:strict@2" and choose(ws, "strict").policy == Policy()
    pinned = choose(ws, "strict@1")
    assert pinned.source == "policy:strict@1" and pinned.policy == ws.get_policy("strict", 1).policy
    with pytest.raises(NotFoundError, match="has no revision 3"):
        choose(ws, "strict@3")


def test_a_policy_object_is_chosen_with_the_sha256_of_its_json(ws: Workspace) -> None:
    first = choose(ws, Policy()).source
    assert first.startswith("python sha256:") and choose(ws, Policy()).source == first
    assert choose(ws, Policy.model_validate({"ab_test": {"alpha": 0.01}})).source != first


def test_a_name_that_is_also_a_file_here_is_refused_with_a_hint(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "strict").write_text(STRICT)
    ws.add_policy("strict", tmp_path / "strict")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError) as raised:
        choose(ws, "strict")
    assert raised.value.field == "policy" and raised.value.given == "strict"
    assert "is both a file here and the named policy strict@1" in str(raised.value)
    assert "write ./strict for the file, or strict@1 for the named policy" in str(raised.value)
    assert choose(ws, "./strict").source.startswith("file:")
    assert choose(ws, "strict@1").source == "policy:strict@1"


def test_neither_a_file_nor_a_name_is_refused(ws: Workspace) -> None:
    with pytest.raises(UsageError, match="is neither a file nor a named policy") as raised:
        choose(ws, "strikt")
    assert raised.value.field == "policy" and "pitstop policy list" in str(raised.value)
    with pytest.raises(UsageError, match="no such policy file"):
        choose(ws, Path("missing.yaml"))


def test_the_policy_yaml_reads_back_to_the_same_policy() -> None:
    policy = Policy.model_validate(
        {"ab_test": {"stopping": "fixed", "alpha": 0.01}, "ramp": {"steps": [50, 100]}}
    )
    assert parse_policy(yaml.safe_load(policy_yaml(policy)), Policy(), "x") == policy
