"""subscribers.welcomed_at: the welcome mail after confirming goes out once per reader

Revision ID: 0006
Revises: 0003
Create Date: 2026-11-24 06:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import newsletter.storage.models

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("welcomed_at", newsletter.storage.models.UTCDateTime()))
    # Readers who confirmed before there was a welcome are not welcomed after the fact.
    op.execute("UPDATE subscribers SET welcomed_at = confirmed_at WHERE confirmed_at IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.drop_column("welcomed_at")
