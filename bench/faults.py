"""The fault soak on demand: thousands of the seeded trials of tests/faults/trials.py, tallied into bench/README.md.

    .venv/bin/python bench/faults.py                       # 1,000 trials, SQLite and PostgreSQL, 2 at a time
    .venv/bin/python bench/faults.py --trials 200 --jobs 3 --seed 5 --backends sqlite
    .venv/bin/python bench/faults.py --no-write            # print the tally only
    .venv/bin/python bench/faults.py --trials 300 --backends postgresql --faults stop_leader,stop_server --no-write

Each trial is one fault striking a 4-partition backfill led by real processes (see tests/faults/trials.py). The
tally counts, per fault and in total: trials, partitions whose code completed twice (and in how many trials),
overlapping executions, stuck runs, lost partitions, successes recorded twice, runs failed by a killed worker,
trials that broke, and the failures ``trials.check`` finds (what the CI set asserts). PostgreSQL comes from
``ANACHRON_TEST_PG`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests" / "faults"), str(ROOT / "tests")]

import trials  # noqa: E402

README = ROOT / "bench" / "README.md"
START, END = "<!-- faults:start -->", "<!-- faults:end -->"
COLUMNS = ("trials", "completed twice (partitions / trials)", "overlaps", "stuck runs", "lost", "recorded twice",
           "worker-killed runs", "trial errors", "stuck after a freeze (trials)", "check failures")


def tally(outcomes: list[trials.Outcome]) -> dict[str, list[int]]:
    rows: dict[str, list[int]] = defaultdict(lambda: [0] * 11)
    for o in outcomes:
        for name in (f"{o.trial.backend} {o.trial.fault}", "all"):
            row = rows[name]
            row[0] += 1
            row[1] += len(o.twice)
            row[2] += 1 if o.twice else 0
            row[3] += len(o.overlaps)
            row[4] += o.stuck
            row[5] += len(o.lost)
            row[6] += len(o.recorded_twice)
            row[7] += len(o.worker_deaths)
            row[8] += 1 if o.error else 0
            row[9] += 1 if trials.frozen_stuck(o) else 0
            row[10] += 1 if trials.check(o) else 0
    return dict(sorted(rows.items(), key=lambda kv: (kv[0] == "all", kv[0])))


def table(rows: dict[str, list[int]]) -> str:
    lines = ["| fault | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for name, r in rows.items():
        cells = [str(r[0]), f"{r[1]} / {r[2]}", *map(str, r[3:])]
        label = f"**{name}**" if name == "all" else name
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def section(outcomes: list[trials.Outcome], args: argparse.Namespace, seconds: float) -> str:
    rows = tally(outcomes)
    total = rows["all"]
    doubled = sorted({o.trial.fault for o in outcomes if o.twice})
    partial = "" if len(outcomes) >= args.trials else f" (interim: {len(outcomes):,} of the {args.trials:,} planned)"
    median = statistics.median(o.seconds for o in outcomes)
    command = (f".venv/bin/python bench/faults.py --trials {args.trials} --jobs {args.jobs} --seed {args.seed} "
               f"--backends {','.join(args.backends)}" + (f" --faults {','.join(args.faults)}" if args.faults else ""))
    return "\n".join([
        START,
        "## Fault soak (`bench/faults.py`)",
        "",
        f"`{command}` — {len(outcomes):,} trials{partial} in {seconds / 60:.0f} min ({median:.1f} s median per trial, "
        f"{args.jobs} at a time, 2 cores shared with other work). Each trial: one fault striking a 4-partition "
        "backfill led by real processes (lease 2 s), judged from the database and from the marker files the runs "
        "write themselves (tests/faults/trials.py).",
        "",
        table(rows),
        "",
        f"What the tally shows: {total[3]} overlapping executions, {total[4]} stuck runs, {total[5]} lost "
        f"partitions, {total[6]} successes recorded twice, {total[10]} trials failing the CI checks; {total[9]} "
        "trials where a leader woken from a freeze left the runs it took back `running` forever "
        "(`trials.ASSERT_NOTHING_STUCK_AFTER_A_FREEZE`). "
        f"{total[1]} partitions' code completed twice, in {total[2]} trials, under these faults: "
        f"{', '.join(doubled) or 'none'}. A frozen leader or a storage outage must give none (its workers record "
        "their own outcomes, the woken leader records those it holds: `trials.ASSERT_NO_DOUBLE_COMPLETION` fails "
        "such a trial); under a kill, a run whose code finished just before its process died, its outcome not yet "
        "written, runs again — the documented at-least-once window, counted here and not failed. "
        "Worker-killed runs are recorded failed by design (a rerun runs them).",
        END,
    ])


def write(text: str) -> None:
    current = README.read_text()
    if START in current and END in current:
        head, rest = current.split(START, 1)
        current = head + text + rest.split(END, 1)[1]
    else:
        current = current.rstrip("\n") + "\n\n" + text + "\n"
    README.write_text(current)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--backends", type=lambda s: tuple(s.split(",")), default=("sqlite", "postgresql"))
    parser.add_argument("--faults", type=lambda s: tuple(s.split(",")), default=(),
                        help="only these faults (names in tests/faults/trials.py), e.g. stop_leader,stop_server")
    parser.add_argument("--no-write", action="store_true", help="print the tally, leave bench/README.md alone")
    parser.add_argument("--every", type=int, default=50, help="write an interim tally every N trials")
    args = parser.parse_args()
    pg = os.environ.get("ANACHRON_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    plan = trials.plan(args.trials, args.seed, args.backends, args.faults)
    started = time.monotonic()
    done: list[trials.Outcome] = []

    def progress(outcome: trials.Outcome) -> None:
        done.append(outcome)
        problems = trials.check(outcome)
        print(f"[{len(done)}/{len(plan)}] {outcome.trial} {outcome.seconds:.1f}s twice={outcome.twice} "
              f"{'FAIL ' + str(problems) if problems else 'ok'}", flush=True)
        for line in outcome.log_tail if problems else ():  # the runs as stored, and what the processes said last
            print(f"    {line}", flush=True)
        if not args.no_write and len(done) % args.every == 0 and len(done) < len(plan):
            write(section(list(done), args, time.monotonic() - started))  # an interim tally survives a stop

    with tempfile.TemporaryDirectory(prefix="anachron-faults-") as work:
        outcomes = trials.run_trials(plan, Path(work), pg if "postgresql" in args.backends else None,
                                     progress, jobs=args.jobs)
    text = section(outcomes, args, time.monotonic() - started)
    print(text)
    if not args.no_write:
        write(text)


if __name__ == "__main__":
    main()
