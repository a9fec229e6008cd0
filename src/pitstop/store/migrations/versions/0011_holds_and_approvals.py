"""Holds, warnings and step approvals on a rollout.

- `rollouts.held_at`, `held_rule`, `held_reason`: a hold by a health trigger whose action is `hold`
  (null when not held); the share stays frozen until a person resumes or rolls back.
- `rollouts.warned`: the rules already warned about in the current phase or step, so a warning is
  recorded once per phase or step, not at every look (a JSON list; null: none yet).
- `rollouts.approvals`: the ramp steps a person approved leaving, with who, when and why (a JSON list).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from pitstop.store.types import JSONDocument, UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (SQLite has it): a batch copy of `rollouts` would rebuild its partial index.
    op.add_column("rollouts", sa.Column("held_at", UTCDateTime))
    op.add_column("rollouts", sa.Column("held_rule", sa.String(50)))
    op.add_column("rollouts", sa.Column("held_reason", sa.Text))
    op.add_column("rollouts", sa.Column("warned", JSONDocument))
    op.add_column("rollouts", sa.Column("approvals", JSONDocument))


def downgrade() -> None:
    # Older code cannot see a hold: it would advance a held rollout at its next look.
    conn = op.get_bind()
    held = conn.execute(
        sa.text("SELECT count(*) FROM rollouts WHERE held_at IS NOT NULL AND outcome IS NULL")
    )
    if held.scalar():
        raise RuntimeError("an active rollout is held, which older versions would advance: resume it first")
    op.drop_column("rollouts", "approvals")
    op.drop_column("rollouts", "warned")
    op.drop_column("rollouts", "held_reason")
    op.drop_column("rollouts", "held_rule")
    op.drop_column("rollouts", "held_at")
