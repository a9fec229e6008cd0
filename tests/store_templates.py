"""Stores at the newest schema for the tests' workspaces, migrated once per test process and copied
for each test: running every migration again for each of some 1,400 workspaces was a fifth of the
suite's time (about 0.4 s on SQLite, 1 s on PostgreSQL, each). The migrations themselves are tested
on empty stores (`store/test_migrations.py`); a copy is what they built.

SQLite: the template file is copied. PostgreSQL: the template schema is dumped once (`pg_dump`, schema
and rows) and replayed into each test's schema under its name. Without `pg_dump`, or where it cannot
dump this server, the workspace's store is migrated as before.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from helpers import fresh_postgres_schema
from pitstop.store import migrate
from pitstop.store.engine import make_engine


def migrated_sqlite(folder: Path) -> Path:
    """A SQLite store at the newest schema in `folder`."""
    path = folder / "pitstop.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()  # the last connection's close checkpoints the write-ahead log into the file
    return path


def copy_sqlite(template: Path, url: str) -> None:
    """Make the SQLite store at `url` a copy of `template`."""
    target = Path(sa.engine.make_url(url).database or "")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, target)


@dataclass(frozen=True)
class PostgresTemplate:
    """A migrated schema's dump, with the schema's name to replace by each copy's."""

    schema: str
    sql: str

    def copy_into(self, url: str) -> None:
        """Build the template's tables, indexes and rows in the (empty) schema of `url`."""
        schema = schema_of(url)
        engine = sa.create_engine(url)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(
                    "SET LOCAL synchronous_commit = off"
                )  # a test's store: no crash to survive
                conn.exec_driver_sql(self.sql.replace(self.schema, schema))
        finally:
            engine.dispose()


def schema_of(url: str) -> str:
    """The schema a store URL's `options=-csearch_path=…` names (as `fresh_postgres_schema` makes it)."""
    options = str(sa.engine.make_url(url).query.get("options", ""))
    prefix = "-csearch_path="
    assert options.startswith(prefix), f"no search_path in {url}"
    return options.removeprefix(prefix)


@contextmanager
def postgres_template(base_url: str) -> Iterator[PostgresTemplate | None]:
    """A migrated schema dumped once; None where `pg_dump` is missing or cannot dump this server."""
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        yield None
        return
    for url in fresh_postgres_schema(base_url, prefix=f"template_{uuid.uuid4().hex[:6]}"):
        engine = make_engine(url)
        try:
            migrate.upgrade(engine)
        finally:
            engine.dispose()
        yield _dumped(pg_dump, base_url, schema_of(url))


def _dumped(pg_dump: str, base_url: str, schema: str) -> PostgresTemplate | None:
    server = sa.engine.make_url(base_url)
    command = [pg_dump, "--schema", schema, "--no-owner", "--no-privileges", "--inserts"]
    for flag, value in (("--host", server.host), ("--port", server.port), ("--username", server.username)):
        if value is not None:
            command += [flag, str(value)]
    command.append(server.database or "postgres")
    env = {**os.environ, **({"PGPASSWORD": server.password} if server.password else {})}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    if done.returncode != 0:  # another server version than pg_dump's, say: migrate each store instead
        return None
    statements = (
        line
        for line in done.stdout.splitlines()
        # psql's own commands (`\restrict`), and the schema itself, which each test's copy already has
        if not line.startswith("\\") and line != f"CREATE SCHEMA {schema};"
    )
    return PostgresTemplate(schema, "\n".join(statements))
