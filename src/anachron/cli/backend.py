"""What the commands read and change backfills and runs through: a local ``CodeRepository``, or with
``--server`` a ``remote.Client`` speaking the HTTP API. Both answer with the same records (``Run``,
``BackfillStatus``, ``BackfillResult``, ``ScheduleStatus``), so every renderer is shared."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

from ..models import BackfillResult, BackfillStatus, Run, ScheduleStatus
from .common import CliError

if TYPE_CHECKING:
    from .hints import Hints


class Backend(Protocol):
    """The part of ``CodeRepository`` the commands use once they know what to act on."""

    def get_backfill(self, backfill_id: str, include_run_ids: bool = True) -> BackfillStatus | None: ...

    def wait_backfill(self, backfill_id: str, timeout: float | None = None) -> BackfillStatus: ...

    def list_backfills(self, status: str | Sequence[str] | None = None, workflow: str | None = None,
                       include_run_ids: bool = False, limit: int | None = None,
                       offset: int = 0) -> list[BackfillStatus]: ...

    def pause_backfill(self, backfill_id: str) -> BackfillStatus: ...

    def resume_backfill(self, backfill_id: str) -> BackfillStatus: ...

    def cancel_backfill(self, backfill_id: str) -> bool: ...

    def rerun_backfill(self, backfill_id: str, block: bool = True, dry_run: bool = False,
                       coordinate: bool = True) -> BackfillResult: ...

    def resolve_run_id(self, run_id: str) -> str: ...

    def resolve_backfill_id(self, backfill_id: str) -> str: ...

    def get_run(self, run_id: str) -> Run | None: ...

    def wait_run(self, run_id: str, timeout: float | None = None) -> Run: ...

    def list_runs(self, workflow: str | None = None, status: str | Sequence[str] | None = None,
                  backfill_id: str | None = None, tags: Mapping[str, str] | None = None,
                  limit: int | None = 100, offset: int = 0, *, partition_key: str | None = None) -> list[Run]: ...

    def cancel_run(self, run_id: str) -> bool: ...

    def run_logs(self, run_id: str) -> list[dict[str, Any]]: ...

    def list_schedules(self, workflow: str | None = None) -> list[ScheduleStatus]: ...


def where(repo: Backend) -> str:
    """Where ids are looked up, for "not found" messages: ``in <database URL>`` or ``on <server URL>``."""
    from ..repository import CodeRepository
    from .remote import Client
    from .target import mask

    if isinstance(repo, Client):
        return f"on {repo.url}"
    if isinstance(repo, CodeRepository):
        return f"in {mask(repo.storage.url)}"
    return ""


def resolve(repo: Backend, kind: str, given: str) -> str:
    """The full id named by a ``RUN_ID`` (``kind="run"``) or ``BACKFILL_ID`` argument: the id, or a unique prefix
    or suffix of one (the web UI shows a run id's last 8 characters). ``NotFoundError`` naming the argument and
    where it was looked up; ``CliError`` (exit 2) naming the candidates when several ids match."""
    from ..models import NotFoundError
    from ..repository import MIN_SHORT_ID

    name = "RUN_ID" if kind == "run" else "BACKFILL_ID"
    try:
        return repo.resolve_run_id(given) if kind == "run" else repo.resolve_backfill_id(given)
    except NotFoundError:
        short = f" (a short id needs at least {MIN_SHORT_ID} characters)" if len(given) < MIN_SHORT_ID else ""
        raise NotFoundError(f"{name}: {kind} {given!r} not found {where(repo)}{short}") from None
    except ValueError as exc:
        raise CliError(f"{name}: {exc}") from None


def open_backend(server: str | None, positionals: Sequence[str] | None, names: Sequence[str], module: str | None,
                 db: str | None, *, needs_code: str | None = None
                 ) -> tuple[AbstractContextManager[Backend], list[str], Hints]:
    """What a command acts through — the repository, or with ``--server`` (``ANACHRON_SERVER``) the server —
    with the positionals read as ``names`` (``[TARGET] NAMES``; no TARGET with a server) and the hints to
    print. ``needs_code``: the command runs work, so locally it needs the workflow code (TARGET, ``-m`` or
    the project file); the message when none is given. A server has the code."""
    from . import remote
    from . import target as targets
    from .config import load_config
    from .hints import Hints

    remote_server = remote.chosen(server)
    if remote_server is not None:
        given = remote_server.args(positionals, names, module=module, db=db)
        return remote.connect(remote_server), given, Hints.of_server(remote_server)
    config = load_config()
    target, given = targets.pick(positionals, names, module, config)
    if needs_code is not None and target is None:
        raise CliError(needs_code)
    return targets.repository(target, db, config, need_target=False), given, Hints.of(target, db, config)
