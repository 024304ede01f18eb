"""One process of a fault trial: ``lead`` (create a backfill and lead it until killed), ``wait`` (wait for it,
taking it over when its leader's lease lapses, like a daemon) or ``serve`` (``anachron server`` leading a
backfill created over HTTP is started by the runner directly).

    python actor.py lead URL DIRECTORY KEYS SECONDS LEASE     → prints the backfill id, then leads it
    python actor.py wait URL BACKFILL_ID LEASE TIMEOUT        → prints {"status", "completed"} as JSON
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fault_flows as ff  # noqa: E402
from sqlalchemy.exc import SQLAlchemyError  # noqa: E402

import anachron as ac  # noqa: E402
from anachron.storage import StorageError  # noqa: E402


def repository(url: str, lease: float) -> ac.CodeRepository:
    return ac.CodeRepository([ff.marked], storage=url, executor=ac.LocalExecutor(2), lease_seconds=lease)


if __name__ == "__main__":
    # the engine's notices (a takeover, a lapsed lease, a worker recording for its stalled coordinator) go to the
    # trial's log, whose last lines a failed trial reports
    notices = logging.StreamHandler(sys.stderr)
    notices.setFormatter(logging.Formatter("%(asctime)s %(process)d %(name)s: %(message)s"))
    logging.getLogger("anachron").addHandler(notices)
    logging.getLogger("anachron").setLevel(logging.INFO)
    command, url = sys.argv[1], sys.argv[2]
    if command == "lead":
        directory, keys, seconds, lease = sys.argv[3], sys.argv[4].split(","), float(sys.argv[5]), float(sys.argv[6])
        repo = repository(url, lease)
        result = repo.backfill(ff.marked, partition_keys=keys, max_concurrency=2, block=False,
                               params={"directory": directory, "seconds": seconds})
        print(result.backfill_id, flush=True)
        while True:
            time.sleep(60)
    elif command == "wait":
        backfill_id, lease, timeout = sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
        deadline = time.monotonic() + timeout
        with repository(url, lease) as repo:
            while True:
                try:
                    status = repo.wait_backfill(backfill_id, timeout=max(1.0, deadline - time.monotonic()))
                    break
                except (StorageError, SQLAlchemyError) as exc:  # down for longer than a wait's patience (or
                    # down when the storage is first opened): look again, as a daemon does
                    print(f"storage unavailable ({type(exc).__name__}): waiting on", file=sys.stderr, flush=True)
                    time.sleep(0.5)
            print(json.dumps({"status": status.status, "completed": status.completed_partitions}), flush=True)
    else:
        raise SystemExit(f"unknown command {command!r}")
