"""Every table shows a moment one way: ISO 8601 in UTC to the second, `2026-03-01T12:00:05Z`."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from helpers import fit_regression_artifact, write_regression_csv
from pitstop.clock import ManualClock
from pitstop.formats import fmt_time
from pitstop.rollout import routes
from pitstop.workspace import Workspace

START = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)  # a whole second: isoformat() has no fraction
ONE_FORMAT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
# Anything that starts like a date, up to the next space or cell border: the moment as printed.
MOMENT = re.compile(r"\d{4}-\d{2}-\d{2}[T ]?[^\s│]*")


def moments(text: str) -> list[str]:
    return MOMENT.findall(text)


def _with_fractional_times(path: Path, start: str) -> Path:
    """A regression table whose times fall between seconds (`…:07.750`), as real event data does."""
    write_regression_csv(path, rows=100, start=start)
    frame = pd.read_csv(path)
    frame["time"] = pd.to_datetime(frame["time"]) + pd.to_timedelta(frame.index * 7.25, unit="s")
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def routed(workspace_dir: Path, tmp_path: Path) -> Iterator[Workspace]:
    """Model `eta` (v1 champion, v2 gated) built on a whole second; then routed by hand between seconds.

    The routing and its events carry microseconds; the model, dataset and alias events do not, so a
    table that printed `isoformat()` mixed `…:00Z` and `…:02.250000Z` in one column.
    """
    clock = ManualClock(START)
    ws = Workspace(workspace_dir, clock=clock)
    train = _with_fractional_times(tmp_path / "train.csv", "2026-01-01")
    ws.add_dataset("train", train, time_column="time")
    ws.add_dataset("test", _with_fractional_times(tmp_path / "test.csv", "2026-02-20"), time_column="time")
    ws.create_model(
        "eta", task="regression", target="y", features="all", time_column="time", id_columns=["user_id"]
    )
    for version in (1, 2):
        ws.register(
            "eta", fit_regression_artifact(train, tmp_path / f"m{version}.joblib"), train_data="train"
        )
    ws.set_champion("eta", 1, reason="bootstrap")
    ws.gate("eta", 2, test_set="test")
    clock.advance(timedelta(seconds=2.25))
    routes.route(ws, "eta", mode="shadow", challenger=2, reason="shadow v2 by hand")
    clock.advance(timedelta(seconds=1.5))
    routes.route(ws, "eta", mode="off", reason="done looking")
    clock.advance(timedelta(seconds=0.125))
    ws.start_rollout("eta", 2, skip_gate=True, reason="test")
    yield ws
    ws.close()


@pytest.mark.parametrize(
    "command",
    [
        ["route", "eta"],
        ["rollout", "history", "eta"],
        ["rollout", "list", "eta"],
        ["models", "list", "eta"],
        ["models", "show", "eta", "2"],
        ["dataset", "list"],
        ["dataset", "show", "train"],
    ],
    ids=" ".join,
)
def test_every_table_shows_moments_in_one_format(cli, routed: Workspace, command: list[str]) -> None:  # type: ignore[no-untyped-def]
    shown = cli(*command, "-w", routed.path).stdout
    found = moments(shown)
    assert found, shown
    assert [m for m in found if not ONE_FORMAT.fullmatch(m)] == []


@pytest.mark.parametrize(
    "command", [["gate", "eta", "2", "--test-set", "test"], ["models", "show", "eta", "2"]]
)
def test_the_gates_overlap_check_shows_its_moments_like_the_tables(
    cli, routed: Workspace, command: list[str]
) -> None:  # type: ignore[no-untyped-def]
    """Observed and threshold are ISO text in the gate's JSON; the explanation beside them (`test set
    starts 2026-02-20 00:00, …`) is a sentence, not a table value."""
    shown = cli(*command, "-w", routed.path).stdout
    lines = shown.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("│ temporal_overlap"))
    row = lines[at]
    if command[0] == "gate":  # observed over threshold in one column (the table fits 80 columns)
        observed, threshold = (line.split("│")[2].strip() for line in lines[at : at + 2])
    else:
        observed, threshold = (cell.strip() for cell in row.split("│")[3:5])
    assert ONE_FORMAT.fullmatch(observed) and ONE_FORMAT.fullmatch(threshold), row


def test_route_shows_a_table_made_between_seconds_to_the_second(cli, routed: Workspace) -> None:  # type: ignore[no-untyped-def]
    shown = cli("route", "eta", "-w", routed.path).stdout
    assert "2026-03-01T12:00:03Z" in shown  # routed off at 12:00:03.750: shown to the second, not rounded


def test_history_times_read_like_the_routing_table(cli, routed: Workspace) -> None:  # type: ignore[no-untyped-def]
    shown = cli("rollout", "history", "eta", "-w", routed.path).stdout
    times = moments(shown)
    assert "2026-03-01T12:00:00Z" in times and "2026-03-01T12:00:02Z" in times
    assert {len(m) for m in times} == {len("2026-03-01T12:00:00Z")}


def test_json_keeps_every_moment_whole(cli, routed: Workspace) -> None:  # type: ignore[no-untyped-def]
    routing = json.loads(cli("route", "eta", "--json", "-w", routed.path).stdout)
    assert routing["created_at"] == "2026-03-01T12:00:03.875000+00:00"
    events = json.loads(cli("rollout", "history", "eta", "--json", "-w", routed.path).stdout)
    assert "2026-03-01T12:00:02.250000+00:00" in [e["time"] for e in events]


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC),
        datetime(2026, 3, 1, 12, 0, 5, 996971, tzinfo=UTC),
        datetime(2026, 3, 1, 12, 0, 5),  # naive: UTC, as the store keeps it
        datetime(2026, 3, 1, 13, 0, 5, tzinfo=timezone(timedelta(hours=1))),
        pd.Timestamp("2026-03-01T12:00:05.123456789Z"),
        "2026-03-01T12:00:05+00:00",
        "2026-03-01T12:00:05.750000+00:00",
        "2026-03-01T12:00:05Z",
        "2026-03-01 12:00:05.123456789+00:00",
        "2026-03-01T14:00:05+02:00",
    ],
    ids=repr,
)
def test_fmt_time_shows_any_moment_as_utc_to_the_second(value: object) -> None:
    assert fmt_time(value) == "2026-03-01T12:00:05Z"


def test_fmt_time_leaves_other_values_alone() -> None:
    assert [fmt_time(v) for v in (None, "all present", 30.0, "2026-13-45T99:99")] == [
        "-",
        "all present",
        "30.0",
        "2026-13-45T99:99",
    ]
