"""Alembic environment: runs on the connection anachron hands it (see storage/engine.py)."""

from alembic import context

from anachron.storage.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
