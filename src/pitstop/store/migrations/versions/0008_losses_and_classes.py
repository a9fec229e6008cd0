"""Losses and multiclass models.

- `models.loss`: the per-request loss's spec (`absolute`, `squared`, `pinball:0.9`, `module:function`
  …); null keeps the task's default (absolute error, log loss), as every model stored before had.
- `models.classes`: a classifier's classes in probability order, fixed at its first version (null
  for regression and for the binary models stored before, whose classes are 0 and 1).
- `predictions.probabilities`: a multiclass prediction's probability vector (null otherwise), so its
  log loss or Brier score can be computed when the label arrives.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from pitstop.store.types import JSONDocument

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (SQLite has it): a batch copy of `models` would break the foreign keys to it.
    op.add_column("models", sa.Column("loss", sa.String(200)))
    op.add_column("models", sa.Column("classes", JSONDocument))
    op.add_column("predictions", sa.Column("probabilities", JSONDocument))


def downgrade() -> None:
    # Older code knows neither multiclass models nor other losses: it would misread such a model, and
    # dropping the columns would lose what it was chosen to be scored by.
    conn = op.get_bind()
    query = "SELECT count(*) FROM models WHERE task = 'multiclass' OR loss IS NOT NULL"
    kept = conn.execute(sa.text(query)).scalar()
    if kept:
        raise RuntimeError(
            f"{kept} model(s) are multiclass or have a chosen loss, which older versions cannot score"
        )
    op.drop_column("predictions", "probabilities")
    op.drop_column("models", "classes")
    op.drop_column("models", "loss")
