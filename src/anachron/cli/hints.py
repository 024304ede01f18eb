"""Follow-up commands printed in hints, written so that they work when pasted into the same shell.

A hinted command repeats what the user gave that it needs: TARGET (or ``-m MODULE``) exactly as given
(``Target.argv()``) when the command runs work, or when the database is the target's own storage; and
``--db URL`` when the database came from ``--db``. A database from ``ANACHRON_DATABASE_URL`` or the project
file is found again by itself. A command that needs the workflow code when the user gave none shows the
placeholder ``TARGET`` (what to fill in is said once, in the hint).

With ``--server`` no TARGET or database is repeated: the hint names the server again (``--server URL``) unless
it came from ``ANACHRON_SERVER``, which is found again by itself.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .config import Config
from .target import Target, database

if TYPE_CHECKING:
    from .remote import Server

PLACEHOLDER = "TARGET"


@dataclass(frozen=True)
class Hints:
    target: Target | None = None
    db: str | None = None  #: ``--db`` as given
    db_from_target: bool = False  #: no ``--db`` / variable / config: the database is the target's storage
    remote: bool = False  #: the commands drive a server (``--server`` or ``ANACHRON_SERVER``)
    server: str | None = None  #: ``--server`` as given (``None``: from ``ANACHRON_SERVER``, or local)

    @classmethod
    def of(cls, target: Target | None, db: str | None, config: Config) -> Hints:
        chosen = database(db, config)
        return cls(target, chosen.option, chosen.url is None and target is not None)

    @classmethod
    def of_server(cls, server: Server) -> Hints:
        return cls(remote=True, server=server.option and server.shown)

    def command(self, words: str, *args: str, code: bool = False) -> str:
        """``anachron WORDS [TARGET] ARGS... [--db URL]``; ``code``: the command needs the workflow code.
        Driving a server: ``anachron WORDS ARGS... [--server URL]`` (the server has the code)."""
        if self.remote:
            server = ["--server", shlex.quote(self.server)] if self.server else []
            return " ".join(["anachron", words, *args, *server])
        parts = ["anachron", words]
        where = self.target.argv() if self.target is not None else None
        if code:
            parts.append(PLACEHOLDER if where is None else where)
        elif self.db_from_target and where:
            parts.append(where)
        parts += args
        if self.db is not None:
            parts += ["--db", shlex.quote(self.db)]
        return " ".join(p for p in parts if p)

    @property
    def needs_target(self) -> bool:
        """Whether a command that needs the code will show the ``TARGET`` placeholder."""
        return self.target is None

    def with_target(self, text: str) -> str:
        """``text``, followed by what TARGET means when it shows the placeholder."""
        if self.needs_target and PLACEHOLDER in text:
            return text + " (TARGET: the Python file or -m MODULE that defines its workflows)"
        return text
