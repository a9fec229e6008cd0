"""Registry: models, versions, aliases, dataset snapshots, events.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

from pitstop.store.types import JSONDocument, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("task", sa.String(20), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("time_column", sa.String(200)),
        sa.Column("features", JSONDocument),
        sa.Column("id_columns", JSONDocument, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
    )
    op.create_table(
        "datasets",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("format", sa.String(10), nullable=False),
        sa.Column("uri", sa.Text, nullable=False),
        sa.Column("source_path", sa.Text, nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("columns", JSONDocument, nullable=False),
        sa.Column("time_column", sa.String(200)),
        sa.Column("time_min", UTCDateTime),
        sa.Column("time_max", UTCDateTime),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.UniqueConstraint("name", "version", name="uq_datasets_name_version"),
        sa.UniqueConstraint("name", "sha256", name="uq_datasets_name_sha256"),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("model_id", Id, sa.ForeignKey("models.id"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("artifact_uri", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("lineage", JSONDocument, nullable=False),
        sa.Column("gate_result", JSONDocument),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.UniqueConstraint("model_id", "version", name="uq_model_versions_model_version"),
    )
    op.create_table(
        "aliases",
        sa.Column("model_id", Id, sa.ForeignKey("models.id"), primary_key=True),
        sa.Column("alias", sa.String(40), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "events",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("time", UTCDateTime, nullable=False),
        sa.Column("model_id", Id, sa.ForeignKey("models.id")),
        sa.Column("rollout_id", Id),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("from_state", sa.String(200)),
        sa.Column("to_state", sa.String(200)),
        sa.Column("rule", sa.String(200)),
        sa.Column("reason", sa.Text),
        sa.Column("data", JSONDocument, nullable=False),
    )
    op.create_index("ix_events_model_time", "events", ["model_id", "id"])


def downgrade() -> None:
    for table in ("events", "aliases", "model_versions", "datasets", "models"):
        op.drop_table(table)
