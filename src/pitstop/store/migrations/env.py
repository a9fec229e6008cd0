"""Alembic environment: pitstop always hands in an open connection (see pitstop.store.migrate)."""

from alembic import context

from pitstop.store.predictions.partitions import include_name
from pitstop.store.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection, target_metadata=metadata, render_as_batch=True, include_name=include_name
)
with context.begin_transaction():
    context.run_migrations()
