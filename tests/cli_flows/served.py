"""What the ``anachron server`` of tests/test_cli_remote.py serves: the CLI tests' workflows (``flows.py``:
``etl`` fails a day listed in ``bad_days.txt`` in the server's directory and sleeps ``-p sleep=SECONDS``;
``regional`` has two dimensions; ``hello`` logs a line) on an in-process executor, and ``report`` with a
yearly and a daily schedule (neither fires while a test runs, short of New Year or 05:00 UTC) to list,
pause and backfill through the Kestra trigger API.
"""

from __future__ import annotations

from flows import etl, hello, regional  # the sibling module (this file's directory is on sys.path)

import anachron as ac


@ac.workflow(schedule=[ac.Schedule("0 0 1 1 *"), ac.Schedule("0 6 * * *", timezone="Europe/Paris", id="morning")])
def report():
    return ac.now().isoformat()


repo = ac.CodeRepository([etl, hello, regional, report], executor=ac.InProcessExecutor(max_workers=4))
