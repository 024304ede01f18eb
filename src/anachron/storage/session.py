"""Every SQL statement anachron issues, bound to one transaction. One code path for both databases.

A ``Session`` takes and returns records (``anachron.records``); it holds no policy. What to start, cancel or
finish is decided by the engine (``anachron.lifecycle``, ``engine.tick``, ``engine.queue``) and written here,
every status change guarded by the statuses the lifecycle lets move. Its parts, one module per concept:
``run_rows`` (runs and the queue), ``backfill_rows``, ``lease_rows`` (processes and shared duties),
``schedule_rows`` (schedules and the daemon's look-outs), ``partition_rows``, ``upkeep_rows`` (pools,
pruning); ``sql`` is how they execute. ``contract.StoreSession`` is the documented protocol it implements.
"""

from __future__ import annotations

from .backfill_rows import BackfillRows
from .lease_rows import LeaseRows
from .partition_rows import PartitionRows
from .schedule_rows import ScheduleRows
from .upkeep_rows import UpkeepRows


class Session(BackfillRows, LeaseRows, ScheduleRows, PartitionRows, UpkeepRows):
    """One transaction's statements (see the module note)."""
