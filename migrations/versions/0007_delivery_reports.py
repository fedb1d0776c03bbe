"""delivery reports: what came back after a delivery was sent (bounce, delay, complaint)

Revision ID: 0007
Revises: 0003
Create Date: 2026-11-24 06:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import newsletter.storage.models

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("report_kind", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("report_status", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("report_text", sa.String(length=500), nullable=True))
        batch_op.add_column(
            sa.Column("reported_at", newsletter.storage.models.UTCDateTime(), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("reported_at")
        batch_op.drop_column("report_text")
        batch_op.drop_column("report_status")
        batch_op.drop_column("report_kind")
