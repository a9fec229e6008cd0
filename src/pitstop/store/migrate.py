"""Apply Alembic migrations programmatically (`pitstop db upgrade`, `pitstop init`).

Opening a workspace checks the store's schema on every command; that check reads the migration files
and the version table without Alembic, whose import would be a third of a quick command's start.
Alembic loads only to migrate.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, inspect, text

from pitstop.store.engine import write_transaction

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version"  # Alembic's default, which env.py keeps
# Any constant works; it only has to be the same in every pitstop process.
_PG_MIGRATION_LOCK = 7_351_004


def _alembic_config() -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    """The newest migration this version of pitstop knows: the one no other migration revises.

    Read from each file's `revision` and `down_revision` (as Alembic reads them; a test checks that
    both agree)."""
    revised: dict[str, Any] = {}
    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        values = _assignments(path, ("revision", "down_revision"))
        revised[values["revision"]] = values["down_revision"]
    replaced = {r for down in revised.values() for r in ((down,) if isinstance(down, str) else down or ())}
    heads = sorted(set(revised) - replaced)
    if len(heads) != 1:
        raise RuntimeError(f"the migrations in {MIGRATIONS} have {len(heads)} heads ({heads}), not one")
    return heads[0]


def _assignments(path: Path, names: tuple[str, ...]) -> dict[str, Any]:
    """The literal values a module assigns to `names` at its top level."""
    found: dict[str, Any] = {}
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in names:
            found[target.id] = ast.literal_eval(value)
    missing = [name for name in names if name not in found]
    if missing:
        raise RuntimeError(f"migration {path} assigns no {', '.join(missing)}")
    return found


def current_revision(engine: Engine) -> str | None:
    """The migration the store is at, or None for an empty store."""
    with engine.connect() as connection:
        if not inspect(connection).has_table(VERSION_TABLE):
            return None
        found = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    if len(found) > 1:
        raise RuntimeError(f"the store's {VERSION_TABLE} table holds {len(found)} revisions, not one")
    return str(found[0]) if found else None


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str]:
    """Bring the store to `revision` (the newest schema by default); returns (before, after).

    Safe to run concurrently. An older `revision` serves tests of a migration on data stored before it.
    A store already at the newest schema is left as it is, without loading Alembic (`pitstop init` on
    a store in use).
    """
    if revision == "head" and (current := current_revision(engine)) == head_revision():
        return current, current
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    config = _alembic_config()
    with write_transaction(engine) as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        before = MigrationContext.configure(connection).get_current_revision()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        after = MigrationContext.configure(connection).get_current_revision()
    assert after is not None
    return before, after
