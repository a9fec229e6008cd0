"""Engines for SQLite (the embedded default) and PostgreSQL, and the transactions pitstop uses.

SQLite runs in WAL mode with a busy timeout so a gateway, a controller and the CLI can share one file.
Write transactions on SQLite start with BEGIN IMMEDIATE: the write lock is taken up front, so two
processes queue on the busy timeout instead of failing when a read lock cannot be upgraded.

Store trouble is bounded in time: a PostgreSQL connection attempt gives up after `connect_timeout`
(a server that accepts and never answers would otherwise hang its caller for good), and a service's
statements are cancelled by the server after `statement_timeout`. Both come from the `store`
settings; a value the URL already carries (`?connect_timeout=…`, `options=-c statement_timeout=…`)
wins.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from pitstop.errors import ConfigError, StoreUnavailableError

SQLITE_BUSY_TIMEOUT_MS = 30_000
_IMMEDIATE = "pitstop_immediate"


def make_engine(
    url: str,
    *,
    connect_timeout: float | None = None,
    statement_timeout: float | None = None,
    busy_timeout: float = SQLITE_BUSY_TIMEOUT_MS / 1000,
) -> Engine:
    """An engine for `url`, tuned for pitstop's access pattern; SQLite folders are created.

    Timeouts are in seconds; None leaves the database's own (none). `connect_timeout` and
    `statement_timeout` apply to PostgreSQL, `busy_timeout` (the wait for another process's write
    lock) to SQLite. Connecting creates a missing SQLite file: callers that only read check
    `sqlite_file` first.
    """
    parsed = parse_database_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, busy_timeout)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    parsed = postgres_timeouts(parsed, connect_timeout, statement_timeout)
    return create_engine(parsed, pool_pre_ping=True, pool_size=5, max_overflow=10)


def postgres_timeouts(url: URL, connect_timeout: float | None, statement_timeout: float | None) -> URL:
    """`url` with libpq's `connect_timeout` (whole seconds) and the server's `statement_timeout` (ms)
    added, each unless the URL already sets it.

    >>> url = postgres_timeouts(make_url("postgresql+psycopg://db/x?options=-csearch_path%3Ds"), 5, 30)
    >>> url.query["connect_timeout"], url.query["options"]
    ('5', '-csearch_path=s -c statement_timeout=30000')
    >>> postgres_timeouts(make_url("postgresql+psycopg://db/x?connect_timeout=9"), 5, None).query
    immutabledict({'connect_timeout': '9'})
    """
    query = dict(url.query)
    if connect_timeout is not None and "connect_timeout" not in query:
        query["connect_timeout"] = str(max(1, math.ceil(connect_timeout)))
    options = query.get("options", "")
    options = " ".join(options) if isinstance(options, tuple) else options
    if statement_timeout is not None and "statement_timeout" not in options:
        setting = f"-c statement_timeout={max(1, round(statement_timeout * 1000))}"
        query["options"] = f"{options} {setting}".strip()
    return url.update_query_dict(query)


def parse_database_url(url: str, source: str = "database_url") -> URL:
    """`url` parsed, or a ConfigError naming `source` (where the URL came from) when the store cannot
    use it.

    >>> parse_database_url("mysql://db/x", "PITSTOP_DATABASE_URL")
    Traceback (most recent call last):
    ...
    pitstop.errors.ConfigError: PITSTOP_DATABASE_URL: unsupported database 'mysql'; use sqlite or postgresql
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(
            f"{source}: not a valid SQLAlchemy URL: {url!r}; write it like "
            "postgresql+psycopg://user@host:5432/db or sqlite:////path/to/pitstop.db"
        ) from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"{source}: unsupported database {parsed.get_backend_name()!r}; use sqlite or postgresql"
        )
    return parsed


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL stores in; None for another database, an in-memory one or a `file:` URI.

    >>> sqlite_file("sqlite:////srv/ws/.pitstop/pitstop.db")
    PosixPath('/srv/ws/.pitstop/pitstop.db')
    >>> sqlite_file("sqlite://") is None and sqlite_file("postgresql://db/x") is None
    True
    """
    parsed = parse_database_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:"):  # a URI filename (`?uri=true`) may mean memory or read-only
        return None
    return Path(database)


def _sqlite_engine(url: URL, busy_timeout: float) -> Engine:
    database = url.database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    if "timeout" in url.query:  # the URL's own busy timeout wins
        busy_timeout = float(str(url.query["timeout"]))
    busy_ms = round(busy_timeout * 1000)
    engine = create_engine(url, connect_args={"timeout": busy_timeout})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        try:
            cursor.execute("SELECT ln(2), floor(2.5)")
        except sqlite3.OperationalError:  # SQLite built without math functions: evidence queries need them
            dbapi_connection.create_function("ln", 1, math.log, deterministic=True)
            dbapi_connection.create_function("floor", 1, math.floor, deterministic=True)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get(_IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def store_hint(engine: Engine, error: BaseException | None = None) -> str:
    """How to fix an unreachable store (or one that cancelled a statement, when `error` says so)."""
    if error is not None and "statement timeout" in str(getattr(error, "orig", None) or error):
        return (
            "the statement ran longer than store.statement_timeout allows; "
            "raise it in pitstop.yaml (0s: no limit) or find what slows the store"
        )
    if engine.dialect.name == "sqlite":
        return "check that the file's folder is writable and no other process holds a long write lock"
    return "check that the server is up and PITSTOP_DATABASE_URL (or database_url in pitstop.yaml) is right"


def describe_store_error(error: BaseException) -> str:
    """The first line of the database's own message, without SQLAlchemy's wrapping and documentation link.

    >>> describe_store_error(OperationalError("SELECT 1", {}, Exception("refused\\n\\tIs it running?")))
    'refused'
    """
    original = getattr(error, "orig", None) or error
    lines = [line.strip() for line in str(original).splitlines() if line.strip()]
    return lines[0] if lines else type(original).__name__


def safe_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction that commits on success and rolls back on any error."""
    try:
        with engine.connect().execution_options(**{_IMMEDIATE: True}) as connection, connection.begin():
            yield connection
    except OperationalError as error:
        raise StoreUnavailableError(
            f"store write failed at {safe_url(engine)}: {describe_store_error(error)}; "
            f"{store_hint(engine, error)}"
        ) from error


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A consistent read-only view."""
    try:
        with engine.connect() as connection, connection.begin():
            yield connection
    except OperationalError as error:
        raise StoreUnavailableError(
            f"store read failed at {safe_url(engine)}: {describe_store_error(error)}; "
            f"{store_hint(engine, error)}"
        ) from error
