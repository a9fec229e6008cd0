from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from helpers import one_line_error
from pitstop.config import (
    Config,
    Policy,
    database_url,
    load_config,
    parse_config,
    parse_policy,
    render_default_config,
)
from pitstop.durations import format_duration, parse_duration
from pitstop.errors import ConfigError


def test_default_file_holds_every_default_and_round_trips() -> None:
    text = render_default_config()
    assert parse_config(yaml.safe_load(text)) == Config()
    for key in (
        "max_metric_ratio: 1.05",
        "leakage_ratio: 0.5",
        "max_test_set_age: 30d",
        "min_duration: 1d",
        "max_duration: 14d",
        "max_error_ratio: 1.15",
        "max_p99_ratio: 1.5",
        "steps: [10.0, 25.0, 50.0, 100.0]",
        "alpha: 0.05",
    ):
        assert key in text


def test_every_key_has_a_comment() -> None:
    for line in render_default_config().splitlines():
        if ":" in line and not line.lstrip().startswith("#") and not line.rstrip().endswith(":"):
            assert "  # " in line, line


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"gate": {"max_metric_ratio": 0}}, "gate.max_metric_ratio"),
        ({"gate": {"max_metric_ratio": -1.0}}, "greater than 0"),
        ({"ab_test": {"share": 1.5}}, "ab_test.share"),
        ({"ab_test": {"share": 0}}, "ab_test.share"),
        ({"ramp": {"steps": [10, 50, 25, 100]}}, "strictly increasing"),
        ({"ramp": {"steps": [10, 25, 50]}}, "must end at 100"),
        ({"gate": {"max_test_set_age": "soon"}}, "not a duration"),
        ({"shadow": {"min_labeled": "many"}}, "shadow.min_labeled"),
        ({"gaet": {}}, "gaet: unknown key"),
        ({"gate": {"max_ratio": 1.1}}, "gate.max_ratio: unknown key"),
        ({"gate": {"single_feature_ratio": 1.0}}, "single_feature_ratio must be below 1"),
        ({"gate": {"trusted_features": "prep_minutes"}}, "gate.trusted_features"),
        ({"ab_test": {"method": "mann_whitney"}}, "mann_whitney needs stopping: fixed"),
    ],
)
def test_bad_config_names_the_key_and_rule(data: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError, match=None) as raised:
        parse_config(data)
    assert fragment in str(raised.value)


def test_durations_parse_and_format() -> None:
    assert parse_duration("30s") == timedelta(seconds=30)
    assert parse_duration("15m") == timedelta(minutes=15)
    assert parse_duration("24h") == timedelta(days=1)
    assert parse_duration("14d") == timedelta(days=14)
    assert parse_duration("250ms") == timedelta(milliseconds=250)
    assert format_duration(parse_duration("36h")) == "36h"
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("3 fortnights")


def test_yaml_durations_are_validated(tmp_path: Path) -> None:
    (tmp_path / "pitstop.yaml").write_text("shadow:\n  min_duration: 2h\n  max_duration: 1h\n")
    with pytest.raises(ConfigError, match="max_duration must not be shorter"):
        load_config(tmp_path / "pitstop.yaml")


def test_shadow_test_diebold_mariano_is_refused_naming_the_replacement() -> None:
    with pytest.raises(ConfigError, match=r"diebold_mariano is removed.*use paired_t") as raised:
        parse_config({"shadow": {"test": "diebold_mariano"}})
    assert "shadow" in str(raised.value)


def test_not_yaml_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "pitstop.yaml").write_text("gate: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "pitstop.yaml")


def test_database_url_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PITSTOP_DATABASE_URL", raising=False)
    assert database_url(Config(), tmp_path) == f"sqlite:///{tmp_path.resolve()}/.pitstop/pitstop.db"
    configured = Config(database_url="sqlite:///elsewhere.db")
    assert database_url(configured, tmp_path) == "sqlite:///elsewhere.db"
    monkeypatch.setenv("PITSTOP_DATABASE_URL", "postgresql://db/x")
    assert database_url(configured, tmp_path) == "postgresql://db/x"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("gate:\n  min_r2: true\n", "gate.min_r2: Input should be a valid number, got true"),
        ('gate:\n  min_r2: "0.5"\n', "gate.min_r2: Input should be a valid number, got '0.5'"),
        ("gate:\n  max_metric_ratio: yes\n", "gate.max_metric_ratio"),
        ("shadow:\n  min_labeled: 200.0\n", "shadow.min_labeled: Input should be a valid integer"),
        ('shadow:\n  min_labeled: "200"\n', "shadow.min_labeled"),
        ("ramp:\n  steps: 10, 100\n", "ramp.steps: Input should be a valid list"),
        ("shadow:\n  test: 1\n", "shadow.test: Input should be a valid string"),
        ("database_url: 5\n", "database_url"),
    ],
)
def test_a_wrong_type_fails_naming_the_key(tmp_path: Path, text: str, fragment: str) -> None:
    (tmp_path / "pitstop.yaml").write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_config(tmp_path / "pitstop.yaml")
    assert fragment in str(raised.value)


def test_durations_and_enums_still_parse_from_their_names(tmp_path: Path) -> None:
    (tmp_path / "pitstop.yaml").write_text(
        "gate: {max_test_set_age: 2w, max_metric_ratio: 1}\n"
        "ab_test: {method: welch, stopping: fixed, label_maturation: 0s}\n"
        "guardrails: {latency_slack: 2.5ms}\n"
    )
    config = load_config(tmp_path / "pitstop.yaml")
    assert config.gate.max_test_set_age == timedelta(weeks=2) and config.gate.max_metric_ratio == 1.0
    assert (config.ab_test.method, config.ab_test.stopping) == ("welch", "fixed")
    assert config.ab_test.label_maturation == timedelta(0)
    assert config.guardrails.latency_slack == timedelta(microseconds=2500)


@pytest.mark.parametrize(
    "key",
    [
        "gate.max_test_set_age",
        "shadow.max_duration",
        "ab_test.max_duration",
        "serving.poll_interval",
        "serving.shadow_timeout",
        "serving.log_flush_interval",
        "controller.interval",
        "controller.lease_ttl",
    ],
)
def test_zero_is_refused_where_a_duration_must_be_positive(key: str) -> None:
    section, name = key.split(".")
    with pytest.raises(ConfigError, match=rf"{key}: must be longer than zero, got '0s'"):
        parse_config({section: {name: "0s"}})


@pytest.mark.parametrize("value", [30, 1.5, "30", "-5s", "3 fortnights", "1y"])
def test_a_duration_needs_a_known_unit(value: object) -> None:
    with pytest.raises(ConfigError, match=r"gate\.max_test_set_age: not a duration"):
        parse_config({"gate": {"max_test_set_age": value}})


def test_stored_policies_still_validate() -> None:
    """Rollouts store their policy as JSON; the strict types must read it back."""
    config = Config()
    assert parse_config(config.model_dump(mode="json")) == config


def test_yaml_syntax_error_is_one_line_with_the_position(cli, workspace_dir: Path) -> None:  # type: ignore[no-untyped-def]
    (workspace_dir / "pitstop.yaml").write_text("gate:\n  min_r2: [0.5\n")
    result = cli("models", "list", "-w", workspace_dir)
    assert result.exit_code == 2
    assert "not valid YAML at line 3, column 1: expected ',' or ']'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_wrong_type_through_the_cli_is_one_line(cli, workspace_dir: Path) -> None:  # type: ignore[no-untyped-def]
    (workspace_dir / "pitstop.yaml").write_text("gate:\n  min_r2: true\n")
    result = cli("models", "list", "-w", workspace_dir)
    assert result.exit_code == 2 and "gate.min_r2" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_config_file_that_is_not_utf8_is_one_line_naming_it(cli, workspace_dir: Path) -> None:  # type: ignore[no-untyped-def]
    config = workspace_dir / "pitstop.yaml"
    config.write_bytes(b"\xff\xfe")
    line = one_line_error(cli("models", "list", "-w", workspace_dir))
    assert f"{config}: not UTF-8 text" in line and "save it as UTF-8" in line


def test_a_folder_in_place_of_the_config_file_is_one_line_naming_it(cli, workspace_dir: Path) -> None:  # type: ignore[no-untyped-def]
    config = workspace_dir / "pitstop.yaml"
    config.unlink()
    config.mkdir()
    line = one_line_error(cli("models", "list", "-w", workspace_dir))
    assert f"{config}: cannot read it" in line and "readable YAML file" in line


def test_an_unreadable_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read it"):
        load_config(tmp_path)  # a folder where the file should be: what an unreadable file also gives


@pytest.mark.parametrize(
    ("url", "fragment"),
    [("::nope", "not a valid SQLAlchemy URL"), ("mysql://db/x", "unsupported database 'mysql'")],
)
def test_a_bad_database_url_in_the_environment_is_named_as_such(
    cli,  # type: ignore[no-untyped-def]
    workspace_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    url: str,
    fragment: str,
) -> None:
    monkeypatch.setenv("PITSTOP_DATABASE_URL", url)
    line = one_line_error(cli("models", "list", "-w", workspace_dir))
    assert line.startswith(f"error: PITSTOP_DATABASE_URL: {fragment}")


# -- a policy file over pitstop.yaml (`parse_policy`) -----------------------------------------------

BASE = Policy.model_validate(
    {"ab_test": {"share": 0.3, "alpha": 0.02}, "shadow": {"min_duration": "2h", "max_duration": "1d"}}
)


def test_a_policy_file_overrides_the_base_key_by_key() -> None:
    policy = parse_policy({"ab_test": {"alpha": 0.01}, "ramp": {"steps": [5, 100]}}, BASE, "p.yaml")
    assert policy.ab_test.alpha == 0.01  # named by the file
    assert policy.ab_test.share == 0.3  # the same section, not named: the base's
    assert policy.shadow == BASE.shadow  # a section the file leaves out: the base's
    assert policy.ramp.steps == [5, 100]  # a list is replaced whole
    assert policy.ramp.dwell == BASE.ramp.dwell
    assert parse_policy(None, BASE, "empty.yaml") == BASE  # an empty file changes nothing


def test_a_policy_file_is_checked_together_with_the_base() -> None:
    """A file shortening shadow.max_duration below the base's min_duration is refused; the same key
    over a base that allows it is not, though the defaults alone would refuse it (1d minimum)."""
    with pytest.raises(ConfigError, match=r"p.yaml: shadow: max_duration must not be shorter"):
        parse_policy({"shadow": {"max_duration": "1h"}}, BASE, "p.yaml")
    assert parse_policy({"shadow": {"max_duration": "3h"}}, BASE, "p.yaml").shadow.max_duration == timedelta(
        hours=3
    )


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"ab_test": {"shar": 0.2}}, "p.yaml: ab_test.shar: unknown key"),
        ({"serving": {"poll_interval": "2s"}}, "p.yaml: serving: unknown key (a policy holds only gate, "),
        ({"database_url": "sqlite://"}, "p.yaml: database_url: unknown key"),
        ({"ab_test": {"alpha": "0.1"}}, "p.yaml: ab_test.alpha: Input should be a valid number, got '0.1'"),
        ({"ab_test": 0.1}, "p.yaml: ab_test: Input should be a valid dictionary or instance of ABTestPolicy"),
        ([1, 2], "p.yaml: must be a mapping of policy sections"),
    ],
)
def test_a_bad_policy_file_names_the_file_and_the_key(data: object, fragment: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_policy(data, BASE, "p.yaml")
    assert fragment in str(raised.value) and "\n" not in str(raised.value)


def test_a_kubernetes_api_timeout_that_with_the_interval_outlasts_the_lease_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"kubernetes.api_timeout \(20s\) plus controller.interval \(10s\)"):
        parse_config({"routing": {"provider": "kubernetes"}, "kubernetes": {"api_timeout": "20s"}})
    parse_config(
        {
            "routing": {"provider": "kubernetes"},
            "controller": {"lease_ttl": "1m"},
            "kubernetes": {"api_timeout": "30s"},
        }
    )
    parse_config({"kubernetes": {"api_timeout": "30s"}})  # the gateways route: no Kubernetes API is called
