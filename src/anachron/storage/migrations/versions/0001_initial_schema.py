"""initial schema

Revision ID: 0001
Revises: 
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('anachron_backfills',
    sa.Column('backfill_id', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('workflows', sa.Text(), nullable=False),
    sa.Column('request', sa.Text(), nullable=False),
    sa.Column('total_partitions', sa.Integer(), nullable=False),
    sa.Column('total_runs', sa.Integer(), nullable=False),
    sa.Column('cursor', sa.Integer(), nullable=False),
    sa.Column('completed', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.Column('canceled', sa.Integer(), nullable=False),
    sa.Column('max_concurrency', sa.Integer(), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('tags', sa.Text(), nullable=False),
    sa.Column('idempotency_key', sa.Text(), nullable=True),
    sa.Column('owner', sa.String(length=64), nullable=True),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.Column('ended_at', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('backfill_id'),
    sa.UniqueConstraint('idempotency_key')
    )
    with op.batch_alter_table('anachron_backfills', schema=None) as batch_op:
        batch_op.create_index('ix_anachron_backfills_status', ['status'], unique=False)

    op.create_table('anachron_dynamic_partitions',
    sa.Column('seq', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('partition_key', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('name', 'partition_key', name='uq_anachron_dynamic_partitions')
    )
    op.create_table('anachron_pool_slots',
    sa.Column('pool', sa.String(length=255), nullable=False),
    sa.Column('slot', sa.Integer(), nullable=False),
    sa.Column('holder_run', sa.String(length=64), nullable=True),
    sa.Column('acquired_at', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('pool', 'slot')
    )
    op.create_table('anachron_queue_lock',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('anachron_run_logs',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('ts', sa.Float(), nullable=False),
    sa.Column('level', sa.String(length=16), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('anachron_run_logs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_anachron_run_logs_run_id'), ['run_id'], unique=False)

    op.create_table('anachron_run_partitions',
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('workflow', sa.String(length=255), nullable=False),
    sa.Column('partition_key', sa.Text(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True)
    )
    with op.batch_alter_table('anachron_run_partitions', schema=None) as batch_op:
        batch_op.create_index('ix_anachron_run_partitions_key', ['workflow', 'partition_key'], unique=False)
        batch_op.create_index('ix_anachron_run_partitions_run', ['run_id'], unique=False)

    op.create_table('anachron_runs',
    sa.Column('seq', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('workflow', sa.String(length=255), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('partition_key', sa.Text(), nullable=True),
    sa.Column('partition_keys', sa.Text(), nullable=True),
    sa.Column('num_partitions', sa.Integer(), nullable=False),
    sa.Column('params', sa.Text(), nullable=False),
    sa.Column('tags', sa.Text(), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('backfill_id', sa.String(length=64), nullable=True),
    sa.Column('idempotency_key', sa.Text(), nullable=True),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('logical_time', sa.Float(), nullable=True),
    sa.Column('window_start', sa.Float(), nullable=True),
    sa.Column('window_end', sa.Float(), nullable=True),
    sa.Column('scheduled_time', sa.Float(), nullable=True),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('started_at', sa.Float(), nullable=True),
    sa.Column('ended_at', sa.Float(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('run_name', sa.Text(), nullable=True),
    sa.Column('environ', sa.Text(), nullable=False),
    sa.Column('owner', sa.String(length=64), nullable=True),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('run_id'),
    sa.UniqueConstraint('workflow', 'idempotency_key', name='uq_anachron_runs_idempotency')
    )
    with op.batch_alter_table('anachron_runs', schema=None) as batch_op:
        batch_op.create_index('ix_anachron_runs_backfill', ['backfill_id', 'status'], unique=False)
        batch_op.create_index('ix_anachron_runs_status', ['status', 'priority'], unique=False)
        batch_op.create_index('ix_anachron_runs_workflow', ['workflow', 'seq'], unique=False)

    op.create_table('anachron_workers',
    sa.Column('worker_id', sa.String(length=64), nullable=False),
    sa.Column('hostname', sa.String(length=255), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.Float(), nullable=False),
    sa.Column('expires_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('worker_id')
    )
    queue_lock = sa.table('anachron_queue_lock', sa.column('id', sa.Integer), sa.column('version', sa.Integer))
    op.bulk_insert(queue_lock, [{'id': 1, 'version': 0}])


def downgrade() -> None:
    op.drop_table('anachron_workers')
    with op.batch_alter_table('anachron_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_anachron_runs_workflow')
        batch_op.drop_index('ix_anachron_runs_status')
        batch_op.drop_index('ix_anachron_runs_backfill')

    op.drop_table('anachron_runs')
    with op.batch_alter_table('anachron_run_partitions', schema=None) as batch_op:
        batch_op.drop_index('ix_anachron_run_partitions_run')
        batch_op.drop_index('ix_anachron_run_partitions_key')

    op.drop_table('anachron_run_partitions')
    with op.batch_alter_table('anachron_run_logs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_anachron_run_logs_run_id'))

    op.drop_table('anachron_run_logs')
    op.drop_table('anachron_queue_lock')
    op.drop_table('anachron_pool_slots')
    op.drop_table('anachron_dynamic_partitions')
    with op.batch_alter_table('anachron_backfills', schema=None) as batch_op:
        batch_op.drop_index('ix_anachron_backfills_status')

    op.drop_table('anachron_backfills')
