"""Rollouts and the controller's leader lease.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

from pitstop.store.types import JSONDocument, UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "rollouts",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("model_id", Id, sa.ForeignKey("models.id"), nullable=False),
        sa.Column("champion_version", sa.Integer, nullable=False),
        sa.Column("challenger_version", sa.Integer, nullable=False),
        sa.Column("phase", sa.String(20), nullable=False),
        sa.Column("step", sa.Integer),
        sa.Column("outcome", sa.String(20)),
        sa.Column("stage", sa.String(20)),
        sa.Column("reason", sa.Text),
        sa.Column("salt", sa.String(64), nullable=False),
        sa.Column("policy", JSONDocument, nullable=False),
        sa.Column("plan", JSONDocument),
        sa.Column("memory", JSONDocument, nullable=False),
        sa.Column("status", JSONDocument),
        sa.Column("phase_routing_version", sa.Integer, nullable=False),
        sa.Column("phase_started_at", UTCDateTime, nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("started_by", sa.String(200), nullable=False),
        sa.Column("ended_at", UTCDateTime),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
    )
    op.create_index(
        "uq_rollouts_one_active_per_model",
        "rollouts",
        ["model_id"],
        unique=True,
        sqlite_where=sa.text("outcome IS NULL"),
        postgresql_where=sa.text("outcome IS NULL"),
    )
    op.create_table(
        "leases",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("acquired_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("leases")
    op.drop_index("uq_rollouts_one_active_per_model", table_name="rollouts")
    op.drop_table("rollouts")
