"""Each run's measured training speed (mean images/s over its epochs) kept on the run, so a
list of runs no longer averages their epochs on every call; filled in for existing runs.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 20:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("images_per_second", sa.Float(), nullable=True))
    op.execute(
        "UPDATE runs SET images_per_second = "
        "(SELECT avg(metrics.images_per_second) FROM metrics WHERE metrics.run_id = runs.id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("images_per_second")
