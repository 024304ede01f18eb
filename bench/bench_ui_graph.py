"""The web UI's graph pages on a graph with history (SQLite): the graph page, and a graph backfill's page whose
per-workflow counts come from the same read as its grid.

    .venv/bin/python bench/bench_ui_graph.py          # 1 year of hourly history (about 10,000 runs)
    .venv/bin/python bench/bench_ui_graph.py 5        # 5 years (about 46,000 runs)

The graph is ``graph_noop_flows`` (hourly ``raw`` → ``daily`` → ``weekly``, ``hourly_alone``, a ``depends_on_past``
``chain``). One graph backfill from ``raw`` with ``include="downstream"`` over the years given really runs
(``InProcessExecutor(4)``, no-op runs), then each page is fetched through the real app (FastAPI's TestClient): the
figure is the median of 9 fetches after a warm-up. ``backfill_snapshot`` is also timed with and without the
per-workflow read (the grouped count of the backfill's runs) to show what the per-workflow rows cost.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
CALLS = 9


def median_ms(fn) -> float:
    fn()
    times = []
    for _ in range(CALLS):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main(years: int) -> None:
    from fastapi.testclient import TestClient

    import anachron as ac
    import graph_noop_flows as flows
    from anachron.api import create_app
    from anachron.engine.backfills import read_workflow_counts

    workflows = [flows.raw, flows.daily, flows.weekly, flows.hourly_alone, flows.chain]
    with tempfile.TemporaryDirectory() as tmp:
        repo = ac.CodeRepository(workflows, storage=f"sqlite:///{tmp}/ui.db", executor=ac.InProcessExecutor(4))
        started = time.perf_counter()
        end = f"{2019 + years}-12-31T23:00"
        result = repo.backfill(flows.raw, start="2020-01-01", end=end, include="downstream", max_concurrency=16)
        took = time.perf_counter() - started
        assert result.status == "completed", result.status
        runs = result.num_runs
        print(f"history: a graph backfill of {runs:,} runs ({result.workflows}) in {took:.1f} s")
        bid = result.backfill_id
        with TestClient(create_app(repo, daemon=False)) as client:
            assert client.get("/graph").status_code == 200
            graph_ms = median_ms(lambda: client.get("/graph"))
            page_ms = median_ms(lambda: client.get(f"/backfills/{bid}"))
            live_ms = median_ms(lambda: client.get(f"/backfills/{bid}?fragment=live"))
            workflow_ms = median_ms(lambda: client.get("/workflows/raw"))
        snapshot_ms = median_ms(lambda: repo.backfill_snapshot(bid))
        record = repo.storage.run(lambda s: s.get_backfill(bid), write=False)
        counts_ms = median_ms(lambda: repo.storage.run(lambda s: read_workflow_counts(s, record), write=False))
        repo.close()
    print(f"GET /graph (5 workflows, {runs:,} runs of history): {graph_ms:.0f} ms")
    print(f"GET /workflows/raw (its grid: 43,848 hourly keys, {result.workflows['raw']['num_partitions']:,} of "
          f"them with a run): {workflow_ms:.0f} ms")
    print(f"GET /backfills/<graph backfill> ({runs:,} runs): {page_ms:.0f} ms; its live fragment: {live_ms:.0f} ms")
    print(f"backfill_snapshot (grid + status + per-workflow counts, one read): {snapshot_ms:.1f} ms, of which the "
          f"per-workflow count: {counts_ms:.1f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
