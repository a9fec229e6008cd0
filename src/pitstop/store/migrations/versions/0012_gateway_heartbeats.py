"""Gateway heartbeats: one row per gateway process with what it serves per model (routing version,
versions loaded and warmed), upserted every few seconds, so a routing step counts as in force only
once every live gateway acknowledges it.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from pitstop.store.types import JSONDocument, UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_heartbeats",
        sa.Column("gateway", sa.String(200), primary_key=True),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("last_seen", UTCDateTime, nullable=False),
        sa.Column("serving", JSONDocument, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("gateway_heartbeats")
