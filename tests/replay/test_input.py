"""Bad input to `pitstop simulate` and `pitstop.replay`: one line naming what is wrong, exit 2, no
traceback, and no replay folder left behind."""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from helpers import make_traffic, one_line_error
from pitstop.errors import UsageError
from pitstop.replay import prepare_traffic, simulate
from pitstop.workspace import Workspace


@pytest.fixture
def temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the CLI's temporary replay folders go, to check that none is left."""
    folder = tmp_path / "temp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def traffic(path: Path, frame: pd.DataFrame | None = None) -> Path:
    (make_traffic("2026-03-01T00:00:00+00:00", 1, 40) if frame is None else frame).to_csv(path, index=False)
    return path


def run(cli: Any, ws: Workspace, source: Path, *extra: object) -> Any:
    return cli("simulate", "eta", "--champion", "1", "--challenger", "2", "--traffic", source, *extra,
               "-w", ws.path)  # fmt: skip


def one_line_replay_error(result: Any) -> str:
    """One `error: …` line, and the replay never started."""
    line = one_line_error(result)
    assert "replaying" not in result.stdout
    return line


def test_a_label_that_is_not_a_number_names_its_row_and_value(
    cli: Any, rollout_ws: Workspace, tmp_path: Path, temp: Path
) -> None:
    frame = make_traffic("2026-03-01T00:00:00+00:00", 1, 40).astype({"label": object})
    frame.loc[4, "label"] = "abc"
    line = one_line_replay_error(run(cli, rollout_ws, traffic(tmp_path / "t.csv", frame)))
    assert "label" in line and "row 5" in line and "'abc'" in line
    assert list(temp.iterdir()) == []


def test_a_label_that_is_not_finite_is_refused() -> None:
    frame = make_traffic("2026-03-01T00:00:00+00:00", 1, 10)
    frame.loc[[2, 6], "label"] = float("inf")
    with pytest.raises(UsageError, match=r"label .*rows 3, 7"):
        prepare_traffic(frame, ["a", "b"])


def test_missing_labels_are_named_with_their_rows() -> None:
    frame = make_traffic("2026-03-01T00:00:00+00:00", 1, 10)
    frame.loc[7, "label"] = None
    with pytest.raises(UsageError, match="label is missing at row 8"):
        prepare_traffic(frame, ["a", "b"])


def test_a_blank_request_id_is_named_with_its_rows(
    cli: Any, rollout_ws: Workspace, tmp_path: Path, temp: Path
) -> None:
    frame = make_traffic("2026-03-01T00:00:00+00:00", 1, 40)
    frame["request_id"] = [f"q{i}" for i in range(len(frame))]
    frame.loc[[2, 9], "request_id"] = ["", None]
    line = one_line_replay_error(run(cli, rollout_ws, traffic(tmp_path / "t.csv", frame)))
    assert "request_id" in line and "rows 3, 10" in line and "IntegrityError" not in line
    assert list(temp.iterdir()) == []


def test_a_repeated_request_id_is_named_with_its_rows(
    cli: Any, rollout_ws: Workspace, tmp_path: Path, temp: Path
) -> None:
    frame = make_traffic("2026-03-01T00:00:00+00:00", 1, 40)
    frame["request_id"] = [f"q{i}" for i in range(len(frame))]
    frame.loc[7, "request_id"] = "q1"
    line = one_line_replay_error(run(cli, rollout_ws, traffic(tmp_path / "t.csv", frame)))
    assert "'q1'" in line and "rows 2, 8" in line
    assert list(temp.iterdir()) == []


def test_keep_naming_a_file_is_refused(cli: Any, rollout_ws: Workspace, tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("mine")
    line = one_line_replay_error(run(cli, rollout_ws, traffic(tmp_path / "t.csv"), "--keep", afile))
    assert "--keep" in line and "not a folder" in line
    assert afile.read_text() == "mine"


@pytest.mark.parametrize("interval", ["0s", "0ms"])
def test_a_zero_interval_is_refused(
    cli: Any, rollout_ws: Workspace, tmp_path: Path, temp: Path, interval: str
) -> None:
    line = one_line_replay_error(run(cli, rollout_ws, traffic(tmp_path / "t.csv"), "--interval", interval))
    assert "--interval" in line
    assert list(temp.iterdir()) == []


@pytest.mark.parametrize("interval", [timedelta(0), timedelta(minutes=-5)])
def test_the_python_api_refuses_an_interval_that_is_not_positive(
    rollout_ws: Workspace, tmp_path: Path, interval: timedelta
) -> None:
    with pytest.raises(UsageError, match="interval"):
        simulate(
            rollout_ws,
            "eta",
            champion=1,
            challenger=2,
            traffic=make_traffic("2026-03-01T00:00:00+00:00", 1, 40),
            interval=interval,
            workdir=tmp_path / "replay",
        )
    assert not (tmp_path / "replay").exists()


def test_a_request_without_a_user_stays_without_one_so_it_is_bucketed_by_its_id() -> None:
    frame = make_traffic("2026-03-01T00:00:00+00:00", 1, 10)
    frame.loc[3, "user_id"] = None
    users = list(prepare_traffic(frame, ["a", "b"])["user_id"])
    assert users.count(None) == 1 and "nan" not in users and "None" not in users
