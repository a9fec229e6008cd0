"""MLflow webhook deliveries: each delivery id handled, when, and what pitstop did with it, so a
delivery MLflow repeats (or an attacker replays) is answered without acting twice.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from pitstop.store.types import JSONDocument, UTCDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mlflow_deliveries",
        sa.Column("delivery_id", sa.String(200), primary_key=True),
        sa.Column("received_at", UTCDateTime, nullable=False),
        sa.Column("event", sa.String(100), nullable=False),
        sa.Column("outcome", JSONDocument, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("mlflow_deliveries")
