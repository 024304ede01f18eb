"""The workflow the fault trials run (importable by the trial processes and their worker processes).

``marked`` writes its own record of each execution, independent of the database: a file
``<directory>/<key>__<pid>__<attempt>__<random>`` whose first line is ``start <unix time>``, then a ``beat <time>``
line every 50 ms while it works, and ``end <time>`` when the work is done. A process killed or fenced mid-run
leaves a file without ``end``; a partition whose work completed twice leaves two files with ``end``.
"""

from __future__ import annotations

import os
import time
import uuid

import anachron as ac

DAYS = ac.DailyPartitions("2024-01-01", "2024-03-01")


@ac.workflow(partitions=DAYS)
def marked(directory: str = "", seconds: float = 0.5):
    ctx = ac.context()
    path = os.path.join(directory, f"{ctx.partition_key}__{os.getpid()}__{ctx.attempt}__{uuid.uuid4().hex[:8]}")
    with open(path, "a") as f:
        f.write(f"start {time.time()}\n")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)
        with open(path, "a") as f:
            f.write(f"beat {time.time()}\n")
    with open(path, "a") as f:
        f.write(f"end {time.time()}\n")
