"""subscriber lifecycle: consent record, consent log and texts, suppression list, sign-up limits

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 12:39:03.820738
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import newsletter.storage.models

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

LEGACY_BASIS = "on the list before consent was recorded (migration 0002)"
CONSENT_CHECK = (
    "status != 'subscribed' OR (requested_at IS NOT NULL AND confirmed_at IS NOT NULL"
    " AND source IS NOT NULL"
    " AND (consent_version IS NOT NULL OR consent_basis IS NOT NULL))"
)

# The consent log is only ever added to. Rows may be deleted (erasure, purge), never changed.
# A later batch migration that copies consent_events on SQLite must create this trigger again.
SQLITE_APPEND_ONLY = """
CREATE TRIGGER consent_events_append_only BEFORE UPDATE ON consent_events
BEGIN
    SELECT RAISE(ABORT, 'consent_events is append-only');
END
"""
POSTGRES_APPEND_ONLY = (
    """
CREATE FUNCTION consent_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'consent_events is append-only' USING ERRCODE = 'integrity_constraint_violation';
END
$$
""",
    """
CREATE TRIGGER consent_events_append_only BEFORE UPDATE ON consent_events
FOR EACH ROW EXECUTE FUNCTION consent_events_append_only()
""",
)


def upgrade() -> None:
    op.create_table(
        "consent_texts",
        sa.Column("version", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("first_used_at", newsletter.storage.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_consent_texts")),
    )
    op.create_table(
        "signup_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_hash", sa.String(length=64), nullable=False),
        sa.Column("at", newsletter.storage.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signup_attempts")),
    )
    with op.batch_alter_table("signup_attempts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_signup_attempts_client_hash_at", ["client_hash", "at"], unique=False
        )
    op.create_table(
        "suppressions",
        sa.Column("address_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", newsletter.storage.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("address_hash", name=op.f("pk_suppressions")),
    )
    op.create_table(
        "consent_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=True),
        sa.Column(
            "event",
            sa.Enum(
                "requested",
                "confirmed",
                "unsubscribed",
                "resubscribed",
                "imported",
                "bounced",
                "paused",
                "resumed",
                "erased",
                name="consenteventkind",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("at", newsletter.storage.models.UTCDateTime(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("consent_version", sa.String(length=16), nullable=True),
        sa.Column("detail", sa.String(length=500), nullable=True),
        sa.Column("client_ip", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("fk_consent_events_subscriber_id_subscribers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_events")),
    )
    with op.batch_alter_table("consent_events", schema=None) as batch_op:
        batch_op.create_index("ix_consent_events_subscriber_id", ["subscriber_id"], unique=False)

    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("requested_at", newsletter.storage.models.UTCDateTime()))
        batch_op.add_column(sa.Column("confirmed_at", newsletter.storage.models.UTCDateTime()))
        batch_op.add_column(sa.Column("source", sa.String(length=32)))
        batch_op.add_column(sa.Column("consent_version", sa.String(length=16)))
        batch_op.add_column(sa.Column("consent_basis", sa.String(length=500)))
        batch_op.add_column(sa.Column("paused_until", newsletter.storage.models.UTCDateTime()))
        batch_op.add_column(sa.Column("confirm_sent_at", newsletter.storage.models.UTCDateTime()))
        batch_op.add_column(
            sa.Column("confirm_sends", sa.Integer(), server_default="0", nullable=False)
        )

    # Readers added before this revision were vouched for by the operator: say so, in the
    # record and in the log, before the check below starts to ask for it.
    subscribers = sa.table(
        "subscribers",
        sa.column("id", sa.Integer()),
        sa.column("status", sa.String()),
        sa.column("created_at", newsletter.storage.models.UTCDateTime()),
        sa.column("subscribed_at", newsletter.storage.models.UTCDateTime()),
        sa.column("requested_at", newsletter.storage.models.UTCDateTime()),
        sa.column("confirmed_at", newsletter.storage.models.UTCDateTime()),
        sa.column("source", sa.String()),
        sa.column("consent_basis", sa.String()),
    )
    events = sa.table(
        "consent_events",
        sa.column("subscriber_id", sa.Integer()),
        sa.column("event", sa.String()),
        sa.column("at", newsletter.storage.models.UTCDateTime()),
        sa.column("source", sa.String()),
        sa.column("detail", sa.String()),
    )
    op.execute(
        subscribers.update()
        .where(subscribers.c.status != "pending")
        .values(
            requested_at=subscribers.c.created_at,
            confirmed_at=sa.func.coalesce(subscribers.c.subscribed_at, subscribers.c.created_at),
            source="migration",
            consent_basis=LEGACY_BASIS,
        )
    )
    op.execute(
        events.insert().from_select(
            ["subscriber_id", "event", "at", "source", "detail"],
            sa.select(
                subscribers.c.id,
                sa.literal("imported"),
                subscribers.c.created_at,
                sa.literal("migration"),
                sa.literal(LEGACY_BASIS),
            ).where(subscribers.c.status != "pending"),
        )
    )
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.create_check_constraint(
            op.f("ck_subscribers_subscribed_has_consent"), CONSENT_CHECK
        )

    if op.get_bind().dialect.name == "sqlite":
        op.execute(SQLITE_APPEND_ONLY)
    else:
        for statement in POSTGRES_APPEND_ONLY:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER consent_events_append_only")
    else:
        op.execute("DROP TRIGGER consent_events_append_only ON consent_events")
        op.execute("DROP FUNCTION consent_events_append_only()")

    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_subscribers_subscribed_has_consent"), type_="check")
        batch_op.drop_column("confirm_sends")
        batch_op.drop_column("confirm_sent_at")
        batch_op.drop_column("paused_until")
        batch_op.drop_column("consent_basis")
        batch_op.drop_column("consent_version")
        batch_op.drop_column("source")
        batch_op.drop_column("confirmed_at")
        batch_op.drop_column("requested_at")

    with op.batch_alter_table("consent_events", schema=None) as batch_op:
        batch_op.drop_index("ix_consent_events_subscriber_id")
    op.drop_table("consent_events")
    op.drop_table("suppressions")
    with op.batch_alter_table("signup_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_signup_attempts_client_hash_at")
    op.drop_table("signup_attempts")
    op.drop_table("consent_texts")
