"""The CLI through its real entry point: exit codes, one-line errors, --json, help everywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main

from helpers import fit_regression_artifact, one_line_error, write_regression_csv
from pitstop.cli import app
from pitstop.store.migrate import head_revision


def _commands(group: Any, prefix: str = "") -> list[tuple[str, Any]]:
    found = [(prefix.strip(), group)]
    if hasattr(group, "commands"):
        for name, command in group.commands.items():
            found += _commands(command, f"{prefix} {name}")
    return found


def test_every_command_has_help_text() -> None:
    commands = _commands(typer.main.get_command(app))
    assert len(commands) > 10
    for name, command in commands:
        assert (command.help or "").strip(), f"`pitstop {name}` has no help text"
        for param in command.params:
            if param.param_type_name == "option" and param.name != "help":
                assert (param.help or "").strip(), f"`pitstop {name}` option {param.opts} has no help"


def test_every_command_reports_a_bad_option_in_one_line(cli) -> None:  # type: ignore[no-untyped-def]
    leaves = [
        name for name, command in _commands(typer.main.get_command(app)) if not hasattr(command, "commands")
    ]
    for name in leaves:
        line = one_line_error(cli(*name.split(), "--no-such-option"))
        assert f"pitstop {name}: no such option: --no-such-option" in line, line


def test_every_group_reports_an_unknown_command_in_one_line(cli) -> None:  # type: ignore[no-untyped-def]
    groups = [
        name for name, command in _commands(typer.main.get_command(app)) if hasattr(command, "commands")
    ]
    assert "rollout" in groups
    for name in groups:
        line = one_line_error(cli(*name.split(), "nosuch"))
        assert f"pitstop {name}".strip() + ": no such command 'nosuch'" in line, line


def test_help_runs_through_the_console_script() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pitstop", "--help"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and "register" in done.stdout


def test_the_whole_registry_flow(cli, workspace_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    csv = write_regression_csv(tmp_path / "train.csv")
    ws = ["-w", str(workspace_dir)]
    assert cli("dataset", "add", "train", csv, "--time-column", "time", *ws).exit_code == 0
    again = cli("dataset", "add", "train", csv, "--time-column", "time", "--json", *ws)
    assert json.loads(again.stdout)["created"] is False
    created = cli(
        "models",
        "create",
        "eta",
        "--task",
        "regression",
        "--target",
        "y",
        "--time-column",
        "time",
        "--features",
        "a,b",
        "--id-columns",
        "user_id",
        *ws,
    )
    assert created.exit_code == 0, created.stderr
    artifact = fit_regression_artifact(csv, tmp_path / "m.joblib")
    registered = cli(
        "register",
        "eta",
        artifact,
        "--train-data",
        "train:1",
        "--param",
        "alpha=0.5",
        "--feature-pipeline-version",
        "v7",
        "--json",
        *ws,
    )
    assert registered.exit_code == 0, registered.stderr
    assert json.loads(registered.stdout)["lineage"]["params"] == {"alpha": 0.5}
    assert cli("models", "set-champion", "eta", "1", "--reason", "first", *ws).exit_code == 0
    listing = cli("models", "list", "eta", *ws)
    assert "champion" in listing.stdout and "train:1" in listing.stdout
    shown = json.loads(cli("models", "show", "eta", "champion", "--json", *ws).stdout)
    assert shown["version"] == 1 and shown["lineage"]["feature_pipeline_version"] == "v7"
    human = cli("models", "show", "eta", "1", *ws).stdout
    assert "training window" in human and "code commit" in human
    assert "train" in cli("dataset", "show", "train", *ws).stdout
    assert json.loads(cli("dataset", "list", "--json", *ws).stdout)[0]["rows"] == 200


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["models", "show", "nope", "1"], "unknown model 'nope'"),
        (["dataset", "add", "d", "/no/such/file.csv"], "no such file"),
        (
            ["models", "create", "m", "--task", "ranking", "--target", "y"],
            "regression, classification or multiclass",
        ),
        (["register", "m", "/no/such.joblib", "--train-data", "d"], "unknown model"),
        (["dataset", "show", "d:x"], "must be a number"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli, workspace_dir: Path, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    result = cli(*args, "-w", workspace_dir)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 3  # one message, soft-wrapped at most


def test_missing_workspace_says_run_init(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("models", "list", "-w", tmp_path / "empty")
    assert result.exit_code == 2 and "pitstop init" in result.stderr


def test_workspace_from_environment(cli, workspace_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("PITSTOP_WORKSPACE", str(workspace_dir))
    assert cli("models", "list", "--json").stdout.strip() == "[]"


def test_bad_config_is_exit_2_naming_the_key(cli, workspace_dir: Path) -> None:  # type: ignore[no-untyped-def]
    (workspace_dir / "pitstop.yaml").write_text("ab_test:\n  share: 2\n")
    result = cli("models", "list", "-w", workspace_dir)
    assert result.exit_code == 2 and "ab_test.share" in result.stderr


def test_init_creates_config_and_store(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("PITSTOP_DATABASE_URL", raising=False)
    result = cli("init", tmp_path / "new", "--json")
    data = json.loads(result.stdout)
    assert data["config_created"] and (tmp_path / "new" / ".pitstop" / "pitstop.db").exists()
    assert cli("init", tmp_path / "new", "--json").exit_code == 0
    upgraded = json.loads(cli("db", "upgrade", "-w", tmp_path / "new", "--json").stdout)
    assert upgraded == {"from": head_revision(), "to": head_revision()}


def test_a_missing_store_is_refused_not_created(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("PITSTOP_DATABASE_URL", raising=False)
    folder = tmp_path / "ws"
    folder.mkdir()
    (folder / "pitstop.yaml").write_text("")
    result = cli("models", "list", "-w", folder)
    assert result.exit_code == 2
    message = " ".join(result.stderr.split())  # the console wraps long lines
    assert f"there is no store at {folder / '.pitstop' / 'pitstop.db'}" in message
    assert f"pitstop init {folder}" in message and f"pitstop db upgrade -w {folder}" in message
    assert not (folder / ".pitstop").exists()


def test_db_upgrade_creates_a_missing_store(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("PITSTOP_DATABASE_URL", raising=False)
    (tmp_path / "pitstop.yaml").write_text("")
    upgraded = cli("db", "upgrade", "-w", tmp_path, "--json")
    assert json.loads(upgraded.stdout) == {"from": None, "to": head_revision()}
    assert (tmp_path / ".pitstop" / "pitstop.db").exists()
    assert cli("models", "list", "-w", tmp_path, "--json").stdout.strip() == "[]"


def test_unknown_option_is_exit_2(cli) -> None:  # type: ignore[no-untyped-def]
    assert cli("models", "list", "--frobnicate").exit_code == 2


def test_real_process_exit_code_for_a_user_error(tmp_path: Path) -> None:
    env = {**os.environ, "PITSTOP_WORKSPACE": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "pitstop", "models", "list"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 2 and "pitstop init" in done.stderr and "Traceback" not in done.stderr


def test_unreachable_store_is_one_line(cli, workspace_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    # Nothing listens on port 1: no PostgreSQL server is needed to see the message.
    monkeypatch.setenv("PITSTOP_DATABASE_URL", "postgresql+psycopg://x@127.0.0.1:1/nope?connect_timeout=2")
    for args in (["models", "list"], ["db", "upgrade"]):
        result = cli(*args, "-w", workspace_dir)
        assert result.exit_code == 2
        line = result.stderr.strip()
        assert "127.0.0.1:1/nope" in line and "Connection refused" in line and "PITSTOP_DATABASE_URL" in line
        assert len(line.splitlines()) == 1 and "sqlalche.me" not in line


@pytest.fixture
def trained(cli, workspace_dir: Path, tmp_path: Path) -> list[str]:  # type: ignore[no-untyped-def]
    """A workspace with dataset `train` and model `eta`; returns the -w arguments."""
    ws = ["-w", str(workspace_dir)]
    csv = write_regression_csv(tmp_path / "train.csv")
    assert cli("dataset", "add", "train", csv, "--time-column", "time", *ws).exit_code == 0
    created = cli(
        "models", "create", "eta", "--task", "regression", "--target", "y", "--time-column", "time",
        "--id-columns", "user_id", "--features", "all", *ws,
    )  # fmt: skip
    assert created.exit_code == 0, created.stderr
    return ws


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("when,a\n2026-01-01,1\n", "no time column 'time'; columns are when, a"),
        ("time,a\nyesterday,1\n", "time column 'time' has values that are not timestamps"),
        ("time,a\n1700000000,1\n", "time column 'time' holds numbers (int64, such as 1700000000)"),
    ],
)
def test_bad_time_columns_are_one_line(
    cli, workspace_dir: Path, tmp_path: Path, content: str, message: str
) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bad.csv"
    path.write_text(content)
    line = one_line_error(cli("dataset", "add", "bad", path, "--time-column", "time", "-w", workspace_dir))
    assert message in line


def test_a_duplicate_model_name_is_one_line(cli, trained: list[str]) -> None:  # type: ignore[no-untyped-def]
    line = one_line_error(
        cli("models", "create", "eta", "--task", "regression", "--target", "y", "--features", "all", *trained)
    )
    assert "'eta' already exists" in line


def test_an_unknown_version_is_one_line(cli, trained: list[str]) -> None:  # type: ignore[no-untyped-def]
    assert "no version 9" in one_line_error(cli("models", "show", "eta", "9", *trained))


def test_an_artifact_that_does_not_load_is_one_line(cli, trained: list[str], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    junk = tmp_path / "junk.joblib"
    junk.write_bytes(b"not a pickle")
    line = one_line_error(cli("register", "eta", junk, "--train-data", "train", *trained))
    assert f"{junk}: cannot load with joblib" in line


def test_an_artifact_without_predict_is_one_line(cli, trained: list[str], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import joblib

    joblib.dump({"not": "a model"}, tmp_path / "dict.joblib")
    line = one_line_error(cli("register", "eta", tmp_path / "dict.joblib", "--train-data", "train", *trained))
    assert "no predict method" in line
    assert json.loads(cli("models", "list", "eta", "--json", *trained).stdout) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["models", "create", "m", "--task", "regression"],
            "pitstop models create: missing option '--target'",
        ),
        (["models", "set-champion", "m", "1"], "pitstop models set-champion: missing option '--reason'"),
        (["dataset", "add", "d"], "pitstop dataset add: missing argument"),
        (["register", "m"], "pitstop register: missing argument"),
    ],
)
def test_a_missing_argument_is_one_line_pointing_at_help(
    cli, workspace_dir: Path, args: list[str], message: str
) -> None:  # type: ignore[no-untyped-def]
    line = one_line_error(cli(*args, "-w", workspace_dir))
    assert message in line and f"see `{message.split(':')[0]} --help`" in line


def _os_calls_unreadable(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests run as root, who can read any file: the operating system is told to call `path` unreadable."""
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode, **kw: str(p) != str(path) and real_access(p, mode, **kw)
    )


def test_path_arguments_leave_readability_to_the_api(
    cli,  # type: ignore[no-untyped-def]
    trained: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Typer's own readability check printed a 3-line usage box; the API reads each file itself and
    names an unreadable one in one line. Here the commands must not ask, and go on to read the files."""
    csv = write_regression_csv(tmp_path / "more.csv", seed=1)
    artifact = fit_regression_artifact(tmp_path / "train.csv", tmp_path / "m.joblib")
    for path in (csv, artifact):
        _os_calls_unreadable(path, monkeypatch)
    added = cli("dataset", "add", "more", csv, *trained)
    assert added.exit_code == 0, added.stderr
    registered = cli("register", "eta", artifact, "--train-data", "train", *trained)
    assert registered.exit_code == 0, registered.stderr


def test_register_records_the_as_of_cutoff_and_shows_it(cli, trained: list[str], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    artifact = fit_regression_artifact(tmp_path / "train.csv", tmp_path / "m.joblib")
    plain = cli("register", "eta", artifact, "--train-data", "train", "--json", *trained)
    assert json.loads(plain.stdout)["lineage"]["as_of"] is None
    cut = cli(
        "register", "eta", artifact, "--train-data", "train", "--as-of", "2026-01-02", "--json", *trained
    )
    lineage = json.loads(cut.stdout)["lineage"]
    assert lineage["as_of"] == "2026-01-02T00:00:00+00:00" and lineage["training_window"]["rows"] == 24
    shown = cli("models", "show", "eta", "2", *trained).stdout
    assert "as-of cutoff" in shown and "2026-01-02T00:00:00Z" in shown
    bad = one_line_error(
        cli("register", "eta", artifact, "--train-data", "train", "--as-of", "soon", *trained)
    )
    assert "--as-of 'soon': not a timestamp" in bad
