"""Engines for SQLite (the embedded default) and PostgreSQL, and the transactions pitstop uses.

SQLite runs in WAL mode with a busy timeout so a gateway, a controller and the CLI can share one file.
Write transactions on SQLite start with BEGIN IMMEDIATE: the write lock is taken up front, so two
processes queue on the busy timeout instead of failing when a read lock cannot be upgraded.
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


def make_engine(url: str) -> Engine:
    """An engine for `url`, tuned for pitstop's access pattern; SQLite folders are created.

    Connecting creates a missing SQLite file: callers that only read check `sqlite_file` first.
    """
    parsed = parse_database_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, parsed.database)
    if parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


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


def _sqlite_engine(url: str, database: str | None) -> Engine:
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
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


def store_hint(engine: Engine) -> str:
    """How to fix an unreachable store."""
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
            f"store write failed at {safe_url(engine)}: {describe_store_error(error)}; {store_hint(engine)}"
        ) from error


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A consistent read-only view."""
    try:
        with engine.connect() as connection, connection.begin():
            yield connection
    except OperationalError as error:
        raise StoreUnavailableError(
            f"store read failed at {safe_url(engine)}: {describe_store_error(error)}; {store_hint(engine)}"
        ) from error
