"""The package surface: public names, and a light import."""

import subprocess
import sys

import anachron as ac


def test_public_names_are_exported_flat():
    for name in ac.__all__:
        assert hasattr(ac, name), name


def test_import_does_not_load_the_database_or_web_stack():
    code = "import sys, anachron; print(sorted(m for m in ('sqlalchemy', 'alembic', 'fastapi', 'psycopg', 'dask') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
