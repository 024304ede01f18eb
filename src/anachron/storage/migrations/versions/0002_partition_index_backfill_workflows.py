"""partition-status index; backfill workflows table

Revision ID: 0002
Revises: 0001
"""
import json

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("anachron_runs", schema=None) as batch_op:
        batch_op.create_index("ix_anachron_runs_partition", ["workflow", "partition_key"], unique=False)
    op.create_table(
        "anachron_backfill_workflows",
        sa.Column("backfill_id", sa.String(length=64), nullable=False),
        sa.Column("workflow", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("backfill_id", "workflow"),
    )
    with op.batch_alter_table("anachron_backfill_workflows", schema=None) as batch_op:
        batch_op.create_index("ix_anachron_backfill_workflows_workflow", ["workflow"], unique=False)
    # existing backfills: their workflows were only kept as a JSON list
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT backfill_id, workflows FROM anachron_backfills")).all()
    pairs = [{"b": backfill_id, "w": name} for backfill_id, workflows in rows
             for name in dict.fromkeys(json.loads(workflows or "[]"))]
    if pairs:
        conn.execute(sa.text("INSERT INTO anachron_backfill_workflows (backfill_id, workflow) VALUES (:b, :w)"),
                     pairs)


def downgrade() -> None:
    with op.batch_alter_table("anachron_backfill_workflows", schema=None) as batch_op:
        batch_op.drop_index("ix_anachron_backfill_workflows_workflow")
    op.drop_table("anachron_backfill_workflows")
    with op.batch_alter_table("anachron_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_anachron_runs_partition")
