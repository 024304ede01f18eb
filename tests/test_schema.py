"""The migrated schema is the one ``storage/schema.py`` declares, and the head revision is Alembic's."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from anachron.storage import Storage
from anachron.storage.schema import metadata


def test_the_migrated_schema_equals_the_declared_one(storage_url):
    storage = Storage(storage_url)
    try:
        with storage.db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diffs = compare_metadata(context, metadata)
    finally:
        storage.close()
    assert diffs == []
