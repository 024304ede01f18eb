"""A fleet of daemons on one PostgreSQL database, for tests/test_fleet.py.

Time runs fast here: every process maps the same real instant (``$FLEET_EPOCH``) to itself and then lets
``SPEED`` schedule seconds pass per real second, so ``* * * * *`` ticks every ``60 / SPEED`` real seconds
in every daemon alike. ``minutely`` appends ``<tick> <attempt> <pid>`` to ``$FLEET_DIR/ticks``; ``daily``
(backfilled) appends ``<key> <attempt>`` to ``$FLEET_DIR/keys``.

``minutely`` buffers overlapping ticks: under the default ``overlap="skip"`` the tick after a kill is skipped
while the killed daemon's run is still active (it is retried), and the test means to see every tick run.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta, timezone

import anachron as ac

SPEED = 30.0
EPOCH = float(os.environ.get("FLEET_EPOCH", "0") or time.time())
START = datetime.fromtimestamp(EPOCH, timezone.utc)


def fast_clock() -> datetime:
    return START + timedelta(seconds=(time.time() - EPOCH) * SPEED)


def _append(name: str, line: str) -> None:
    directory = os.environ.get("FLEET_DIR")
    if directory:
        with open(os.path.join(directory, name), "a") as f:
            f.write(line + "\n")


@ac.workflow(schedule=ac.Schedule("* * * * *", recover_missed="all", overlap="buffer"))
def minutely():
    ctx = ac.context()
    _append("ticks", f"{ctx.scheduled_time.isoformat()} {ctx.attempt} {os.getpid()}")


@ac.workflow(partitions=ac.DailyPartitions("2020-01-01", "2021-01-01"))
def daily():
    ctx = ac.context()
    time.sleep(0.02)
    _append("keys", f"{ctx.partition_key} {ctx.attempt}")


repo = ac.CodeRepository([minutely, daily], executor=ac.LocalExecutor(max_workers=2), lease_seconds=2,
                         clock=fast_clock)
