"""Seeded fault trials: a backfill run by real processes while one fault strikes, judged from the database *and*
from the marker files its runs write themselves (``fault_flows.marked``): executions are counted, not rows.

One trial: a fresh database; a leader process creates a 4-partition backfill (``LocalExecutor(2)``, lease
``LEASE`` seconds) and leads it; a successor process waits on it (as a daemon would: it takes the backfill over
when the leader's lease lapses). Once the first run has started, after a seeded delay, the fault strikes:

=====================  =====================================================================================
``kill_leader``        SIGKILL of the leader (its workers die with it)
``stop_leader``        SIGSTOP of the leader for longer than its lease, then SIGCONT
``kill_worker``        SIGKILL of the worker process running a partition (that run is recorded failed,
                       naming the signal, and the backfill ends failed: nothing else is affected)
``drop_connections``   PostgreSQL: every connection of the database terminated, 6 times in 2 s
``brief_lock``         SQLite: the database locked for 1 s (shorter than the lease)
``storage_outage``     storage unreachable for longer than the lease (PostgreSQL: connections refused and
                       dropped; SQLite: an exclusive lock held)
``kill_server``        SIGKILL of an ``anachron server`` leading a backfill created over HTTP
``stop_server``        SIGSTOP of that server for longer than its lease, then SIGCONT
=====================  =====================================================================================

What is measured per trial (``Outcome``): recorded successes per partition (database), executions per partition
that completed (marker files with ``end``), executions of one partition whose times overlap, runs left
``queued``/``running`` (stuck) and partitions with no recorded success (lost). ``check`` turns an outcome into
the failures the CI set asserts, "no partition's code completes twice" included (``ASSERT_NO_DOUBLE_COMPLETION``)
except under a kill, whose window is documented and counted.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).parent
TESTS = HERE.parent
ACTOR = HERE / "actor.py"
SERVER_TARGET = HERE / "fault_server.py"
LEASE = 2.0
KEYS = [f"2024-01-{d:02d}" for d in range(1, 5)]
FINISH_TIMEOUT = 90.0

#: No partition's code completes twice: outcomes survive a frozen leader or a storage outage (workers record their
#: own, and the woken leader records those it holds). A killed process (``kill_*``) is the one window left, and
#: documented (docs/deploy.md, "What is exactly once"): a run whose code finished just before its worker died with
#: the kill, its outcome not yet written, runs again — at least once. Those are reported, not failed.
ASSERT_NO_DOUBLE_COMPLETION = True
#: A leader that wakes from a freeze finishes the runs it took back (``LocalExecutor.abandon`` acts at once; it
#: used to sweep away the new attempts submitted right after it, leaving them ``running`` forever). Set to False
#: only to report such trials (``frozen_stuck``) instead of failing them.
ASSERT_NOTHING_STUCK_AFTER_A_FREEZE = True
KILLS = ("kill_leader", "kill_worker", "kill_server")
FREEZES = ("stop_leader", "stop_server", "storage_outage")

FAULTS = {
    "sqlite": ("kill_leader", "stop_leader", "kill_worker", "brief_lock", "storage_outage", "kill_server",
               "stop_server"),
    "postgresql": ("kill_leader", "stop_leader", "kill_worker", "drop_connections", "storage_outage",
                   "kill_server", "stop_server"),
}


@dataclass(frozen=True)
class Trial:
    seed: int
    backend: str  # "sqlite" | "postgresql"
    fault: str

    def __str__(self) -> str:
        return f"{self.backend}:{self.fault}:{self.seed}"


@dataclass
class Outcome:
    trial: Trial
    backfill_status: str = "?"
    successes: dict[str, int] = field(default_factory=dict)  # key → runs recorded as success
    completed: dict[str, int] = field(default_factory=dict)  # key → executions that reached "end" (markers)
    executions: int = 0
    overlaps: list[str] = field(default_factory=list)  # keys executed twice at overlapping times
    stuck: int = 0  # runs left queued or running
    worker_deaths: list[str] = field(default_factory=list)  # keys whose run failed because its worker was killed
    seconds: float = 0.0
    error: str | None = None  # the trial itself broke (a process did not start, a timeout)
    log_tail: list[str] = field(default_factory=list)  # the processes' last lines, when the trial failed
    runs: list[str] = field(default_factory=list)  # each run as the database has it: key, status, attempt, error

    @property
    def lost(self) -> list[str]:
        """Keys with no recorded success — except the run a killed worker was running: it is recorded failed
        (``worker process died ... killed by signal 9``), as an out-of-memory kill would be; a rerun runs it."""
        return [k for k in KEYS if self.successes.get(k, 0) == 0 and k not in self.worker_deaths]

    @property
    def twice(self) -> list[str]:
        return [k for k, n in self.completed.items() if n > 1]

    @property
    def recorded_twice(self) -> list[str]:
        return [k for k, n in self.successes.items() if n > 1]


def frozen_stuck(outcome: Outcome) -> bool:
    """A freeze fault after which runs stayed ``running`` under a live leader (see
    ``ASSERT_NOTHING_STUCK_AFTER_A_FREEZE``)."""
    return outcome.trial.fault in FREEZES and outcome.stuck > 0


def check(outcome: Outcome) -> list[str]:
    """What went wrong, as the CI set asserts it today (empty: the trial passed)."""
    problems = []
    if outcome.recorded_twice:
        problems.append(f"recorded success twice: {outcome.recorded_twice}")
    if outcome.overlaps:
        problems.append(f"overlapping executions: {outcome.overlaps}")
    if frozen_stuck(outcome) and not ASSERT_NOTHING_STUCK_AFTER_A_FREEZE:
        return problems  # reported, not failed (the successor's timeout and the lost keys follow from it)
    if outcome.error:
        problems.append(f"trial error: {outcome.error}")
    if outcome.stuck:
        problems.append(f"{outcome.stuck} run(s) stuck")
    if outcome.lost:
        problems.append(f"lost: {outcome.lost}")
    expected = "failed" if outcome.worker_deaths else "completed"
    if outcome.backfill_status != expected:
        problems.append(f"backfill ended {outcome.backfill_status}, expected {expected}")
    if outcome.worker_deaths and outcome.trial.fault != "kill_worker":
        problems.append(f"runs failed by a dead worker without a worker being killed: {outcome.worker_deaths}")
    if ASSERT_NO_DOUBLE_COMPLETION and outcome.twice and outcome.trial.fault not in KILLS:
        problems.append(f"completed twice: {outcome.twice}")
    return problems


def plan(count: int, seed: int, backends: tuple[str, ...], faults: tuple[str, ...] = ()) -> list[Trial]:
    """``count`` trials, faults and backends in a seeded, balanced order (each fault of each backend in turn);
    ``faults``: only these (default: every fault of each backend)."""
    rng = random.Random(seed)
    kinds = [(b, f) for b in backends for f in FAULTS[b] if not faults or f in faults]
    if not kinds:
        raise ValueError(f"no fault of {faults} applies to {backends}: see trials.FAULTS")
    trials = []
    while len(trials) < count:
        rng.shuffle(kinds)
        trials.extend(Trial(rng.randrange(1 << 30), b, f) for b, f in kinds)
    return trials[:count]


# -- databases ---------------------------------------------------------------------------------------------------
class Databases:
    """A fresh database per trial: a SQLite file, or a PostgreSQL database cloned from a migrated template."""

    def __init__(self, workdir: Path, pg_admin_url: str | None = None):
        self.workdir = workdir
        self.pg_admin_url = pg_admin_url
        self._template: str | None = None
        self._admin = None
        self._lock = threading.Lock()

    def admin(self):  # noqa: ANN201 - a SQLAlchemy engine
        from sqlalchemy import create_engine

        if self._admin is None:
            assert self.pg_admin_url is not None, "PostgreSQL trials need an admin URL"
            self._admin = create_engine(self.pg_admin_url, isolation_level="AUTOCOMMIT")
        return self._admin

    def pg_url(self, name: str) -> str:
        assert self.pg_admin_url is not None
        return f"{self.pg_admin_url.rsplit('/', 1)[0]}/{name}"

    @contextmanager
    def fresh(self, backend: str, label: str) -> Iterator[str]:
        if backend == "sqlite":
            yield f"sqlite:///{self.workdir / f'{label}.db'}"
            return
        from sqlalchemy import text

        with self._lock:
            if self._template is None:
                from anachron.storage import Storage

                template = f"anachron_faults_tmpl_{uuid.uuid4().hex[:8]}"
                with self.admin().connect() as conn:
                    conn.execute(text(f'CREATE DATABASE "{template}"'))
                Storage(self.pg_url(template)).close()  # migrated once
                self._template = template
        name = f"anachron_fault_{uuid.uuid4().hex[:10]}"
        with self.admin().connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{self._template}"'))
        try:
            yield self.pg_url(name)
        finally:
            with self.admin().connect() as conn:
                conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def close(self) -> None:
        if self._admin is not None:
            from sqlalchemy import text

            if self._template is not None:
                with self._admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{self._template}" WITH (FORCE)'))
            self._admin.dispose()


# -- processes ---------------------------------------------------------------------------------------------------
def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ANACHRON_TIME", "STARLARK_TIME", "ANACHRON_API_TOKEN")}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(TESTS), env.get("PYTHONPATH", "")])
    return env


def _spawn(args: list[str], log: Path) -> subprocess.Popen[str]:
    with open(log, "a") as out:
        return subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=out, text=True, env=_env(),
                                start_new_session=True)


def _stop(proc: subprocess.Popen[str] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGCONT)
        os.killpg(proc.pid, signal.SIGKILL)  # its session: the process and its workers
    except ProcessLookupError:
        pass
    proc.wait(10)


def _wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


# -- faults ------------------------------------------------------------------------------------------------------
def _running_pids(markers: Path) -> list[int]:
    pids = []
    for path in markers.iterdir():
        if "end " not in path.read_text():
            pids.append(int(path.name.split("__")[1]))
    return pids


def _outage(url: str, dbs: Databases, seconds: float) -> None:
    if url.startswith("sqlite"):
        locker = sqlite3.connect(url.split(":///", 1)[1], isolation_level=None, timeout=30)
        try:
            locker.execute("BEGIN EXCLUSIVE")
            time.sleep(seconds)
            locker.execute("COMMIT")
        finally:
            locker.close()
        return
    from sqlalchemy import text

    name = url.rsplit("/", 1)[1]
    with dbs.admin().connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
        try:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                conn.execute(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                  "WHERE datname = :db AND pid <> pg_backend_pid()"), {"db": name})
                time.sleep(0.2)
        finally:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))


def _drop_connections(url: str, dbs: Databases) -> None:
    from sqlalchemy import text

    name = url.rsplit("/", 1)[1]
    with dbs.admin().connect() as conn:
        for _ in range(6):
            conn.execute(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                              "WHERE datname = :db AND pid <> pg_backend_pid()"), {"db": name})
            time.sleep(0.33)


def _strike(trial: Trial, leader: subprocess.Popen[str], url: str, markers: Path, dbs: Databases,
            rng: random.Random) -> None:
    fault = trial.fault
    if fault in ("kill_leader", "kill_server"):
        os.killpg(leader.pid, signal.SIGKILL)
    elif fault in ("stop_leader", "stop_server"):
        leader.send_signal(signal.SIGSTOP)  # the process only: its workers go on until the lease fence stops them
        time.sleep(LEASE + 0.5 + rng.random())
        leader.send_signal(signal.SIGCONT)
    elif fault == "kill_worker":
        pids = _running_pids(markers)
        if pids:
            try:
                os.kill(rng.choice(pids), signal.SIGKILL)
            except ProcessLookupError:
                pass
    elif fault == "drop_connections":
        _drop_connections(url, dbs)
    elif fault == "brief_lock":
        _outage(url, dbs, 1.0)
    elif fault == "storage_outage":
        _outage(url, dbs, LEASE + 1.0 + rng.random())
    else:
        raise ValueError(f"unknown fault {fault!r}")


# -- one trial ---------------------------------------------------------------------------------------------------
def run_trial(trial: Trial, dbs: Databases, workdir: Path) -> Outcome:
    rng = random.Random(trial.seed)
    outcome = Outcome(trial)
    started = time.monotonic()
    label = f"{trial.backend}-{trial.fault}-{trial.seed}"
    markers = workdir / label
    markers.mkdir(parents=True, exist_ok=True)
    log = workdir / f"{label}.log"
    seconds = round(0.3 + rng.random() * 0.5, 2)
    leader = waiter = None
    with dbs.fresh(trial.backend, label) as url:
        try:
            backfill_id, leader = _start_leader(trial, url, markers, seconds, log)
            waiter = _spawn([str(ACTOR), "wait", url, backfill_id, str(LEASE), str(FINISH_TIMEOUT)], log)
            if not _wait_for(lambda: any(markers.iterdir()), 30):
                raise RuntimeError("no run started in 30 s")
            time.sleep(rng.random() * seconds)
            _strike(trial, leader, url, markers, dbs, rng)
            try:
                out, _ = waiter.communicate(timeout=FINISH_TIMEOUT + 15)
                outcome.backfill_status = json.loads(out.strip().splitlines()[-1])["status"]
            except (subprocess.TimeoutExpired, ValueError, IndexError, KeyError):
                outcome.backfill_status = "unfinished"
                said = [line for line in log.read_text(errors="replace").splitlines() if line[:1] not in (" ", "")]
                outcome.error = f"the successor ended without a status (exit {waiter.returncode}): {said[-3:]}"
        except Exception as exc:  # noqa: BLE001 - the trial itself broke: reported, not raised
            outcome.error = f"{type(exc).__name__}: {exc}"
        finally:
            _stop(leader)
            _stop(waiter)
        _judge(outcome, url, markers)
    outcome.seconds = time.monotonic() - started
    if check(outcome):  # what the processes said, for whoever reads the failure
        said = [line for line in log.read_text(errors="replace").splitlines() if line[:1] not in (" ", "")]
        outcome.log_tail = [*outcome.runs, *said[-12:]]
    return outcome


def _start_leader(trial: Trial, url: str, markers: Path, seconds: float, log: Path
                  ) -> tuple[str, subprocess.Popen[str]]:
    if trial.fault.endswith("_server"):
        return _start_server(url, markers, seconds, log)
    leader = _spawn([str(ACTOR), "lead", url, str(markers), ",".join(KEYS), str(seconds), str(LEASE)], log)
    assert leader.stdout is not None
    line = leader.stdout.readline().strip()
    if not line:
        raise RuntimeError(f"the leader did not start: {log.read_text()[-2000:]}")
    return line, leader


def _start_server(url: str, markers: Path, seconds: float, log: Path) -> tuple[str, subprocess.Popen[str]]:
    import httpx

    server = _spawn(["-m", "anachron.cli", "server", str(SERVER_TARGET), "--db", url, "--port", "0",
                     "--scan", "0.2"], log)  # port 0: the system picks a free one, and the log says which
    serving = re.compile(r"serving http://127\.0\.0\.1:(\d+)")
    found: list[str] = []

    def listening() -> bool:
        found[:] = serving.findall(log.read_text(errors="replace"))
        return bool(found)

    if not _wait_for(listening, 60) or not _wait_for(lambda: _answers(httpx, f"http://127.0.0.1:{found[0]}"), 30):
        _stop(server)
        raise RuntimeError(f"the server did not start: {log.read_text()[-2000:]}")
    base = f"http://127.0.0.1:{found[0]}"
    body = {"workflow": "marked", "partition_keys": KEYS, "max_concurrency": 2,
            "params": {"directory": str(markers), "seconds": seconds}}
    answer = httpx.post(f"{base}/api/v1/backfills", json=body, timeout=30)
    answer.raise_for_status()
    return str(answer.json()["backfill_id"]), server


def _answers(httpx, base: str) -> bool:  # noqa: ANN001 - the module
    try:
        return bool(httpx.get(f"{base}/api/v1/health", timeout=1).status_code == 200)
    except httpx.HTTPError:
        return False


def _judge(outcome: Outcome, url: str, markers: Path) -> None:
    """Fill ``outcome`` from the database and the marker files."""
    import fault_flows as ff

    import anachron as ac

    try:
        with ac.CodeRepository([ff.marked], storage=url, executor=ac.InProcessExecutor(1)) as observer:
            runs = observer.list_runs(limit=None)
    except Exception as exc:  # noqa: BLE001
        outcome.error = outcome.error or f"cannot read the database: {exc}"
        return
    outcome.runs = [f"{r.partition_key} {r.status} attempt {r.attempt}: {(r.error or '')[:120]}" for r in runs]
    for run in runs:
        if run.status == "success":
            outcome.successes[run.partition_key] = outcome.successes.get(run.partition_key, 0) + 1
        elif run.status in ("queued", "running"):
            outcome.stuck += 1
        elif run.status == "failed" and "worker process died" in (run.error or ""):
            outcome.worker_deaths.append(run.partition_key)
    spans: dict[str, list[tuple[float, float]]] = {}
    for path in markers.iterdir():
        key = path.name.split("__")[0]
        times = [float(line.split()[1]) for line in path.read_text().splitlines() if len(line.split()) == 2]
        outcome.executions += 1
        if "end " in path.read_text():
            outcome.completed[key] = outcome.completed.get(key, 0) + 1
        if times:
            spans.setdefault(key, []).append((min(times), max(times)))
    for key, intervals in spans.items():
        intervals.sort()
        if any(later[0] < earlier[1] for earlier, later in zip(intervals, intervals[1:])):
            outcome.overlaps.append(key)


def run_trials(trials: list[Trial], workdir: Path, pg_admin_url: str | None,
               on_outcome: Callable[[Outcome], None] | None = None, jobs: int = 1) -> list[Outcome]:
    """Run ``trials`` (``jobs`` at a time), calling ``on_outcome`` as each ends; the outcomes in trial order."""
    dbs = Databases(workdir, pg_admin_url)
    results: dict[int, Outcome] = {}
    lock = threading.Lock()
    queue = list(enumerate(trials))

    def work() -> None:
        while True:
            with lock:
                if not queue:
                    return
                index, trial = queue.pop(0)
            outcome = run_trial(trial, dbs, workdir)
            with lock:
                results[index] = outcome
                if on_outcome is not None:
                    on_outcome(outcome)

    try:
        threads = [threading.Thread(target=work) for _ in range(max(1, jobs))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        dbs.close()
    return [results[i] for i in range(len(trials))]
