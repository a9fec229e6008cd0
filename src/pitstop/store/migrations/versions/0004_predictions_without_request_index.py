"""Drop the prediction log's index on (model_id, request_id).

Request ids are random, so each new record went to a random leaf of that index: once the table held
a few hundred thousand records, every record dirtied a page of its own (a 4 KiB WAL write on
SQLite), and the gateway's log writer cost grew from ~3 to ~30 µs of CPU per record with the table.
No query needs it: evidence and reports select predictions by routing version or time and look
labels up by their primary key.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_predictions_model_request", table_name="predictions")


def downgrade() -> None:
    op.create_index("ix_predictions_model_request", "predictions", ["model_id", "request_id"])
