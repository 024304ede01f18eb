"""Kill the coordinating process (and so its workers) mid-backfill; a new process that waits on the
backfill takes it over, and every partition ends with exactly one successful run."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

import anachron as ac
import flows_basic as fb
from helpers import alive, children, wait_for

TESTS = Path(__file__).parent
KEYS = [f"2024-01-{d:02d}" for d in range(1, 31)]

SCRIPT = textwrap.dedent("""
    import json, sys, time
    sys.path.insert(0, {tests!r})
    import anachron as ac
    import flows_basic as fb

    if __name__ == "__main__":
        repo = ac.CodeRepository([fb.sleepy], storage={url!r}, executor=ac.LocalExecutor(2), lease_seconds=2)
        if sys.argv[1] == "start":
            result = repo.backfill(fb.sleepy, partition_keys={keys!r}, params={{"seconds": 0.2}},
                                   max_concurrency=2, block=False)
            print(result.backfill_id, flush=True)
            time.sleep(600)
        else:
            status = repo.wait_backfill(sys.argv[2], timeout=120)
            print(json.dumps({{"status": status.status, "completed": status.completed_partitions}}), flush=True)
            repo.close()
""")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sigkill_mid_backfill_then_take_over(backend, tmp_path, request):
    url = f"sqlite:///{tmp_path / 'crash.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    script = tmp_path / "coordinator.py"
    script.write_text(SCRIPT.format(tests=str(TESTS), url=url, keys=KEYS))
    first = subprocess.Popen([sys.executable, str(script), "start"], stdout=subprocess.PIPE, text=True)
    backfill_id = first.stdout.readline().strip()
    assert backfill_id, "the first coordinator did not start the backfill"
    observer = ac.CodeRepository([fb.sleepy], storage=url, executor=ac.InProcessExecutor(1))
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status = observer.get_backfill(backfill_id)
            if status.completed_partitions >= 5 and status.running_runs >= 1:
                break
            time.sleep(0.02)
        workers = children(first.pid, "spawn_main")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        # what the dead process left running (nothing can change these until someone takes over)
        in_flight = {r.run_id for r in observer.list_runs(backfill_id=backfill_id, status="running", limit=None)}
        assert in_flight and workers
        # the workers die with their parent
        assert wait_for(lambda: not any(alive(p) for p in workers), 5), "worker processes outlived the coordinator"

        second = subprocess.run([sys.executable, str(script), "wait", backfill_id], capture_output=True,
                                text=True, timeout=180)
        assert second.returncode == 0, second.stderr
        final = json.loads(second.stdout.strip().splitlines()[-1])
        assert final == {"status": "completed", "completed": len(KEYS)}

        runs = observer.list_runs(backfill_id=backfill_id, limit=None)
        per_key = Counter(r.partition_key for r in runs)
        assert sorted(per_key) == KEYS and set(per_key.values()) == {1}  # none lost, none duplicated
        assert all(r.status == "success" for r in runs)
        retried = {r.run_id: r.attempt for r in runs if r.run_id in in_flight}
        assert retried and all(attempt >= 2 for attempt in retried.values()), retried
    finally:
        observer.close()
        if first.poll() is None:
            first.kill()
