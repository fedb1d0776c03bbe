"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 12:21:54.262923
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import newsletter.storage.models

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "issues",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=200), nullable=False),
        sa.Column("source_path", sa.String(length=1000), nullable=False),
        sa.Column("theme", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("question", sa.String(length=1000), nullable=False),
        sa.Column("preheader", sa.String(length=300), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "queued",
                "sent",
                name="issuestatus",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("queued_at", newsletter.storage.models.UTCDateTime(), nullable=False),
        sa.Column("updated_at", newsletter.storage.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_issues")),
        sa.UniqueConstraint("slug", name=op.f("uq_issues_slug")),
    )
    with op.batch_alter_table("issues", schema=None) as batch_op:
        batch_op.create_index("ix_issues_theme_status", ["theme", "status"], unique=False)

    op.create_table(
        "subscribers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("email_key", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "subscribed",
                "unsubscribed",
                "bounced",
                name="subscriberstatus",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("token_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", newsletter.storage.models.UTCDateTime(), nullable=False),
        sa.Column("subscribed_at", newsletter.storage.models.UTCDateTime(), nullable=True),
        sa.Column("unsubscribed_at", newsletter.storage.models.UTCDateTime(), nullable=True),
        sa.Column("bounced_at", newsletter.storage.models.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscribers")),
        sa.UniqueConstraint("email_key", name=op.f("uq_subscribers_email_key")),
        sa.UniqueConstraint("token_id", name=op.f("uq_subscribers_token_id")),
    )
    op.create_table(
        "editions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scheduled_at", newsletter.storage.models.UTCDateTime(), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("theme", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("message_id_seed", sa.String(length=32), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "sending",
                "done",
                name="editionstatus",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("created_at", newsletter.storage.models.UTCDateTime(), nullable=False),
        sa.Column("finished_at", newsletter.storage.models.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["issue_id"], ["issues.id"], name=op.f("fk_editions_issue_id_issues")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_editions")),
        sa.UniqueConstraint("issue_id", name=op.f("uq_editions_issue_id")),
        sa.UniqueConstraint("scheduled_at", name=op.f("uq_editions_scheduled_at")),
    )
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("edition_id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "sending",
                "sent",
                "retry",
                "failed",
                "skipped",
                name="deliverystatus",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_expires_at", newsletter.storage.models.UTCDateTime(), nullable=True),
        sa.Column("next_attempt_at", newsletter.storage.models.UTCDateTime(), nullable=True),
        sa.Column("first_attempt_at", newsletter.storage.models.UTCDateTime(), nullable=True),
        sa.Column("last_code", sa.Integer(), nullable=True),
        sa.Column("last_reply", sa.String(length=500), nullable=True),
        sa.Column("finished_at", newsletter.storage.models.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["edition_id"],
            ["editions.id"],
            name=op.f("fk_deliveries_edition_id_editions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name=op.f("fk_deliveries_subscriber_id_subscribers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
        sa.UniqueConstraint("edition_id", "subscriber_id", name=op.f("uq_deliveries_edition_id")),
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_deliveries_edition_status", ["edition_id", "status"], unique=False
        )
        batch_op.create_index("ix_deliveries_subscriber_id", ["subscriber_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_subscriber_id")
        batch_op.drop_index("ix_deliveries_edition_status")

    op.drop_table("deliveries")
    op.drop_table("editions")
    op.drop_table("subscribers")
    with op.batch_alter_table("issues", schema=None) as batch_op:
        batch_op.drop_index("ix_issues_theme_status")

    op.drop_table("issues")
