"""A workspace or store folder the OS refuses to create is one line naming the path and the reason, exit 2.

Tests run as root, so a read-only folder would not refuse anything: a regular file in the way does.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from helpers import one_line_error
from pitstop.config import CONFIG_FILE, STATE_DIR, render_default_config
from pitstop.errors import StoreUnavailableError, UsageError
from pitstop.workspace import Workspace


@pytest.fixture(autouse=True)
def default_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """The store is the workspace's own SQLite file, in a folder pitstop has to create."""
    monkeypatch.delenv("PITSTOP_DATABASE_URL", raising=False)
    monkeypatch.delenv("PITSTOP_WORKSPACE", raising=False)


def test_init_on_an_existing_file_is_exit_2_naming_it(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "d.csv").write_text("a,b\n1,2\n")
    result = cli("init", tmp_path / "d.csv")
    assert result.exit_code == 2
    line = one_line_error(result)
    assert f"error: cannot make a workspace at {tmp_path / 'd.csv'}: a file is in the way" in line
    assert (tmp_path / "d.csv").read_text() == "a,b\n1,2\n"


def test_init_under_a_file_is_exit_2_with_the_os_reason(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "afile").write_text("")
    result = cli("init", tmp_path / "afile" / "ws")
    assert result.exit_code == 2
    line = one_line_error(result)
    assert f"cannot make a workspace at {tmp_path / 'afile' / 'ws'}: Not a directory" in line


def test_workspace_init_raises_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    with pytest.raises(UsageError, match=r"cannot make a workspace at .*afile/ws: Not a directory"):
        Workspace.init(tmp_path / "afile" / "ws")


def _workspace_with_a_file_for_its_store_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "ws"
    folder.mkdir()
    (folder / CONFIG_FILE).write_text(render_default_config())
    (folder / STATE_DIR).write_text("not a folder")
    return folder


def test_db_upgrade_that_cannot_create_the_store_folder_is_exit_2_naming_it(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path
) -> None:
    folder = _workspace_with_a_file_for_its_store_folder(tmp_path)
    result = cli("db", "upgrade", "-w", folder)
    assert result.exit_code == 2
    line = one_line_error(result)
    assert "error: cannot create the store: a file is in the way of the folder" in line
    assert str(folder / STATE_DIR) in line


def test_init_that_cannot_create_the_store_folder_raises_store_unavailable(tmp_path: Path) -> None:
    folder = _workspace_with_a_file_for_its_store_folder(tmp_path)
    with pytest.raises(StoreUnavailableError, match=rf"cannot create the store: .*{re.escape(STATE_DIR)}"):
        Workspace.init(folder)
