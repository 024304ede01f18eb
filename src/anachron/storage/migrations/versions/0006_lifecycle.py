"""runs.not_before, and the lifecycle's statuses as CHECK constraints on runs and backfills

Revision ID: 0006
Revises: 0005

``not_before``: a queued run is not started before it (a run taken over from a process whose lease lapsed
waits a moment for that process's late outcome). The CHECKs list the statuses of ``models.RunStatus`` and
``models.BackfillState`` as they are at this revision (a later revision that adds a status replaces them).
SQLite cannot add a constraint to a table: the batch operation copies the table.
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

RUN_STATUSES = ("queued", "running", "success", "failed", "canceled", "upstream_failed")
BACKFILL_STATUSES = ("requested", "in_progress", "paused", "completed", "failed", "canceled")


def _check(statuses: tuple[str, ...]) -> str:
    return "status IN (" + ", ".join(f"'{s}'" for s in statuses) + ")"


def upgrade() -> None:
    with op.batch_alter_table("anachron_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("not_before", sa.Float(), nullable=True))
        batch_op.create_check_constraint("ck_anachron_runs_status", _check(RUN_STATUSES))
    with op.batch_alter_table("anachron_backfills", schema=None) as batch_op:
        batch_op.create_check_constraint("ck_anachron_backfills_status", _check(BACKFILL_STATUSES))


def downgrade() -> None:
    with op.batch_alter_table("anachron_backfills", schema=None) as batch_op:
        batch_op.drop_constraint("ck_anachron_backfills_status", type_="check")
    with op.batch_alter_table("anachron_runs", schema=None) as batch_op:
        batch_op.drop_constraint("ck_anachron_runs_status", type_="check")
        batch_op.drop_column("not_before")
