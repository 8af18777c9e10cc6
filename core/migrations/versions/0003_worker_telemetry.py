"""Worker telemetry: host, pid, device readings and the run a worker took last.

All columns are nullable: existing rows keep their name and last_seen and get nulls.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 21:38:44.027733
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("started_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("host", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("pid", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("device_kind", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("device_name", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("memory_used_bytes", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("memory_total_bytes", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("utilization", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("temperature_c", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("cpu_threads", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("run_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("workers", schema=None) as batch_op:
        batch_op.drop_column("run_id")
        batch_op.drop_column("cpu_threads")
        batch_op.drop_column("temperature_c")
        batch_op.drop_column("utilization")
        batch_op.drop_column("memory_total_bytes")
        batch_op.drop_column("memory_used_bytes")
        batch_op.drop_column("device_name")
        batch_op.drop_column("device_kind")
        batch_op.drop_column("pid")
        batch_op.drop_column("host")
        batch_op.drop_column("started_at")
