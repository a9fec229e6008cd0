"""`pitstop policy add/list/show`, `rollout start --policy`, `rollout policy` and the status's source."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from helpers import one_line_error
from pitstop.config import Policy, parse_policy
from pitstop.workspace import Workspace

STRICT = "ab_test:\n  alpha: 0.01\nshadow:\n  min_labeled: 5000\n"


@pytest.fixture
def strict_file(tmp_path: Path) -> Path:
    path = tmp_path / "strict.yaml"
    path.write_text(STRICT)
    return path


def test_policy_add_list_and_show(cli, rollout_ws: Workspace, strict_file: Path) -> None:  # type: ignore[no-untyped-def]
    w = ("-w", rollout_ws.path)
    added = cli("policy", "add", "strict", strict_file, "--description", "stricter", "--by", "alice", *w)
    assert added.exit_code == 0, added.stderr
    assert "added policy strict@1" in added.stdout and "--policy strict" in added.stdout
    again = cli("policy", "add", "strict", strict_file, "--description", "stricter", "--json", *w)
    assert again.exit_code == 0 and json.loads(again.stdout)["created"] is False
    changed = cli("policy", "add", "strict", strict_file, "--json", *w)  # no description now: revision 2
    assert json.loads(changed.stdout)["revision"] == 2

    listed = cli("policy", "list", *w)
    assert listed.exit_code == 0 and "strict" in listed.stdout and "2 of 2" in listed.stdout
    [entry] = json.loads(cli("policy", "list", "--json", *w).stdout)
    assert (entry["name"], entry["revision"], entry["revisions"]) == ("strict", 2, 2)

    shown = cli("policy", "show", "strict", "--revision", "1", *w)
    assert shown.exit_code == 0, shown.stderr
    assert shown.stdout.startswith("# policy strict@1, added ") and "by alice" in shown.stdout
    policy = parse_policy(yaml.safe_load(shown.stdout), Policy(), "shown")  # the whole policy, re-readable
    assert policy == rollout_ws.get_policy("strict", 1).policy and policy.ab_test.alpha == 0.01
    text = cli("policy", "show", "strict", "--text", *w)
    assert text.stdout.endswith(STRICT)
    data = json.loads(cli("policy", "show", "strict", "--json", *w).stdout)
    assert data["source"] == "policy:strict@2" and data["policy"]["shadow"]["min_labeled"] == 5000


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("ab_test:\n  shar: 0.2\n", "ab_test.shar: unknown key"),
        ("controller:\n  interval: 1s\n", "controller: unknown key (a policy holds only gate, shadow"),
        ("ramp:\n  steps: [10, 50]\n", "ramp: steps must end at 100"),
        ("ab_test: [1\n", "not valid YAML at line"),
    ],
)
def test_a_bad_policy_file_is_one_line_naming_the_file_and_the_key(  # type: ignore[no-untyped-def]
    cli, rollout_ws: Workspace, tmp_path: Path, text: str, fragment: str
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    w = ("-w", rollout_ws.path)
    start = ("rollout", "start", "eta", "2", "--skip-gate", "--reason", "t")
    for result in (cli("policy", "add", "strict", bad, *w), cli(*start, "--policy", bad, *w)):
        line = one_line_error(result)
        assert str(bad) in line and fragment in line, line
    assert rollout_ws.list_policies() == [] and rollout_ws.rollouts("eta") == []


def test_unknown_names_are_one_line_errors(cli, rollout_ws: Workspace) -> None:  # type: ignore[no-untyped-def]
    w = ("-w", rollout_ws.path)
    assert "no named policy 'nope'" in one_line_error(cli("policy", "show", "nope", *w))
    line = one_line_error(
        cli("rollout", "start", "eta", "2", "--skip-gate", "--reason", "t", "--policy", "nope", *w)
    )
    assert line.startswith("error: --policy nope: is neither a file nor a named policy")
    assert "invalid policy name" in one_line_error(cli("policy", "add", "Nope", "x.yaml", *w))
    assert "no such policy file" in one_line_error(cli("policy", "add", "nope", "missing.yaml", *w))


def test_rollout_start_with_a_file_shows_its_source_in_status_and_policy(  # type: ignore[no-untyped-def]
    cli, rollout_ws: Workspace, strict_file: Path
) -> None:
    w = ("-w", rollout_ws.path)
    started = cli("rollout", "start", "eta", "2", "--skip-gate", "--reason", "t", "--policy", strict_file, *w)
    assert started.exit_code == 0, started.stderr
    source = rollout_ws.rollouts("eta")[-1].policy_source
    assert source.startswith(f"file:{strict_file.resolve()} sha256:")
    assert f"policy from {source[: -64 + 12]}…" in " ".join(started.stdout.split())  # sha256 cut to 12

    status = json.loads(cli("rollout", "status", "eta", "--json", *w).stdout)
    assert status["policy_source"] == source and status["policy"]["ab_test"]["alpha"] == 0.01
    assert status["policy"]["ab_test"]["share"] == 0.5  # not in the file: pitstop.yaml's (SHORT_POLICY)
    assert status["policy"]["gate"]["min_r2"] == 0.5  # in neither: the default
    human = cli("rollout", "status", "eta", *w)
    assert f"policy from {source[: -64 + 12]}…" in " ".join(human.stdout.split())

    shown = cli("rollout", "policy", "eta", *w)
    assert shown.exit_code == 0 and shown.stdout.startswith(f"# policy of eta rollout 1, from {source}\n")
    assert parse_policy(yaml.safe_load(shown.stdout), Policy(), "x") == rollout_ws.rollouts("eta")[-1].policy
    data = json.loads(cli("rollout", "policy", "eta", "--rollout", "1", "--json", *w).stdout)
    assert data["policy_source"] == source and data["policy"]["shadow"]["min_labeled"] == 5000


def test_rollout_start_with_a_named_policy_and_an_ambiguous_name(  # type: ignore[no-untyped-def]
    cli, rollout_ws: Workspace, strict_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = ("-w", rollout_ws.path)
    rollout_ws.add_policy("strict", strict_file)
    (tmp_path / "strict").write_text("ab_test:\n  alpha: 0.02\n")
    monkeypatch.chdir(tmp_path)
    start = ("rollout", "start", "eta", "2", "--skip-gate", "--reason", "t", "--json")
    line = one_line_error(cli(*start, "--policy", "strict", *w))
    assert "--policy strict: is both a file here and the named policy strict@1" in line
    assert "write ./strict for the file, or strict@1 for the named policy" in line
    started = cli(*start, "--policy", "strict@1", *w)
    assert started.exit_code == 0, started.stderr
    assert json.loads(started.stdout)["policy_source"] == "policy:strict@1"
    human = cli("rollout", "status", "eta", *w)
    assert "policy from policy:strict@1" in human.stdout


def test_rollout_policy_without_a_rollout_is_one_line(cli, rollout_ws: Workspace) -> None:  # type: ignore[no-untyped-def]
    assert "has no rollout yet" in one_line_error(cli("rollout", "policy", "eta", "-w", rollout_ws.path))
