"""`pitstop serve` checks its options before it loads a model or prints where it listens; `route` and
`rollout start` refuse a version whose artifact fails verification."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from helpers import one_line_error
from pitstop.errors import ArtifactIntegrityError
from pitstop.rollout.routes import route
from pitstop.routing.store import routing_history
from serving.conftest import MODEL, Served


@pytest.mark.parametrize(
    ("option", "value"),
    [("--port", "99999"), ("--port", "-5"), ("--port", "0"), ("--log-level", "loud"), ("--workers", "0")],
)
def test_a_bad_serve_option_is_one_line_naming_it(cli, served: Served, option: str, value: str) -> None:  # type: ignore[no-untyped-def]
    """A new user found `--port 99999` served on a random port while saying 99999, `--port -5` failed
    after the banner, and `--log-level loud` printed a traceback."""
    result = cli("serve", "-w", str(served.ws.path), option, value)
    line = one_line_error(result)
    assert option in line
    if option == "--log-level":
        assert "'loud' is not one of" in line and "debug" in line
    assert "serving" not in result.stdout + result.stderr.replace(line, "")


def _tamper(served: Served, version: int) -> str:
    """Change the stored artifact of `version` behind the registry's back; returns its recorded sha256."""
    info = served.ws.version(MODEL, version)
    stored = Path(served.ws.artifacts.location(info.artifact_uri))
    stored.write_bytes(stored.read_bytes() + b"tamper")
    return info.sha256


def _stored_state(served: Served) -> tuple[Any, ...]:
    with served.ws.reading() as conn:
        tables = routing_history(conn, served.ws.model(MODEL).id)
    return tuple(tables), tuple(served.ws.rollouts(MODEL)), served.ws.model(MODEL).aliases


@pytest.mark.parametrize(
    "command",
    [
        ("route", MODEL, "--challenger", "2", "--mode", "shadow", "--reason", "try it"),
        ("route", MODEL, "--challenger", "2", "--mode", "split", "--share", "0.5", "--reason", "try it"),
        ("rollout", "start", MODEL, "2", "--skip-gate", "--reason", "hotfix"),
    ],
    ids=["route-shadow", "route-split", "rollout-start-skip-gate"],
)
def test_a_tampered_version_is_refused_and_nothing_stored_changes(
    cli: Any, served: Served, command: tuple[str, ...]
) -> None:
    """`route` and `rollout start --skip-gate` accepted a version whose artifact failed verification
    (exit 0), so every gateway then failed to load it (issue 16, row 4)."""
    expected = _tamper(served, 2)
    before = _stored_state(served)
    result = cli(*command, "-w", str(served.ws.path))
    line = one_line_error(result)
    assert result.exit_code == 2
    assert f"{MODEL} version 2" in line and expected in line and "found sha256" in line
    assert _stored_state(served) == before


def test_the_python_api_refuses_a_version_whose_artifact_is_missing(served: Served) -> None:
    Path(served.ws.artifacts.location(served.ws.version(MODEL, 2).artifact_uri)).unlink()
    with pytest.raises(ArtifactIntegrityError, match="missing"):
        route(served.ws, MODEL, mode="split", challenger=2, share=0.1, reason="t")
    with pytest.raises(ArtifactIntegrityError, match="version 2"):
        served.ws.start_rollout(MODEL, 2, skip_gate=True, reason="t")
    assert served.ws.rollouts(MODEL) == []


def test_an_intact_version_is_still_routed(served: Served) -> None:
    table = route(served.ws, MODEL, mode="shadow", challenger=2, reason="t")
    assert table.shadow == 2
