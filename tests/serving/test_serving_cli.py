"""`pitstop serve` checks its options before it loads a model or prints where it listens."""

from __future__ import annotations

import pytest

from helpers import one_line_error
from serving.conftest import Served


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
