"""The tables. Times are Unix seconds (floats): one representation for SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from ..models import BackfillState, RunStatus

metadata = MetaData()


def status_check(statuses: type[RunStatus] | type[BackfillState]) -> str:
    """The ``CHECK`` of a status column (revision 0006): only the lifecycle's statuses are stored."""
    return "status IN (" + ", ".join(f"'{s.value}'" for s in statuses) + ")"


workers = Table(
    "anachron_workers", metadata,
    Column("worker_id", String(64), primary_key=True),
    Column("hostname", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)

runs = Table(
    "anachron_runs", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64), nullable=False, unique=True),
    Column("workflow", String(255), nullable=False),
    Column("status", String(16), nullable=False),
    Column("partition_key", Text),            # the key of a one-key run
    Column("partition_keys", Text),           # JSON list, for a run of several keys
    Column("num_partitions", Integer, nullable=False, default=0),
    Column("params", Text, nullable=False, default="{}"),
    Column("tags", Text, nullable=False, default="{}"),
    Column("priority", Integer, nullable=False, default=0),
    Column("backfill_id", String(64)),
    Column("idempotency_key", Text),
    Column("attempt", Integer, nullable=False, default=1),
    Column("logical_time", Float),
    Column("window_start", Float),           # the partition window the run covers, if time-based
    Column("window_end", Float),
    Column("scheduled_time", Float),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("ended_at", Float),
    Column("error", Text),
    Column("run_name", Text),
    Column("environ", Text, nullable=False, default="{}"),
    Column("owner", String(64)),              # the worker (process) that executes it
    Column("cancel_requested", Boolean, nullable=False, default=False),
    # the run's position in its backfill's plan, 0-based (revision 0004); NULL outside a backfill
    Column("plan_index", Integer),
    # a queued run is not started before this time (revision 0006): a run taken over from a process whose
    # lease lapsed waits a moment for that process's late outcome (see anachron/lifecycle.py)
    Column("not_before", Float),
    UniqueConstraint("workflow", "idempotency_key", name="uq_anachron_runs_idempotency"),
    CheckConstraint(status_check(RunStatus), name="ck_anachron_runs_status"),
)
Index("ix_anachron_runs_status", runs.c.status, runs.c.priority)
# a backfill's runs by status; plan_index makes it cover the partition grid's count of the runs that did not
# succeed (revision 0004: an eighth index would cost every status change one more index write)
Index("ix_anachron_runs_backfill", runs.c.backfill_id, runs.c.status, runs.c.plan_index)
Index("ix_anachron_runs_workflow", runs.c.workflow, runs.c.seq)
# partition_status: the latest run of each key (revision 0002)
Index("ix_anachron_runs_partition", runs.c.workflow, runs.c.partition_key)

# Keys of runs that cover several partitions (a one-key run keeps its key in runs.partition_key).
run_partitions = Table(
    "anachron_run_partitions", metadata,
    Column("run_id", String(64), nullable=False),
    Column("workflow", String(255), nullable=False),
    Column("partition_key", Text, nullable=False),
    Column("error", Text),                    # set when the run marked this key failed
)
Index("ix_anachron_run_partitions_key", run_partitions.c.workflow, run_partitions.c.partition_key)
Index("ix_anachron_run_partitions_run", run_partitions.c.run_id)

run_logs = Table(
    "anachron_run_logs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64), nullable=False, index=True),
    Column("attempt", Integer, nullable=False),
    Column("ts", Float, nullable=False),
    Column("level", String(16), nullable=False),
    Column("message", Text, nullable=False),
)

backfills = Table(
    "anachron_backfills", metadata,
    Column("backfill_id", String(64), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("workflows", Text, nullable=False),    # JSON list of workflow names
    Column("request", Text, nullable=False),      # JSON: the frozen plan inputs
    Column("total_partitions", Integer, nullable=False),
    Column("total_runs", Integer, nullable=False),
    Column("cursor", Integer, nullable=False, default=0),   # runs materialised so far
    Column("completed", Integer, nullable=False, default=0),
    Column("failed", Integer, nullable=False, default=0),
    Column("canceled", Integer, nullable=False, default=0),
    Column("max_concurrency", Integer, nullable=False),
    Column("priority", Integer, nullable=False),
    Column("tags", Text, nullable=False, default="{}"),
    Column("idempotency_key", Text, unique=True),
    Column("owner", String(64)),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("error", Text),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("ended_at", Float),
    CheckConstraint(status_check(BackfillState), name="ck_anachron_backfills_status"),
)
Index("ix_anachron_backfills_status", backfills.c.status)

# Which workflows a backfill runs, so list_backfills(workflow=...) filters in SQL (revision 0002).
backfill_workflows = Table(
    "anachron_backfill_workflows", metadata,
    Column("backfill_id", String(64), primary_key=True),
    Column("workflow", String(255), primary_key=True),
)
Index("ix_anachron_backfill_workflows_workflow", backfill_workflows.c.workflow)

dynamic_partitions = Table(
    "anachron_dynamic_partitions", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False),
    Column("partition_key", Text, nullable=False),
    UniqueConstraint("name", "partition_key", name="uq_anachron_dynamic_partitions"),
)

pool_slots = Table(
    "anachron_pool_slots", metadata,
    Column("pool", String(255), primary_key=True),
    Column("slot", Integer, primary_key=True),
    Column("holder_run", String(64)),
    Column("acquired_at", Float),
)

queue_lock = Table(
    "anachron_queue_lock", metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False, default=0),
)

# Each schedule's state, shared by every process (revision 0003): paused or not, and its cursor — the last
# tick evaluated (run, or passed over), from which the daemon continues after a restart.
schedules = Table(
    "anachron_schedules", metadata,
    Column("workflow", String(255), primary_key=True),
    Column("schedule_id", String(255), primary_key=True),
    Column("paused", Boolean, nullable=False, default=False),
    Column("cursor", Float),
    Column("updated_at", Float, nullable=False),
)

# Who leads a shared duty among processes (revision 0005): a row per duty (``schedules:<digest>``), held by a
# worker (a process with a live lease in ``anachron_workers``) for as long as that lease lives.
leaders = Table(
    "anachron_leaders", metadata,
    Column("name", String(255), primary_key=True),
    Column("holder", String(64), nullable=False),
    Column("since", Float, nullable=False),
)
