from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from pitstop.config import default_database_url
from pitstop.errors import ConfigError, StoreUnavailableError
from pitstop.store.engine import make_engine
from pitstop.store.migrate import _alembic_config, current_revision, head_revision, upgrade
from pitstop.store.predictions.partitions import include_name
from pitstop.store.tables import metadata
from pitstop.workspace import Workspace


def test_migrations_build_exactly_the_declared_schema(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": include_name})
        diff = compare_metadata(context, metadata)
    engine.dispose()
    assert diff == []


def test_upgrade_is_idempotent(database_url: str) -> None:
    engine = make_engine(database_url)
    assert upgrade(engine) == (None, head_revision())
    assert upgrade(engine) == (head_revision(), head_revision())
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_the_schema_check_reads_the_revisions_alembic_reads(database_url: str) -> None:
    """Opening a workspace reads the head and the store's revision without Alembic (a quick command
    would otherwise spend a third of its start importing it): both agree with Alembic's own."""
    assert head_revision() == ScriptDirectory.from_config(_alembic_config()).get_current_head()
    engine = make_engine(database_url)

    def alembic_revision() -> str | None:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    assert current_revision(engine) is None and alembic_revision() is None
    for revision in ("0001", "0003", head_revision()):
        upgrade(engine, revision)
        assert current_revision(engine) == alembic_revision() == revision
    engine.dispose()


def test_the_prediction_log_has_no_index_by_request_id(database_url: str) -> None:
    """Request ids are random: an index on them made every logged record dirty a page of its own
    once the table was large, and the log writer's cost grew tenfold with the table (bench/RESULTS.md)."""
    engine = make_engine(database_url)
    upgrade(engine)
    indexes = sa.inspect(engine).get_indexes("predictions")
    engine.dispose()
    assert [ix["column_names"] for ix in indexes if "request_id" in ix["column_names"]] == []


def test_upgrading_drops_the_request_index_and_keeps_the_predictions(database_url: str) -> None:
    engine = make_engine(database_url)
    assert upgrade(engine, "0003") == (None, "0003")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO predictions (model_id, request_id, time, version, arm, role, routing_version, "
                "bucketed_by, latency_ms) VALUES (1, 'r1', 0, 1, 'champion', 'served', 1, 'request', 1.0)"
            )
        )
    assert upgrade(engine) == ("0003", head_revision())
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT request_id FROM predictions")).scalars().all() == ["r1"]
    assert "ix_predictions_model_request" not in {
        ix["name"] for ix in sa.inspect(engine).get_indexes("predictions")
    }
    engine.dispose()


def test_sqlite_runs_in_wal_mode_with_busy_timeout(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'sub' / 'db.sqlite'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    engine.dispose()


def test_unsupported_database_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unsupported database"):
        make_engine("mysql://x/y")


def test_workspace_with_stale_schema_says_how_to_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PITSTOP_DATABASE_URL", raising=False)
    Workspace.init(tmp_path).close()
    engine = sa.create_engine(default_database_url(tmp_path))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0000'"))
    engine.dispose()
    with pytest.raises(StoreUnavailableError, match="pitstop db upgrade"):
        Workspace(tmp_path)


@pytest.mark.postgres
def test_unreachable_postgres_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_url: str
) -> None:
    monkeypatch.setenv(
        "PITSTOP_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2"
    )
    (tmp_path / "pitstop.yaml").write_text("")
    with pytest.raises(StoreUnavailableError, match="cannot reach the store"):
        Workspace(tmp_path)


def test_upgrading_to_named_policies_marks_every_earlier_rollout_as_from_pitstop_yaml(
    database_url: str,
) -> None:
    """Before migration 0010 a rollout's policy always came from pitstop.yaml; the upgrade says so."""
    engine = make_engine(database_url)
    upgrade(engine, "0008")
    now = "2026-03-01 00:00:00"
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO models (name, task, target, id_columns, created_at, created_by, allow_pickle) "
                "VALUES ('eta', 'regression', 'y', '[]', :now, 'test', false)"
            ),
            {"now": now},
        )
        conn.execute(
            sa.text(
                "INSERT INTO rollouts (model_id, champion_version, challenger_version, phase, salt, policy, "
                "memory, phase_routing_version, phase_started_at, started_at, started_by, updated_at, "
                "revision) VALUES (1, 1, 2, 'shadow', 's', '{}', '{}', 1, :now, :now, 'test', :now, 1)"
            ),
            {"now": now},
        )
    assert upgrade(engine) == ("0008", head_revision())
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT policy_source FROM rollouts")).scalars().all() == ["pitstop.yaml"]
        assert conn.execute(sa.text("SELECT count(*) FROM policies")).scalar() == 0
    engine.dispose()
