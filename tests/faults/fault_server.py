"""The target ``anachron server`` serves in the server fault trials: the marked workflow, a 2-second lease
(the database comes from ``--db``, which the command line puts in ``ANACHRON_DATABASE_URL`` before this import)."""

from __future__ import annotations

from fault_flows import marked

import anachron as ac

repo = ac.CodeRepository([marked], executor=ac.LocalExecutor(2), lease_seconds=2.0)
