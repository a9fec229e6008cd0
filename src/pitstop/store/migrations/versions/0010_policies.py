"""A policy per rollout, and named policies.

- `rollouts.policy_source`: where the policy a rollout stored came from (`pitstop.yaml`,
  `file:<path> sha256:<hex>`, `policy:<name>@<revision>`, `python sha256:<hex>`). Every rollout
  stored before took its policy from `pitstop.yaml`, and says so.
- `policies`: named policies kept in the store, in revisions, each with the full validated policy, the
  text it was made from and that text's sha256.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

from pitstop.store.types import JSONDocument, UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # Plain ADD COLUMN (SQLite has it): a batch copy of `rollouts` would rebuild its partial index.
    op.add_column("rollouts", sa.Column("policy_source", sa.Text))
    op.execute("UPDATE rollouts SET policy_source = 'pitstop.yaml'")
    op.create_table(
        "policies",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("policy", JSONDocument, nullable=False),
        sa.Column("source_text", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.UniqueConstraint("name", "revision", name="uq_policies_name_revision"),
    )


def downgrade() -> None:
    # Older code reads every rollout's policy as pitstop.yaml's: a rollout started with another one
    # would be shown with the wrong source, and the named policies would be lost.
    conn = op.get_bind()
    kept = conn.execute(sa.text("SELECT count(*) FROM policies")).scalar()
    other = conn.execute(
        sa.text("SELECT count(*) FROM rollouts WHERE policy_source <> 'pitstop.yaml'")
    ).scalar()
    if kept or other:
        raise RuntimeError(
            f"{kept} named policy revision(s) and {other} rollout(s) with a policy not from pitstop.yaml "
            "would be lost by the downgrade"
        )
    op.drop_table("policies")
    op.drop_column("rollouts", "policy_source")
