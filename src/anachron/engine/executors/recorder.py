"""A worker's own record of the runs it finished, for when its coordinator stalls.

Normally a worker process reports each outcome to its coordinator, which records it (in batches). When the
coordinator stalls — frozen (SIGSTOP, a paused VM, a long GC pause) or cut off from storage — those outcomes
wait in its memory, its lease lapses, and the process that takes over would run the finished runs again.
So a worker watches its coordinator's lease deadline (the fence, in shared memory): when it has not moved on
for half a lease (a live coordinator moves it every third of one), the worker records the outcomes it
reported recently, and every later one, itself. Each write is guarded like the coordinator's — only the
attempt that ran, of a run still active or queued again but not restarted (``anachron.lifecycle``) — so an
outcome the coordinator did record is refused, never counted twice. Storage is opened ahead, once a renewal
is late (0.4 of a lease): importing the database driver can take a second on a loaded machine, and the
outcomes must be written before the process that takes over starts their runs again (a lease plus
``lifecycle.takeover_grace`` after the last renewal).

What stays at least once: a run whose worker is killed between finishing and recording runs again.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import TYPE_CHECKING, NamedTuple

from ...clock import SYSTEM_CLOCK
from ...models import CANCELED, FAILED, SUCCESS
from ...records import InFlight
from ...runtime import RunJob, RunOutcome

if TYPE_CHECKING:
    from ...storage import Storage

log = logging.getLogger("anachron.worker")
RECORDABLE = (SUCCESS, FAILED, CANCELED)
PATIENCE = 2.0  # seconds one write is retried (storage may be out of reach: the coordinator's lease lapsed)
#: outcomes kept: far more than a worker holds unrecorded at once (the jobs its coordinator hands it ahead,
#: at most ``MAX_PREFETCH_PER_WORKER`` + 1, and a tick's worth more), so memory stays flat at any rate
KEPT = 1024
GIVE_UP_AFTER_LEASES = 3  # an outcome not written after this many leases is left to the coordinator
OPEN_AFTER = 0.4  # of a lease without a renewal (one is due every third): storage is opened, ready to write


class _Finished(NamedTuple):
    at: float  # monotonic
    outcome: RunOutcome
    inflight: InFlight


class Recorder:
    """Keeps the outcomes of the last few leases; writes them when ``stalled`` says the coordinator stalled."""

    def __init__(self, storage_url: str | None, owner: str | None, lease_seconds: float):
        self.enabled = bool(storage_url and owner and lease_seconds > 0)
        self._url = storage_url
        self._owner = owner or ""
        self._lease = lease_seconds
        self._stall_after = lease_seconds / 2
        self._recent: deque[_Finished] = deque(maxlen=KEPT)
        self._pending: list[_Finished] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._storage: Storage | None = None
        self._thread: threading.Thread | None = None
        self._fence = (0.0, SYSTEM_CLOCK.monotonic())  # the last fence value seen, and since when
        self.stalled = False

    def finished(self, job: RunJob, outcome: RunOutcome) -> None:
        """A run finished here (its outcome reported to the coordinator)."""
        if not self.enabled or outcome.status not in RECORDABLE:
            return
        item = _Finished(SYSTEM_CLOCK.monotonic(), outcome,
                         InFlight(job.attempt, job.backfill_id, max(1, len(job.partition_keys))))
        with self._lock:
            self._recent.append(item)
            if self.stalled:
                self._pending.append(item)
                self._wake.set()

    @property
    def watching(self) -> bool:
        """Whether there is anything to watch over (outcomes that may still need writing)."""
        return bool(self._recent or self._pending)

    def watch(self, fence: float) -> None:
        """Called by the worker's watchman with the fence it reads: notices a coordinator that stalls."""
        if not self.enabled:
            return
        now = SYSTEM_CLOCK.monotonic()
        with self._lock:
            while self._recent and now - self._recent[0].at > GIVE_UP_AFTER_LEASES * self._lease:
                self._recent.popleft()
            if fence != self._fence[0]:
                self._fence = (fence, now)
                self.stalled = False
                return
            if self.stalled or fence <= 0:
                return
            late = now - self._fence[1]
            if late < self._stall_after:
                if late >= OPEN_AFTER * self._lease and self._recent and self._thread is None:
                    self._start()  # a renewal is late: the writer opens storage now, to be ready if it stalls
                    self._wake.set()
                return
            self.stalled = True
            self._pending.extend(self._recent)
        log.warning("worker: the coordinator has not renewed its lease for %.1f s; recording this worker's "
                    "outcomes itself", now - self._fence[1])
        self._start()
        self._wake.set()

    # -- the writing thread ------------------------------------------------------------------------
    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="anachron-worker-recorder", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._storage is None:
                try:
                    self._open()
                except Exception:  # noqa: BLE001 - not reachable now: the write below says so, and retries
                    log.debug("worker: could not open storage ahead", exc_info=True)
            self._write_pending()

    def _write_pending(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch:
            return
        now = SYSTEM_CLOCK.monotonic()
        batch = [item for item in batch if now - item.at <= GIVE_UP_AFTER_LEASES * self._lease]
        outcomes = {item.outcome.run_id: item for item in batch}
        inflight = {run_id: item.inflight for run_id, item in outcomes.items()}
        records = [item.outcome.record() for item in outcomes.values()]
        try:
            storage = self._open()
            recorded = storage.run(lambda s: s.record_outcomes(records, self._owner, inflight, SYSTEM_CLOCK.wall()),
                                   patience=PATIENCE)
        except Exception as exc:  # noqa: BLE001 - storage out of reach: the coordinator still holds them
            log.warning("worker: could not record %d outcome(s) itself (%s); trying again", len(records), exc)
            with self._lock:
                self._pending[:0] = batch
            threading.Timer(PATIENCE, self._wake.set).start()
            return
        done = {o.run_id for o in recorded}
        with self._lock:
            self._recent = deque((item for item in self._recent if item.outcome.run_id not in outcomes), maxlen=KEPT)
        if done:
            log.warning("worker: recorded %d outcome(s) its stalled coordinator had not", len(done))

    def _open(self) -> Storage:
        if self._storage is None:
            from ...storage import Storage

            assert self._url is not None
            self._storage = Storage(self._url, migrate=False)  # its coordinator migrated it: no time lost here
        return self._storage
