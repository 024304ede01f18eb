"""Leases: one row per process (``anachron_workers``: a lease renewed while it lives) and one per shared duty
(``anachron_leaders``: held for as long as its holder's lease lives) — a part of ``Session``."""

from __future__ import annotations

from sqlalchemy import case, delete, insert, or_, select, update

from .errors import StorageRejected
from .schema import (
    leaders,
    workers,
)
from .sql import (
    SqlRows,
)


class LeaseRows(SqlRows):
    # -- workers: one lease per process ------------------------------------------------------------
    def register_worker(self, worker_id: str, hostname: str, pid: int, now: float, expires_at: float) -> None:
        self.conn.execute(delete(workers).where(workers.c.worker_id == worker_id))
        self.conn.execute(insert(workers).values(worker_id=worker_id, hostname=hostname, pid=pid, started_at=now,
                                                 expires_at=expires_at))

    def renew_lease(self, worker_id: str, now: float, expires_at: float) -> bool:
        """Extend a lease that has not lapsed; ``False`` when it lapsed (others may have taken over)."""
        return bool(self._st.renew_lease.execute(self.cursor, (expires_at, worker_id, now)).rowcount == 1)

    def remove_worker(self, worker_id: str) -> None:
        self.conn.execute(delete(workers).where(workers.c.worker_id == worker_id))

    def live_worker_ids(self, now: float) -> frozenset[str]:
        return frozenset(self.conn.execute(select(workers.c.worker_id).where(workers.c.expires_at >= now)).scalars())

    def expire_dead_workers(self, before: float) -> list[str]:
        dead = list(self.conn.execute(select(workers.c.worker_id).where(workers.c.expires_at < before)).scalars())
        if dead:
            self.conn.execute(delete(workers).where(workers.c.worker_id.in_(dead)))
        return dead

    # -- leaders: one process per shared duty, for as long as its worker lease lives -----------------
    def lead(self, name: str, worker_id: str, now: float) -> bool:
        """Take or keep the duty ``name`` for ``worker_id``: granted when nobody holds it, when this worker
        already does, or when its holder's lease has lapsed (the holder died or froze). Whether granted."""
        alive = select(workers.c.worker_id).where(workers.c.expires_at >= now)
        taken = self.conn.execute(update(leaders).where(
            leaders.c.name == name,
            or_(leaders.c.holder == worker_id, leaders.c.holder.not_in(alive.scalar_subquery()))).values(
            holder=worker_id, since=case((leaders.c.holder == worker_id, leaders.c.since), else_=now)))
        if taken.rowcount:
            return True
        try:
            with self.savepoint():
                self.conn.execute(insert(leaders).values(name=name, holder=worker_id, since=now))
        except StorageRejected:  # another process inserted it first: it leads
            return False
        return True

    def leader_of(self, name: str) -> tuple[str, float] | None:
        """The worker holding the duty ``name`` and since when (its lease may have lapsed)."""
        row = self.conn.execute(select(leaders.c.holder, leaders.c.since).where(leaders.c.name == name)).first()
        return (row[0], row[1]) if row is not None else None

    def resign(self, name: str, worker_id: str) -> None:
        """Give the duty up (at a clean exit), so another process takes it at once."""
        self.conn.execute(delete(leaders).where(leaders.c.name == name, leaders.c.holder == worker_id))
