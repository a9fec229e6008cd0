from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from pitstop.config import Config, database_url, load_config, parse_config, render_default_config
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
