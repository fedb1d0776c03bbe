"""the author's week: pinned issues, notices to the author, 'changed' in the consent log

Revision ID: 0008
Revises: 0006
Create Date: 2026-11-26 09:00:00

- issues.pinned_for: the scheduled time an issue is pinned to (`issues pin`), one issue a time.
- notices: what the scheduler told the author (or logged), each thing once (a unique key).
- consent_events.event may be 'changed': the operator corrected an address or a name.
  On SQLite the table is copied to change its CHECK constraint, so its append-only trigger
  (revision 0002) is created again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import newsletter.storage.models

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

KINDS = (
    "requested",
    "confirmed",
    "unsubscribed",
    "resubscribed",
    "imported",
    "bounced",
    "paused",
    "resumed",
    "erased",
)
SQLITE_APPEND_ONLY = """
CREATE TRIGGER consent_events_append_only BEFORE UPDATE ON consent_events
BEGIN
    SELECT RAISE(ABORT, 'consent_events is append-only');
END
"""


def _kinds(*kinds: str) -> sa.Enum:
    return sa.Enum(
        *kinds,
        name="consenteventkind",
        native_enum=False,
        create_constraint=True,
        length=16,
    )


def _event_kinds(old: tuple[str, ...], new: tuple[str, ...]) -> None:
    """Change the CHECK constraint on consent_events.event from `old` to `new` kinds."""
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS consent_events_append_only")
        with op.batch_alter_table("consent_events", recreate="always") as batch_op:
            batch_op.alter_column("event", existing_type=_kinds(*old), type_=_kinds(*new))
        op.execute(SQLITE_APPEND_ONLY)
        return
    name = op.f("ck_consent_events_consenteventkind")
    op.drop_constraint(name, "consent_events", type_="check")
    listed = ", ".join(f"'{kind}'" for kind in new)
    op.create_check_constraint(name, "consent_events", f"event IN ({listed})")


def upgrade() -> None:
    with op.batch_alter_table("issues", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pinned_for", newsletter.storage.models.UTCDateTime()))
        batch_op.create_index("ix_issues_pinned_for", ["pinned_for"], unique=True)
    op.create_table(
        "notices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("created_at", newsletter.storage.models.UTCDateTime(), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=True),
        sa.Column("sent_at", newsletter.storage.models.UTCDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notices")),
        sa.UniqueConstraint("key", name=op.f("uq_notices_key")),
    )
    _event_kinds(KINDS, (*KINDS, "changed"))


def downgrade() -> None:
    op.execute("DELETE FROM consent_events WHERE event = 'changed'")
    _event_kinds((*KINDS, "changed"), KINDS)
    op.drop_table("notices")
    with op.batch_alter_table("issues", schema=None) as batch_op:
        batch_op.drop_index("ix_issues_pinned_for")
        batch_op.drop_column("pinned_for")
