"""Store trouble is bounded in time: connect and statement timeouts (issue 16, row 9)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from pitstop.config import parse_config, render_default_config
from pitstop.errors import ConfigError, StoreUnavailableError
from pitstop.workspace import Workspace


@contextmanager
def silent_server() -> Iterator[int]:
    """A TCP server on 127.0.0.1 that accepts every connection and never answers; yields its port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.1)
    accepted: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        while not done.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, name="silent-server", daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        done.set()
        thread.join(5)
        for connection in accepted:
            connection.close()
        listener.close()


def open_in_thread(folder: Path, bound: float = 60.0) -> BaseException | None:
    """Open the workspace on a thread; what it raised, or None. Fails if it is still trying after
    `bound` seconds (a bound on a hang, not a timing assertion)."""
    outcome: list[BaseException | None] = []

    def attempt() -> None:
        try:
            Workspace(folder).close()
            outcome.append(None)
        except BaseException as error:  # handed to the test
            outcome.append(error)

    thread = threading.Thread(target=attempt, name="open-workspace", daemon=True)
    thread.start()
    thread.join(bound)
    assert outcome, f"opening the workspace still hangs after {bound}s: no connect timeout"
    return outcome[0]


def write_config(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pitstop.yaml").write_text(text)
    return folder


def test_a_server_that_accepts_and_never_answers_fails_within_the_connect_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_config(tmp_path / "ws", "store:\n  connect_timeout: 1s\n")
    with silent_server() as port:
        monkeypatch.setenv("PITSTOP_DATABASE_URL", f"postgresql+psycopg://pitstop@127.0.0.1:{port}/none")
        error = open_in_thread(folder)
    assert isinstance(error, StoreUnavailableError), error
    message = str(error)
    assert message.startswith(f"cannot reach the store at postgresql+psycopg://pitstop@127.0.0.1:{port}")
    assert "timeout" in message and "\n" not in message


def test_the_default_connect_timeout_also_bounds_a_silent_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_config(tmp_path / "ws", "")
    with silent_server() as port:
        monkeypatch.setenv("PITSTOP_DATABASE_URL", f"postgresql+psycopg://pitstop@127.0.0.1:{port}/none")
        error = open_in_thread(folder)
    assert isinstance(error, StoreUnavailableError), error


def service_workspace(folder: Path, config: str, url: str, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.setenv("PITSTOP_DATABASE_URL", url)
    write_config(folder, config)
    Workspace.init(folder).close()
    return Workspace(folder, service=True)


@pytest.mark.postgres
def test_a_service_statement_longer_than_the_statement_timeout_is_cancelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_store: str
) -> None:
    config = "store:\n  statement_timeout: 500ms\n"
    ws = service_workspace(tmp_path / "ws", config, postgres_store, monkeypatch)
    cancelled = pytest.raises(StoreUnavailableError, match=r"store\.statement_timeout")
    with cancelled as raised, ws.reading() as conn:
        conn.execute(sa.text("SELECT pg_sleep(30)"))
    assert "canceling statement due to statement timeout" in str(raised.value)
    with ws.reading() as conn:  # the pool's connections stay usable
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1
    ws.close()


@pytest.mark.postgres
def test_commands_are_not_limited_by_the_statement_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_store: str
) -> None:
    config = "store:\n  statement_timeout: 2s\n"
    service = service_workspace(tmp_path / "ws", config, postgres_store, monkeypatch)
    command = Workspace(tmp_path / "ws")
    with service.reading() as conn:
        assert conn.execute(sa.text("SHOW statement_timeout")).scalar() == "2s"
    with command.reading() as conn:
        assert conn.execute(sa.text("SHOW statement_timeout")).scalar() == "0"
    service.close()
    command.close()


@pytest.mark.postgres
def test_a_statement_timeout_in_the_url_wins_over_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_store: str
) -> None:
    url = f"{postgres_store}%20-c%20statement_timeout%3D7s"  # appended to the schema's `options`
    ws = service_workspace(tmp_path / "ws", "store:\n  statement_timeout: 2s\n", url, monkeypatch)
    with ws.reading() as conn:
        assert conn.execute(sa.text("SHOW statement_timeout")).scalar() == "7s"
    ws.close()


def test_zero_means_no_statement_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    ws = service_workspace(tmp_path / "ws", "store:\n  statement_timeout: 0s\n", database_url, monkeypatch)
    if ws.engine.dialect.name == "postgresql":
        with ws.reading() as conn:
            assert conn.execute(sa.text("SHOW statement_timeout")).scalar() == "0"
    ws.close()


def test_the_sqlite_busy_timeout_is_a_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'store' / 'pitstop.db'}"
    ws = service_workspace(tmp_path / "ws", "store:\n  busy_timeout: 4s\n", url, monkeypatch)
    with ws.reading() as conn:
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 4000
    ws.close()


def test_the_gateway_factory_opens_its_workspace_as_a_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pitstop.http import server

    monkeypatch.setenv("PITSTOP_DATABASE_URL", f"sqlite:///{tmp_path / 'store' / 'pitstop.db'}")
    Workspace.init(tmp_path / "ws").close()
    monkeypatch.setenv("PITSTOP_WORKSPACE", str(tmp_path / "ws"))
    gateway_ws = server.app_from_env().state.gateway.ws
    with Workspace(tmp_path / "ws") as command_ws:
        assert gateway_ws.service and not command_ws.service
    gateway_ws.close()


@pytest.mark.parametrize("key", ["connect_timeout", "busy_timeout"])
def test_a_zero_connect_or_busy_timeout_is_refused(key: str) -> None:
    with pytest.raises(ConfigError, match=rf"store\.{key}: must be longer than zero"):
        parse_config({"store": {key: "0s"}})


def test_init_writes_the_store_settings_with_their_defaults() -> None:
    rendered = render_default_config()
    assert "\nstore:\n  connect_timeout: 5s  # " in rendered
    assert "\n  statement_timeout: 30s  # " in rendered
    assert "\n  # cache_dir: null  # " in rendered


@pytest.fixture
def postgres_store(postgres_url: str) -> Iterator[str]:
    from helpers import fresh_postgres_schema

    yield from fresh_postgres_schema(postgres_url)
