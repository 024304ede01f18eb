"""A Python workflow that logs which of the server's secrets its process sees (tests/test_security.py)."""

from __future__ import annotations

import os

import anachron as ac


@ac.workflow
def environment(names: str = "ANACHRON_API_TOKEN,PGPASSWORD,ANACHRON_DATABASE_URL,MY_SERVICE_KEY,PLAIN_SETTING"):
    for name in names.split(","):
        value = os.environ.get(name)
        ac.context().log.info("%s", f"{name}={value}" if value is not None else f"{name} unset")
