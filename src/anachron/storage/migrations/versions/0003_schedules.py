"""schedule state table

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "anachron_schedules",
        sa.Column("workflow", sa.String(length=255), nullable=False),
        sa.Column("schedule_id", sa.String(length=255), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("cursor", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("workflow", "schedule_id"),
    )


def downgrade() -> None:
    op.drop_table("anachron_schedules")
