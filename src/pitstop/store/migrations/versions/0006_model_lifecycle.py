"""Model lifecycle: a description and free metadata per model, and archiving.

- `models.description`: what the model is for (null: none given).
- `models.metadata`: free `key: value` strings (null reads as none).
- `models.archived_at`, `archived_by`, `archive_reason`: set while the model is archived (retired:
  hidden from `models list`, no new versions, rollouts or routes), null otherwise. Archiving and
  unarchiving are also events; nothing else of the model changes.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from pitstop.store.types import JSONDocument, UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

COLUMNS = ("description", "metadata", "archived_at", "archived_by", "archive_reason")


def upgrade() -> None:
    # Plain ALTER TABLE ADD COLUMN (SQLite has it): a batch copy of `models` would break the foreign
    # keys that point to it.
    op.add_column("models", sa.Column("description", sa.Text))
    op.add_column("models", sa.Column("metadata", JSONDocument))
    op.add_column("models", sa.Column("archived_at", UTCDateTime))
    op.add_column("models", sa.Column("archived_by", sa.String(200)))
    op.add_column("models", sa.Column("archive_reason", sa.Text))


def downgrade() -> None:
    for column in reversed(COLUMNS):
        op.drop_column("models", column)
