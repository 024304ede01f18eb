"""runs: plan_index (a run's position in its backfill's plan), in the backfill index

Revision ID: 0004
Revises: 0003

Runs created before this revision get their index from their creation order within their backfill
(runs are created in plan order, a window at a time); a schedule tick's run that a backfill attached
after the daemon had created it is placed by its creation time instead (best effort, as nothing else
records where it stood in the plan).
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("anachron_runs", sa.Column("plan_index", sa.Integer(), nullable=True))
    # UPDATE ... FROM: SQLite >= 3.33 and PostgreSQL (the hot path's outcome statement needs it too)
    op.execute(
        "UPDATE anachron_runs SET plan_index = numbered.idx FROM ("
        "SELECT seq, row_number() OVER (PARTITION BY backfill_id ORDER BY seq) - 1 AS idx "
        "FROM anachron_runs WHERE backfill_id IS NOT NULL) AS numbered "
        "WHERE anachron_runs.seq = numbered.seq")
    op.drop_index("ix_anachron_runs_backfill", table_name="anachron_runs")
    op.create_index("ix_anachron_runs_backfill", "anachron_runs", ["backfill_id", "status", "plan_index"],
                    unique=False)


def downgrade() -> None:
    op.drop_index("ix_anachron_runs_backfill", table_name="anachron_runs")
    op.create_index("ix_anachron_runs_backfill", "anachron_runs", ["backfill_id", "status"], unique=False)
    with op.batch_alter_table("anachron_runs", schema=None) as batch_op:
        batch_op.drop_column("plan_index")
