"""Compare this checkout's speed with another commit's, in the same run on the same machine.

    .venv/bin/python bench/compare.py REV [case ...] [--rounds N]

``REV`` is checked out beside this one (a detached ``git worktree`` under a temporary directory); each case of
``bench_backfill.py`` then runs alternately on the other commit's code and on this one's (``PYTHONPATH`` picks
the ``src`` each process imports; both run this checkout's benchmark script), ``--rounds`` times each (3 by
default), so a busy moment of a shared machine slows both sides alike. Prints, per case, each side's median
(with its lowest and highest round), the ratio this / other of the medians, and the median of each round's own
ratio (``paired``: less moved by the machine's speed drifting over the run). Higher is better for rates,
lower for times.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RATE_KEYS = ("per_second", "rate")


def run(src: Path, case: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run([sys.executable, str(HERE / "bench_backfill.py"), "--one", case], capture_output=True,
                         text=True, cwd=HERE, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{case} on {src} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def option(argv: list[str], name: str, default: int) -> tuple[int, list[str]]:
    """``--name N`` out of ``argv``: its value (``default`` without it) and the other arguments."""
    if name not in argv:
        return default, argv
    i = argv.index(name)
    return int(argv[i + 1]), argv[:i] + argv[i + 2:]


@contextlib.contextmanager
def checked_out(rev: str) -> Iterator[Path]:
    """``rev`` checked out beside this checkout (a detached ``git worktree``), for as long as it is used."""
    with tempfile.TemporaryDirectory() as tmp:
        other = Path(tmp) / "other"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(other), rev], check=True,
                       capture_output=True)
        try:
            yield other
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(other)], check=False,
                           capture_output=True)


def main(argv: list[str]) -> None:
    rounds, argv = option(argv, "--rounds", 3)
    if not argv:
        raise SystemExit(__doc__)
    rev, cases = argv[0], argv[1:] or ["inprocess", "local64", "local4", "postgres", "import"]
    with checked_out(rev) as other:
        for case in cases:
            mine, theirs = [], []
            for _ in range(rounds):
                theirs.append(run(other / "src", case))
                mine.append(run(ROOT / "src", case))
            key = next((k for k in RATE_KEYS if k in mine[0]), "ms" if "ms" in mine[0] else "seconds")
            a = statistics.median(r[key] for r in theirs)
            b = statistics.median(r[key] for r in mine)
            # a round's two runs are seconds apart, the first and last rounds minutes: a round's own ratio
            # moves less with the machine's speed drifting than the ratio of the medians does
            paired = statistics.median(m[key] / t[key] for m, t in zip(mine, theirs))
            print(f"{case}: {key} {rev}={a:,.1f} [{_spread(theirs, key)}] this={b:,.1f} [{_spread(mine, key)}] "
                  f"ratio={b / a:.3f} paired={paired:.3f}", flush=True)


def _spread(results: list[dict], key: str) -> str:
    """The lowest and highest of one side's rounds."""
    values = sorted(r[key] for r in results)
    return f"{values[0]:,.1f}..{values[-1]:,.1f}"


if __name__ == "__main__":
    main(sys.argv[1:])
