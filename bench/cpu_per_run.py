"""Where the CPU of a LocalExecutor backfill goes: this checkout against another commit, per run, per process.

    .venv/bin/python bench/cpu_per_run.py REV [--rounds N] [--concurrency C]

Like ``compare.py``, ``REV`` is checked out beside this one and the two run alternately in fresh processes
(``--rounds`` pairs, 10 by default): a warm 10,000-partition no-op backfill on ``LocalExecutor(4)`` at
``max_concurrency`` C (64 by default). Each run reports its rate, the CPU its own process used per run (the
coordinator's, dispatcher's and main threads: ``getrusage``), the CPU its worker processes used per run (from
``/proc``, Linux only) and its context switches. Printed per figure: each side's median and the median of the
rounds' own ratios (this / other). CPU per run moves less with a busy moment than the rate does, and says
which side of the process boundary a change of speed comes from.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from compare import checked_out, option

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
N = 10_000
FIGURES = ("rate", "own_us", "workers_us", "switches")


def _cpu_seconds(stat_path: str) -> float:
    with open(stat_path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _children_cpu() -> dict[str, float]:
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
            if parent == os.getpid():
                found[pid] = _cpu_seconds(f"/proc/{pid}/stat")
        except (OSError, ValueError):
            continue  # ended meanwhile
    return found


def measure(concurrency: int) -> dict[str, float]:
    """One run, in this process (``PYTHONPATH`` says whose code)."""
    sys.path.insert(0, str(HERE))
    import anachron as ac
    from noop_flows import noop

    with tempfile.TemporaryDirectory() as tmp:
        repo = ac.CodeRepository([noop], storage=f"sqlite:///{tmp}/bench.db", executor=ac.LocalExecutor(4))
        keys = noop.partitions.get_partition_keys()
        repo.backfill(noop, partition_keys=[keys[N]], max_concurrency=concurrency)  # warm: workers started
        workers_before, before = _children_cpu(), resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        result = repo.backfill(noop, partition_range=ac.PartitionKeyRange.single(keys[0], keys[N - 1]),
                               max_concurrency=concurrency)
        elapsed = time.perf_counter() - started
        after, workers_after = resource.getrusage(resource.RUSAGE_SELF), _children_cpu()
        repo.close()
    assert result.completed == N, result
    own = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    workers = sum(cpu - workers_before.get(pid, 0.0) for pid, cpu in workers_after.items())
    switches = after.ru_nvcsw - before.ru_nvcsw + after.ru_nivcsw - before.ru_nivcsw
    return {"rate": N / elapsed, "own_us": own / N * 1e6, "workers_us": workers / N * 1e6, "switches": switches}


def _run(src: Path, concurrency: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--one", str(concurrency)], capture_output=True, text=True,
                         cwd=HERE, env={**os.environ, "PYTHONPATH": str(src)})
    if out.returncode != 0:
        raise RuntimeError(f"a run on {src} failed:\n{out.stderr}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str]) -> None:
    if argv[:1] == ["--one"]:
        print(json.dumps(measure(int(argv[1]))))
        return
    rounds, argv = option(argv, "--rounds", 10)
    concurrency, argv = option(argv, "--concurrency", 64)
    if len(argv) != 1:
        raise SystemExit(__doc__)
    rev = argv[0]
    with checked_out(rev) as other:
        pairs = [(_run(other / "src", concurrency), _run(ROOT / "src", concurrency)) for _ in range(rounds)]
    print(f"LocalExecutor(4), max_concurrency={concurrency}, {rounds} rounds: {rev} then this, alternately")
    for figure in FIGURES:
        theirs = statistics.median(t[figure] for t, _ in pairs)
        mine = statistics.median(m[figure] for _, m in pairs)
        paired = statistics.median(m[figure] / t[figure] for t, m in pairs if t[figure])
        print(f"{figure:>10}: {rev}={theirs:,.1f} this={mine:,.1f} paired={paired:.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
