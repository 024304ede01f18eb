"""A trigger (one schedule of one workflow) has at most one active backfill, whichever door created it.

Kestra's rule, enforced here for every door — ``repo.backfill_schedule``, ``repo.backfill`` over a schedule's
ticks, the CLI, the web UI's tick form, ``POST /api/v1/backfills`` with a ``trigger_id`` and Kestra's
``PUT /api/v1/triggers``: a second backfill of a trigger while one is requested, in progress or paused is
refused (``ConflictError``, a 409 over HTTP), naming the active one. The check and the insert run in one
transaction holding the schedule's row lock, so two processes asking at once cannot both pass it.
"""

from __future__ import annotations

import getpass
import os
from typing import TYPE_CHECKING

from ..models import ACTIVE_BACKFILL_STATUSES, TRIGGER_TAG, ConflictError

if TYPE_CHECKING:
    from ..storage.contract import StoreSession as Session


def refuse_second(s: Session, trigger: tuple[str, str], idempotency_key: str | None) -> None:
    """Raise ``ConflictError`` naming the trigger's active backfill, if it has one (one created with the same
    ``idempotency_key`` is the same request, not a second one)."""
    workflow, schedule_id = trigger
    for record in s.list_backfills(ACTIVE_BACKFILL_STATUSES, workflow):
        if record.tags.get(TRIGGER_TAG) == schedule_id and record.workflows == (workflow,):
            if idempotency_key is not None and record.idempotency_key == idempotency_key:
                continue
            raise ConflictError(
                f"trigger_id: schedule {schedule_id!r} of workflow {workflow!r} already has an active backfill, "
                f"{record.backfill_id} ({record.status}): a trigger has one active backfill at a time; let it "
                "finish, or cancel it first")


def local_user() -> str:
    """Who a backfill created by this process is recorded as: the OS user (``uid:<n>`` when it has no name)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError, ImportError):
        return f"uid:{os.getuid()}" if hasattr(os, "getuid") else "unknown"
