"""Graph backfill planning (issue 15): a three-level graph over 1,000,000 upstream hourly keys.

    .venv/bin/python bench/bench_graph.py            # every case, 3 fresh processes each, medians
    .venv/bin/python bench/bench_graph.py dry_run    # one case

The graph: ``raw`` (hourly, exactly 1,000,000 keys from 1910-01-01, UTC) → ``daily`` (41,667 days) → ``weekly``
(5,953 weeks), the mappings inferred. Each case runs in a fresh process on a fresh SQLite file and reports the wall
time of the call (and of the same call again: the first one also imports pydantic), the process's peak RSS
(``ru_maxrss``: the interpreter and ``import anachron`` included) and ``strftime_loop_ms``, the yardstick of the
machine's speed at that moment (see ``bench_backfill.py``):

- ``dry_run``: ``repo.backfill("raw", start=..., include="downstream", dry_run=True)`` — every hour, and the days
  and weeks mapped from them: 1,047,620 partitions in 1,047,620 runs, counted per workflow.
- ``dry_run_missing``: the same with ``reprocess="missing"`` (nothing has run yet: everything is missing).
- ``heal``: ``reprocess="missing"`` after 20,000 hours of the middle have run (one hour among them lost) and their
  832 whole days: the statuses read from storage; the plan keeps the lost hour and its day, the 980,000 hours
  never run and the days and weeks that need them.
- ``order``: the plan rebuilt from its frozen spec (as a leader does); its first 200,000 runs in order (as the
  coordinator creates them, a window at a time): microseconds per run; 100 random positions, each on a freshly
  rebuilt plan (a leader taking over mid-plan): milliseconds per position; and the first 100,000 runs a window
  of 64 at a time, each window's runs created and then its readiness asked (``needs``): microseconds per run.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
N_HOURS = 1_000_000
START = datetime(1910, 1, 1)
CASES = ("dry_run", "dry_run_missing", "heal", "order")


def _strftime_loop_ms() -> float:
    from bench_backfill import _strftime_loop_ms as loop

    return loop()


def repository(url: str):
    import anachron as ac

    hours = ac.HourlyPartitions(START, START + timedelta(hours=N_HOURS))

    @ac.workflow(partitions=hours)
    def raw() -> None:
        pass

    @ac.workflow(partitions=ac.DailyPartitions(START, START + timedelta(hours=N_HOURS)), deps=[raw])
    def daily() -> None:
        pass

    @ac.workflow(partitions=ac.WeeklyPartitions("1910-01-03", "2024-01-29"), deps=[daily])
    def weekly() -> None:
        pass

    return ac.CodeRepository([raw, daily, weekly], storage=url, executor=ac.InProcessExecutor(4))


def case(name: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        repo = repository(f"sqlite:///{tmp}/bench.db")
        repo.storage  # noqa: B018 - open (and migrate) the database before timing
        out: dict = {"case": name}
        if name == "heal":
            from anachron.records import NewRun

            keys = repo.workflow("raw").partitions.get_partition_keys()
            now = time.time()
            rows = [NewRun(f"r{i}", "raw", "success", (keys[i],), "{}", "{}", 0, None, f"seed:{i}", 1, now, None, None,
                           None, now, None, "{}", None) for i in range(500_000, 520_000) if i != 510_000]
            days = repo.workflow("daily").partitions.get_partition_keys()
            first = days.index(keys[500_000][:10])
            rows += [NewRun(f"d{i}", "daily", "success", (days[i],), "{}", "{}", 0, None, f"seed:d{i}", 1, now, None,
                            None, None, now, None, "{}", None) for i in range(first + 1, first + 833)]
            repo.storage.run(lambda s: s.insert_runs(rows))
        started = time.perf_counter()
        if name == "order":  # the plan as a leader rebuilds it from its frozen spec, and walks it
            import json as js

            from anachron.graph_planning import freeze_graph_plan
            from anachron.planning import build_plan, selection_spec

            registry, now = repo.workflow_registry, datetime.now().astimezone()
            spec = js.loads(js.dumps(freeze_graph_plan(
                registry, [registry["raw"]], "downstream", selection_spec(start=START, now=now), None,
                "oldest_first", "all", now, {}, {})))
            plan = build_plan(spec, registry, {})
            t = time.perf_counter()
            count = sum(1 for _ in plan.runs(0, 200_000))
            out["us_per_run_in_order"] = round((time.perf_counter() - t) / count * 1e6, 2)
            t = time.perf_counter()
            for i in range(100):
                build_plan(spec, registry, {}).run((i * 7_919_993) % plan.num_runs)  # a fresh plan each time
            out["ms_per_random_position"] = round((time.perf_counter() - t) / 100 * 1e3, 2)
            plan = build_plan(spec, registry, {})  # a window of 64 runs created, then its readiness asked
            t, g = time.perf_counter(), 0
            while g < 100_000:
                list(plan.runs(g, g + 64))
                plan.needs(g, g + 64)
                g += 64
            out["us_per_run_created_and_readiness"] = round((time.perf_counter() - t) / g * 1e6, 2)
        else:
            reprocess = "all" if name == "dry_run" else "missing"
            result = repo.backfill("raw", start=START, include="downstream", dry_run=True, reprocess=reprocess)
            out["seconds"] = round(time.perf_counter() - started, 3)
            started = time.perf_counter()  # again: the first call also imports pydantic (the request model)
            repo.backfill("raw", start=START, include="downstream", dry_run=True, reprocess=reprocess)
            out["seconds_again"] = round(time.perf_counter() - started, 3)
            out["workflows"] = result.workflows
            out["num_runs"] = result.num_runs
        out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        out["strftime_loop_ms"] = round(_strftime_loop_ms())  # the machine's speed at that moment
        repo.close()
        return out


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--one":
        print(json.dumps(case(sys.argv[2])))
        return
    chosen = sys.argv[1:] or list(CASES)
    for name in chosen:
        samples = [json.loads(subprocess.run([sys.executable, __file__, "--one", name], check=True,
                                             capture_output=True, text=True).stdout) for _ in range(3)]
        summary = dict(samples[0])
        for field in ("seconds", "seconds_again", "peak_rss_mb", "us_per_run_in_order", "ms_per_random_position",
                      "us_per_run_created_and_readiness", "strftime_loop_ms"):
            if field in summary:
                summary[field] = statistics.median(s[field] for s in samples)
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
