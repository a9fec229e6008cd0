"""Serving: routing tables, the prediction log, labels.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

from pitstop.store.types import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "routing_tables",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("model_id", Id, sa.ForeignKey("models.id"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("champion", sa.Integer, nullable=False),
        sa.Column("challenger", sa.Integer),
        sa.Column("challenger_share", sa.Float, nullable=False),
        sa.Column("shadow", sa.Integer),
        sa.Column("salt", sa.String(64), nullable=False),
        sa.Column("rollout_id", Id),
        sa.Column("step", sa.Integer),
        sa.Column("standby", sa.Integer),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.UniqueConstraint("model_id", "version", name="uq_routing_tables_model_version"),
    )
    op.create_table(
        "predictions",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("model_id", Id, nullable=False),
        sa.Column("request_id", sa.String(200), nullable=False),
        sa.Column("user_id", sa.String(200)),
        sa.Column("time", sa.Float, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("arm", sa.String(20), nullable=False),
        sa.Column("role", sa.String(10), nullable=False),
        sa.Column("routing_version", sa.Integer, nullable=False),
        sa.Column("bucketed_by", sa.String(10), nullable=False),
        sa.Column("prediction", sa.Float),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_predictions_model_routing", "predictions", ["model_id", "routing_version"])
    op.create_index("ix_predictions_model_request", "predictions", ["model_id", "request_id"])
    op.create_index("ix_predictions_model_time", "predictions", ["model_id", "time"])
    op.create_table(
        "labels",
        sa.Column("model_id", Id, primary_key=True),
        sa.Column("request_id", sa.String(200), primary_key=True),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("time", sa.Float, nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    for table in ("labels", "predictions", "routing_tables"):
        op.drop_table(table)
