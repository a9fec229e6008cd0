"""Bad notification settings fail where they are read, naming the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from notify.conftest import NotifyWorkspace, Receiver, cloudevents_receiver
from pitstop.config import parse_config
from pitstop.errors import ConfigError


def settings(receivers: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"notifications": {"receivers": receivers, **extra}}


@pytest.mark.parametrize(
    ("receivers", "key", "message"),
    [
        ([{"name": "a"}], "notifications.receivers.0: url", "needs one (or url_env"),
        ([{"name": "a", "url": "http://x", "url_env": "A_URL"}], "receivers.0: url", "keep one"),
        ([{"name": "a", "url": "http://x", "format": "teams"}], "notifications.receivers.0.format", "slack"),
        ([{"name": "a", "url": "hooks.example.com"}], "notifications.receivers.0.url", "http(s) URL"),
        (
            [{"name": "a", "url": "http://x", "secret_env": "s3cr3t-value"}],
            "receivers.0.secret_env",
            "does not",
        ),
        ([{"name": "a", "url": "http://x", "events": ["Promoted!"]}], "receivers.0.events", "not a topic"),
        (
            [{"name": "a", "url": "http://x", "color": "red"}],
            "notifications.receivers.0.color",
            "unknown key",
        ),
        (
            [{"name": "a", "url": "http://x"}, {"name": "a", "url": "http://y"}],
            "notifications",
            "a is used twice",
        ),
    ],
)
def test_a_bad_receiver_is_named(receivers: list[dict[str, Any]], key: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(settings(receivers))
    assert key in str(raised.value) and message in str(raised.value)


def test_a_report_url_with_an_unknown_field_is_refused() -> None:
    with pytest.raises(
        ConfigError, match=r"notifications.report_url: may hold only \{model\} and \{rollout\}"
    ):
        parse_config(settings([], report_url="https://x/{version}"))


def test_a_filter_that_matches_no_topic_is_refused_when_sending(
    notify_ws: NotifyWorkspace, receiver: Receiver
) -> None:
    ws = notify_ws([cloudevents_receiver(receiver, events=["promted"])])
    with pytest.raises(ConfigError, match=r"notifications.receivers.0.events: 'promted' matches no topic"):
        ws.send_notifications()


def test_the_cli_names_the_key_of_a_receiver_without_url(workspace_dir: Path, cli: Any) -> None:
    (workspace_dir / "pitstop.yaml").write_text(yaml.safe_dump(settings([{"name": "hooks"}])))
    result = cli("notify", "log", "-w", workspace_dir)
    assert result.exit_code == 2
    assert "notifications.receivers.0: url: receiver 'hooks' needs one" in result.stderr
