"""confirmation links bound to one sign-up: subscribers.confirm_nonce

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-24 09:00:00

A confirmation link carries the nonce of the sign-up it was sent for; confirming clears it, so a
link that was used once never puts a reader on the list again (say, after they left). Sign-ups
still open when this revision runs keep working: their links carry the subscriber's token id,
which becomes their nonce.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("confirm_nonce", sa.String(length=32), nullable=True))
    subscribers = sa.table(
        "subscribers",
        sa.column("status", sa.String()),
        sa.column("token_id", sa.String()),
        sa.column("confirm_nonce", sa.String()),
    )
    op.execute(
        subscribers.update()
        .where(subscribers.c.status == "pending")
        .values(confirm_nonce=subscribers.c.token_id)
    )
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.create_index("ix_subscribers_confirm_nonce", ["confirm_nonce"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.drop_index("ix_subscribers_confirm_nonce")
        batch_op.drop_column("confirm_nonce")
