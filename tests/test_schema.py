"""The migrated schema is the one ``storage/schema.py`` declares, and the head revision is Alembic's."""

from __future__ import annotations

import subprocess
import sys

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


def test_the_head_revision_is_alembics():
    from anachron.storage.engine import _alembic_head, head_revision

    assert head_revision() == _alembic_head()


def _scripts(folder, *pairs: tuple[str, str | None]):
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    for revision, down in pairs:
        down_text = "None" if down is None else f'"{down}"'
        (folder / f"{revision}_x.py").write_text(f'"""x"""\nrevision = "{revision}"\ndown_revision = {down_text}\n'
                                                 "branch_labels = None\n")
    return folder


def test_the_head_is_read_without_alembic_only_off_one_line_of_history(tmp_path):
    from anachron.storage.engine import linear_head

    assert linear_head(_scripts(tmp_path / "line", ("0001", None), ("0002", "0001"), ("0003", "0002"))) == "0003"
    assert linear_head(_scripts(tmp_path / "branch", ("0001", None), ("0002", "0001"), ("0003", "0001"))) is None
    assert linear_head(_scripts(tmp_path / "roots", ("0001", None), ("0002", None))) is None
    assert linear_head(_scripts(tmp_path / "dangling", ("0002", "0001"))) is None
    merge = _scripts(tmp_path / "merge", ("0001", None), ("0002", "0001"), ("0003", "0001"))
    (merge / "0004_x.py").write_text('revision = "0004"\ndown_revision = ("0002", "0003")\n')
    assert linear_head(merge) is None  # a merge's tuple is Alembic's to read
    typed = _scripts(tmp_path / "typed", ("0001", None))
    (typed / "0002_x.py").write_text('revision: str = "0002"\r\ndown_revision: Union[str, None] = "0001"\r\n')
    assert linear_head(typed) == "0002"  # Alembic's newer template annotates them


def test_opening_a_current_database_does_not_import_alembic(tmp_path):
    """Every command opens its database; one whose schema is current costs no migration machinery."""
    url = f"sqlite:///{tmp_path}/a.db"
    code = ("import sys; from anachron.storage import Storage; s = Storage(sys.argv[1]); s.close(); "
            "print('alembic' in sys.modules)")
    first = subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True, check=True)
    again = subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True, check=True)
    assert (first.stdout.strip(), again.stdout.strip()) == ("True", "False")  # migrated once, then only read
