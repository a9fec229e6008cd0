from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from helpers import write_regression_csv
from pitstop.errors import ConflictError, NotFoundError, UsageError
from pitstop.workspace import Workspace


def test_snapshot_records_hash_rows_columns_and_time_range(workspace: Workspace, tmp_path: Path) -> None:
    csv = write_regression_csv(tmp_path / "d.csv", rows=48)
    snapshot, created = workspace.add_dataset("orders", csv, time_column="time")
    assert created and snapshot.version == 1 and snapshot.rows == 48
    assert len(snapshot.sha256) == 64
    assert snapshot.columns["a"] == "float64"
    assert snapshot.time_min == pd.Timestamp("2026-01-01", tz="UTC")
    assert snapshot.time_max == pd.Timestamp("2026-01-02T23:00", tz="UTC")


def test_same_content_returns_existing_snapshot(workspace: Workspace, tmp_path: Path) -> None:
    csv = write_regression_csv(tmp_path / "d.csv")
    first, _ = workspace.add_dataset("orders", csv)
    again, created = workspace.add_dataset("orders", csv)
    assert not created and again.id == first.id


def test_changed_content_is_the_next_version_and_history_is_kept(
    workspace: Workspace, tmp_path: Path
) -> None:
    csv = write_regression_csv(tmp_path / "d.csv", seed=1)
    workspace.add_dataset("orders", csv)
    original = workspace.dataset_frame("orders:1")
    write_regression_csv(csv, seed=2)
    second, created = workspace.add_dataset("orders", csv)
    assert created and second.version == 2
    pd.testing.assert_frame_equal(workspace.dataset_frame("orders:1"), original)
    assert workspace.dataset("orders").version == 2


def test_parquet_is_supported(workspace: Workspace, tmp_path: Path) -> None:
    frame = pd.read_csv(write_regression_csv(tmp_path / "d.csv"))
    frame.to_parquet(tmp_path / "d.parquet")
    snapshot, _ = workspace.add_dataset("pq", tmp_path / "d.parquet", time_column="time")
    assert snapshot.format == "parquet" and snapshot.rows == len(frame)


@pytest.mark.parametrize(
    ("content", "time_column", "message"),
    [
        ("a,b\n1,2\n", "time", "no time column 'time'"),
        ("time,a\nyesterday,1\n", "time", "not timestamps"),
        ("time,a\n", None, "no rows"),
    ],
)
def test_bad_files_are_refused_and_nothing_stored(
    workspace: Workspace, tmp_path: Path, content: str, time_column: str | None, message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(UsageError, match=message):
        workspace.add_dataset("bad", path, time_column=time_column)
    assert workspace.datasets("bad") == []


def test_missing_file_and_unknown_type(workspace: Workspace, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        workspace.add_dataset("x", tmp_path / "nope.csv")
    (tmp_path / "x.txt").write_text("a\n1\n")
    with pytest.raises(UsageError, match="unsupported file type"):
        workspace.add_dataset("x", tmp_path / "x.txt")


def test_unknown_dataset_and_version(workspace: Workspace, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="pitstop dataset add"):
        workspace.dataset("nope")
    workspace.add_dataset("orders", write_regression_csv(tmp_path / "d.csv"))
    with pytest.raises(NotFoundError, match="no version 4"):
        workspace.dataset("orders:4")
    with pytest.raises(UsageError, match="must be a number"):
        workspace.dataset("orders:latest")


def _with_two_time_columns(path: Path) -> Path:
    """Events with the time they happened (`time`) and the time they were recorded (`recorded`)."""
    frame = pd.read_csv(write_regression_csv(path))
    frame["recorded"] = frame["time"]
    frame.to_csv(path, index=False)
    return path


def test_same_content_with_another_time_column_is_refused(workspace: Workspace, tmp_path: Path) -> None:
    csv = _with_two_time_columns(tmp_path / "d.csv")
    first, _ = workspace.add_dataset("orders", csv, time_column="time")
    with pytest.raises(ConflictError, match=r"orders:1 already holds this content with time column 'time'"):
        workspace.add_dataset("orders", csv, time_column="recorded")
    again, created = workspace.add_dataset("orders", csv)  # no time column asked for: the snapshot
    assert not created and again.id == first.id and again.time_column == "time"
    assert [s.ref for s in workspace.datasets("orders")] == ["orders:1"]


def test_same_content_with_a_time_column_it_was_added_without_is_refused(
    workspace: Workspace, tmp_path: Path
) -> None:
    csv = write_regression_csv(tmp_path / "d.csv")
    workspace.add_dataset("orders", csv)
    with pytest.raises(ConflictError, match="without a time column; leave out time_column"):
        workspace.add_dataset("orders", csv, time_column="time")
    assert workspace.dataset("orders").time_column is None


def test_cli_another_time_column_is_exit_2(cli, workspace_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    csv = _with_two_time_columns(tmp_path / "train.csv")
    ws = ["-w", str(workspace_dir)]
    assert cli("dataset", "add", "train", csv, "--time-column", "time", *ws).exit_code == 0
    result = cli("dataset", "add", "train", csv, "--time-column", "recorded", "--json", *ws)
    assert result.exit_code == 2 and result.stdout == ""
    assert "with time column 'time'; give --time-column time" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_folder_is_called_a_folder(cli, workspace_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("dataset", "add", "x", tmp_path, "-w", workspace_dir)
    assert result.exit_code == 2 and f"{tmp_path} is a folder" in result.stderr
    assert "no such file" not in result.stderr


def test_numeric_time_column_is_refused_naming_the_column(workspace: Workspace, tmp_path: Path) -> None:
    # pandas would read 1700000000 as nanoseconds after 1970: a silently wrong time range
    path = tmp_path / "epoch.csv"
    path.write_text("time,a\n1700000000,1\n1700000100,2\n")
    with pytest.raises(UsageError, match=r"time column 'time' holds numbers .*1700000000.*ISO 8601"):
        workspace.add_dataset("epoch", path, time_column="time")
    assert workspace.datasets("epoch") == []


def test_a_csv_time_column_is_recorded_as_timestamps(workspace: Workspace, tmp_path: Path) -> None:
    snapshot, _ = workspace.add_dataset(
        "orders", write_regression_csv(tmp_path / "d.csv"), time_column="time"
    )
    assert snapshot.columns["time"].startswith("datetime64[") and snapshot.columns["time"].endswith(", UTC]")
    assert snapshot.columns["user_id"] != snapshot.columns["time"]


def test_a_repeated_csv_header_is_refused_naming_it(workspace: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "twice.csv"
    path.write_text("time,a,b,a\n2026-01-01,1,2,3\n")
    with pytest.raises(UsageError, match=r"twice\.csv: the header names column\(s\) 'a' more than once"):
        workspace.add_dataset("twice", path)
    assert workspace.datasets("twice") == []


def test_an_artifact_folder_that_cannot_be_written_is_one_line_naming_it(
    cli,  # type: ignore[no-untyped-def]
    workspace_dir: Path,
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "blocker"  # a regular file where the artifact folder should be
    blocker.write_text("")
    with (workspace_dir / "pitstop.yaml").open("a") as config:
        config.write(f"\nartifact_store: {blocker / 'arts'}\n")
    result = cli("dataset", "add", "d", write_regression_csv(tmp_path / "d.csv"), "-w", workspace_dir)
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert f"cannot write to the artifact store {blocker / 'arts'}" in result.stderr
    assert json.loads(cli("dataset", "list", "--json", "-w", workspace_dir).stdout) == []


# -- categorical columns ---------------------------------------------------------------------------------


def zones_csv(path: Path) -> Path:
    frame = pd.read_csv(write_regression_csv(path, rows=48))
    frame["zone"] = ["north", "south", "east"] * 16
    frame.to_csv(path, index=False)
    return path


def test_a_csv_column_declared_categorical_loads_as_category_every_time(
    workspace: Workspace, tmp_path: Path
) -> None:
    snapshot, _ = workspace.add_dataset("trips", zones_csv(tmp_path / "d.csv"), categorical=["zone"])
    assert snapshot.columns["zone"] == "category" and snapshot.categorical == ["zone"]
    zone = workspace.dataset_frame("trips:1")["zone"]
    assert isinstance(zone.dtype, pd.CategoricalDtype)
    assert list(zone.cat.categories) == ["east", "north", "south"]


def test_a_parquet_files_categorical_columns_stay_categorical(workspace: Workspace, tmp_path: Path) -> None:
    frame = pd.read_csv(zones_csv(tmp_path / "d.csv")).astype({"zone": "category"})
    frame.to_parquet(tmp_path / "d.parquet")
    snapshot, _ = workspace.add_dataset("trips", tmp_path / "d.parquet")
    assert snapshot.categorical == ["zone"]
    assert isinstance(workspace.dataset_frame("trips:1")["zone"].dtype, pd.CategoricalDtype)


def test_the_same_csv_declared_with_other_categorical_columns_is_refused(
    workspace: Workspace, tmp_path: Path
) -> None:
    csv = zones_csv(tmp_path / "d.csv")
    workspace.add_dataset("trips", csv, categorical=["zone"])
    with pytest.raises(ConflictError, match="already holds this content with categorical column"):
        workspace.add_dataset("trips", csv, categorical=["user_id"])


@pytest.mark.parametrize(
    ("declared", "reads"),
    [(["zones"], "no column 'zones' to make categorical"), (["time"], "'time' is the time column")],
)
def test_a_categorical_declaration_naming_no_usable_column_is_exit_2(  # type: ignore[no-untyped-def]
    cli, workspace: Workspace, tmp_path: Path, declared: list[str], reads: str
) -> None:
    csv = zones_csv(tmp_path / "d.csv")
    result = cli(
        "dataset", "add", "trips", csv, "--time-column", "time", "--categorical", ",".join(declared),
        "-w", workspace.path,
    )  # fmt: skip
    assert result.exit_code == 2 and reads in result.stderr
    assert workspace.datasets() == []


def test_dataset_add_json_lists_the_categorical_columns(  # type: ignore[no-untyped-def]
    cli, workspace: Workspace, tmp_path: Path
) -> None:
    csv = zones_csv(tmp_path / "d.csv")
    result = cli("dataset", "add", "trips", csv, "--categorical", "zone", "--json", "-w", workspace.path)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["categorical"] == ["zone"]
