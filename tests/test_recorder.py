"""A worker's own recorder (``engine/executors/recorder.py``) on the time it has: it must write a stalled
coordinator's outcomes before the process that takes over starts their runs again (a lease plus the takeover
grace after the last renewal), and opening storage in a worker can take a second on a loaded machine (the driver
is imported then). So it opens storage once a renewal is late, before the stall is declared."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from anachron.engine.executors.recorder import OPEN_AFTER, Recorder
from anachron.loading import ref_of
from anachron.records import NewRun
from anachron.runtime import RunJob, RunOutcome
from anachron.storage import Storage
from flows_basic import daily_etl
from helpers import wait_until

LEASE = 1.0


def job(run_id: str) -> RunJob:
    return RunJob(run_id, 1, ref_of(daily_etl), ("2024-01-01",), None, datetime(2024, 1, 2, tzinfo=timezone.utc), None,
                  {}, {}, None, {}, 10_000)


def test_storage_is_opened_once_a_renewal_is_late_and_outcomes_are_written_once_it_stalls(sqlite_url):
    storage = Storage(sqlite_url)  # migrated, as the coordinator does before it starts its workers
    row = NewRun("r1", "daily_etl", "running", ("2024-01-01",), "{}", "{}", 0, None, None, 1, 1.0, None, None, None,
                 1.0, None, "{}", "coordinator-1")  # running, in a worker of "coordinator-1"
    storage.run(lambda s: s.insert_runs([row]))
    recorder = Recorder(sqlite_url, "coordinator-1", LEASE)
    recorder.watch(100.0)  # the fence as the coordinator set it
    recorder.finished(job("r1"), RunOutcome("r1", 1, "success", None, (), {}, 1.0, 2.0))
    recorder.watch(100.0)
    assert recorder._storage is None  # the renewal is not late: nothing opened
    time.sleep(OPEN_AFTER * LEASE + 0.02)
    recorder.watch(100.0)  # late, not stalled yet
    assert not recorder.stalled
    wait_until(lambda: recorder._storage is not None, timeout=10)
    recorder.watch(101.0)  # renewed: no stall, nothing written
    time.sleep(LEASE / 2 + 0.02)
    recorder.watch(101.0)  # half a lease without a renewal: stalled, the outcomes it holds are written
    assert recorder.stalled
    wait_until(lambda: storage.run(lambda s: s.get_run("r1"), write=False).status == "success", timeout=10)
    storage.close()
