"""Task pools (slots shared by every process) and administration (pruning old runs, the schema revision) —
a part of ``Session``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update

from ..models import CANCELED, FAILED, RUNNING, SUCCESS, UPSTREAM_FAILED
from .schema import (
    pool_slots,
    queue_lock,
    run_logs,
    run_partitions,
    runs,
)
from .sql import (
    SqlRows,
    _chunks,
)


class UpkeepRows(SqlRows):
    # -- pools -------------------------------------------------------------------------------------
    def try_acquire_slot(self, pool: str, size: int, run_id: str, now: float) -> int | None:
        self.conn.execute(update(queue_lock).where(queue_lock.c.id == 1).values(version=queue_lock.c.version + 1))
        have = set(self.conn.execute(select(pool_slots.c.slot).where(pool_slots.c.pool == pool)).scalars())
        missing = [s for s in range(size) if s not in have]
        if missing:
            self.conn.execute(insert(pool_slots), [{"pool": pool, "slot": s} for s in missing])
        free = self.conn.execute(select(pool_slots.c.slot).where(
            pool_slots.c.pool == pool, pool_slots.c.slot < size, pool_slots.c.holder_run.is_(None))
            .order_by(pool_slots.c.slot).limit(1)).scalar()
        if free is None:
            return None
        taken = self.conn.execute(update(pool_slots).where(
            pool_slots.c.pool == pool, pool_slots.c.slot == free, pool_slots.c.holder_run.is_(None))
            .values(holder_run=run_id, acquired_at=now)).rowcount
        return int(free) if taken == 1 else None

    def release_orphan_slots(self) -> None:
        """Free slots whose holder is no longer running (killed, canceled, requeued before its release)."""
        self.conn.execute(update(pool_slots).where(
            pool_slots.c.holder_run.is_not(None),
            pool_slots.c.holder_run.not_in(select(runs.c.run_id).where(runs.c.status == RUNNING)))
            .values(holder_run=None, acquired_at=None))

    def release_slot(self, pool: str, slot: int, run_id: str) -> None:
        self.conn.execute(update(pool_slots).where(pool_slots.c.pool == pool, pool_slots.c.slot == slot,
                                                   pool_slots.c.holder_run == run_id)
                          .values(holder_run=None, acquired_at=None))

    # -- administration ----------------------------------------------------------------------------
    def prune_runs(self, before: float, limit: int) -> list[str]:
        """Delete up to ``limit`` runs that ``count_prunable`` counts, oldest first, with their keys and logs;
        returns their ids."""
        ids = list(self.conn.execute(select(runs.c.run_id).where(self._prunable(before))
                                     .order_by(runs.c.seq).limit(limit)).scalars())
        for chunk in _chunks(ids):
            self.conn.execute(delete(run_logs).where(run_logs.c.run_id.in_(chunk)))
            self.conn.execute(delete(run_partitions).where(run_partitions.c.run_id.in_(chunk)))
            self.conn.execute(delete(runs).where(runs.c.run_id.in_(chunk)))
        return ids

    def count_prunable(self, before: float) -> int:
        """How many finished runs ended (or were created, if they have no end) before ``before`` and are the
        latest run of none of their keys: the runs ``prune_runs`` deletes."""
        return int(self.conn.execute(select(func.count()).select_from(runs).where(self._prunable(before)))
                   .scalar_one())

    @staticmethod
    def _prunable(before: float) -> Any:
        """The condition on ``runs`` of ``prune_runs`` and ``count_prunable``. A run is superseded for a key
        when a newer finished run that was not canceled covers the key (an active one might still be
        canceled); a canceled run never is the latest, and a run without keys has none to keep."""
        newer, newer_many, newer_keys, own_keys = (runs.alias("newer"), runs.alias("newer_many"),
                                                   run_partitions.alias("newer_keys"), run_partitions.alias("own_keys"))

        def superseded(workflow: Any, key: Any) -> Any:
            one = select(newer.c.seq).where(newer.c.workflow == workflow, newer.c.partition_key == key,
                                            newer.c.seq > runs.c.seq, newer.c.status.in_((SUCCESS, FAILED)))
            many = (select(newer_many.c.seq)
                    .select_from(newer_keys.join(newer_many, newer_many.c.run_id == newer_keys.c.run_id))
                    .where(newer_keys.c.workflow == workflow, newer_keys.c.partition_key == key,
                           newer_many.c.seq > runs.c.seq, newer_many.c.status.in_((SUCCESS, FAILED))))
            # the outer runs row, also from inside own_keys' subquery (auto-correlation looks one level up)
            return or_(one.correlate_except(newer).exists(), many.correlate_except(newer_keys, newer_many).exists())

        kept_key = select(own_keys.c.run_id).where(own_keys.c.run_id == runs.c.run_id,
                                                   ~superseded(own_keys.c.workflow, own_keys.c.partition_key))
        return and_(runs.c.status.in_((SUCCESS, FAILED, CANCELED, UPSTREAM_FAILED)),
                    func.coalesce(runs.c.ended_at, runs.c.created_at) < before,
                    or_(runs.c.status.in_((CANCELED, UPSTREAM_FAILED)),
                        and_(or_(runs.c.partition_key.is_(None), superseded(runs.c.workflow, runs.c.partition_key)),
                             ~kept_key.exists())))

    def schema_revision(self) -> str | None:
        from sqlalchemy import text

        value = self.conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        return None if value is None else str(value)
