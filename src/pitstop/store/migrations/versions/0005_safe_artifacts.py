"""Safe model files: a format and a type allow-list per version, signatures, pickle by opt-in, and
artifact locations relative to the artifact store.

- `model_versions.format`: `skops` (loaded with only the types in `trusted_types`) or `joblib` (a
  pickle, loaded only for a model whose `allow_pickle` is true). Every version stored before this
  revision is a joblib pickle.
- `model_versions.trusted_types`: the skops type allow-list fixed at registration (null for joblib).
- `model_versions.signature`: `{scheme, key_id, value}` over the version's sha256, format and
  allow-list, made with a key the store does not hold (null when unsigned).
- `models.allow_pickle`: true for the models that already have versions, so their pickles keep
  loading (with a warning) until `pitstop models convert` moves them to skops; false for new models.
- `artifact_uri` and `datasets.uri` become relative to the artifact store (`models/ab/<sha256>.joblib`):
  files are named by content, so the last three parts of an absolute location name the same file
  under any copy of the store. Downgrading keeps them relative, which older code also reads (it looks
  a missing file up under its own artifact folder by those same three parts).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

import re

import sqlalchemy as sa
from alembic import op

from pitstop.store.types import JSONDocument

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

CONTENT_ADDRESS = re.compile(r"(?:^|/)((?:models|datasets)/[0-9a-f]{2}/[0-9a-f]{64}[^/]*)$")


def upgrade() -> None:
    # Plain ALTER TABLE ADD/DROP COLUMN (SQLite has both): a batch copy of `models` would break the
    # foreign keys that point to it.
    op.add_column(
        "model_versions", sa.Column("format", sa.String(10), nullable=False, server_default="joblib")
    )
    op.add_column("model_versions", sa.Column("trusted_types", JSONDocument))
    op.add_column("model_versions", sa.Column("signature", JSONDocument))
    op.add_column("models", sa.Column("allow_pickle", sa.Boolean, nullable=False, server_default=sa.false()))
    conn = op.get_bind()
    conn.execute(
        sa.text(
            "UPDATE models SET allow_pickle = :yes "
            "WHERE id IN (SELECT model_id FROM model_versions WHERE format = 'joblib')"
        ),
        {"yes": True},
    )
    _relative(conn, "model_versions", "artifact_uri")
    _relative(conn, "datasets", "uri")


def _relative(conn: sa.Connection, table: str, column: str) -> None:
    rows = conn.execute(sa.text(f"SELECT id, {column} FROM {table}")).all()
    for row_id, uri in rows:
        match = CONTENT_ADDRESS.search(uri)
        if match is not None and match.group(1) != uri:
            conn.execute(
                sa.text(f"UPDATE {table} SET {column} = :uri WHERE id = :id"),
                {"uri": match.group(1), "id": row_id},
            )


def downgrade() -> None:
    op.drop_column("models", "allow_pickle")
    for column in ("signature", "trusted_types", "format"):
        op.drop_column("model_versions", column)
