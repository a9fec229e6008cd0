"""Alembic environment: pitstop always hands in an open connection (see pitstop.store.migrate)."""

from alembic import context

from pitstop.store.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
