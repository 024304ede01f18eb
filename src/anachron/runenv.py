"""The environment runs inherit: the process's, without the server's own secrets.

A run is code (a Python workflow, a YAML flow's shell commands) whose output anyone who may read its logs
sees — through the web UI and the API. It must not inherit what lets a process *be* the server:

- ``ANACHRON_API_TOKEN`` (the token of the HTTP API) and ``PGPASSWORD`` (libpq's password) are removed;
- ``ANACHRON_DATABASE_URL`` is kept **without its password** (user, host and database stay, so code that
  builds a repository still names the same database; logging in is the server's business);
- and every variable named in ``ANACHRON_SECRET_ENV`` (comma-separated names, ``*`` wildcards allowed, e.g.
  ``ANACHRON_SECRET_ENV=AWS_SECRET_ACCESS_KEY,VAULT_*``), for an operator's own secrets.

``anachron server`` and ``anachron daemon`` scrub their own environment this way once they have read what
they need, so every process they start (``LocalExecutor`` workers, shell tasks, their children) and every
run inside them sees the scrubbed one; ``LocalExecutor`` workers (also those a ``DaskExecutor`` starts on
Dask workers) and shell tasks scrub again wherever they start. What a run needs it is given explicitly:
the run's ``environ`` (``repo.run(environ=...)``, ``--env K=V``), or variables under names of its own set
where the workers run (``WAREHOUSE_PASSWORD``, not the server's). Runs still execute as the server's OS
user: this keeps secrets out of what runs see and print, not out of reach of code that sets out to read
another process's memory (``/proc/<pid>/environ``); see docs/security.md.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping, MutableMapping
from urllib.parse import parse_qsl, urlencode

__all__ = ["REMOVED", "WITHOUT_PASSWORD", "SECRET_ENV", "run_environ", "scrub_environ", "without_password"]

REMOVED = ("ANACHRON_API_TOKEN", "PGPASSWORD")
WITHOUT_PASSWORD = ("ANACHRON_DATABASE_URL",)
SECRET_ENV = "ANACHRON_SECRET_ENV"


def without_password(url: str) -> str:
    """``url`` with the password taken out of its user part and its query (``?password=``); the rest as written."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, tail = rest.partition("/")
    if "@" in authority:
        user, host = authority.rsplit("@", 1)
        authority = f"{user.split(':', 1)[0]}@{host}"
    path, question, query = tail.partition("?")
    if "password" in query.lower():
        query = urlencode([(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k.lower() != "password"])
        question = "?" if query else ""
    return f"{scheme}{sep}{authority}{slash}{path}{question}{query}"


def _secret(name: str, patterns: list[str]) -> bool:
    return name in REMOVED or any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _patterns(environ: Mapping[str, str]) -> list[str]:
    return [p.strip() for p in environ.get(SECRET_ENV, "").split(",") if p.strip()]


def run_environ(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``environ`` (default: this process's) as a run may see it."""
    source = os.environ if environ is None else environ
    patterns = _patterns(source)
    result = {k: v for k, v in source.items() if not _secret(k, patterns)}
    for name in WITHOUT_PASSWORD:
        if name in result:
            result[name] = without_password(result[name])
    return result


def scrub_environ(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Scrub ``environ`` (default: ``os.environ``, so every process started later inherits the result) in place;
    returns the names removed or changed."""
    target = os.environ if environ is None else environ
    clean = run_environ(target)
    changed = [k for k in list(target) if clean.get(k) != target[k]]
    for name in changed:
        if name in clean:
            target[name] = clean[name]
        else:
            del target[name]
    return changed
