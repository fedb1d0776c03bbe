"""The schema: subscribers, queued issues, editions and the per-recipient delivery ledger."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, hands back aware UTC: the same on SQLite and PostgreSQL."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {type(value).__name__}")
        return value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _enum(cls: type[enum.Enum]) -> Enum:
    return Enum(
        cls,
        native_enum=False,
        length=16,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
        create_constraint=True,
        name=cls.__name__.lower(),
    )


class SubscriberStatus(enum.StrEnum):
    PENDING = "pending"  # signed up, not yet confirmed
    SUBSCRIBED = "subscribed"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"


class IssueStatus(enum.StrEnum):
    QUEUED = "queued"
    SENT = "sent"


class EditionStatus(enum.StrEnum):
    SENDING = "sending"
    DONE = "done"


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"
    SKIPPED = "skipped"


# Deliveries whose outcome is not settled yet.
UNFINISHED = (DeliveryStatus.PENDING, DeliveryStatus.SENDING, DeliveryStatus.RETRY)


class Subscriber(Base):
    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    # The address folded to lower case: one subscriber per address, whatever its case.
    email_key: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[SubscriberStatus] = mapped_column(_enum(SubscriberStatus))
    # Random 128-bit id that unsubscribe tokens carry instead of the row id or the address.
    token_id: Mapped[str] = mapped_column(String(32), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    subscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    bounced_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Proof of consent (GDPR art. 7(1)): when it was asked for and given, how, and under which
    # text (a version of the sign-up form's consent text) or which basis (the operator's words).
    requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    source: Mapped[str | None] = mapped_column(String(32))
    consent_version: Mapped[str | None] = mapped_column(String(16))
    consent_basis: Mapped[str | None] = mapped_column(String(500))
    # No edition is settled for this reader while it is later than the edition's time.
    paused_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The last confirmation mail and how many went out unanswered: limits mail to one address.
    confirm_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    confirm_sends: Mapped[int] = mapped_column(Integer(), default=0, server_default="0")
    # When the welcome after confirming was claimed: one per reader, ever (readers/welcome.py).
    welcomed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The one open sign-up a confirmation link may confirm: the link carries this random id, and
    # confirming (or coming back) clears it, so a link that was used once never works again.
    confirm_nonce: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (
        Index("ix_subscribers_confirm_nonce", "confirm_nonce", unique=True),
        CheckConstraint(
            "status != 'subscribed' OR (requested_at IS NOT NULL AND confirmed_at IS NOT NULL"
            " AND source IS NOT NULL"
            " AND (consent_version IS NOT NULL OR consent_basis IS NOT NULL))",
            name="subscribed_has_consent",
        ),
    )


class Issue(Base):
    """A snapshot of one issue file, queued for a future edition."""

    __tablename__ = "issues"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(200), unique=True)
    source_path: Mapped[str] = mapped_column(String(1000))
    theme: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(300))
    question: Mapped[str] = mapped_column(String(1000))
    preheader: Mapped[str | None] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text())
    content_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[IssueStatus] = mapped_column(_enum(IssueStatus))
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The scheduled time the author pinned it to (`issues pin`): sent then, whatever the rotation
    # says. One issue per time; a pin whose time passed unsent puts it back in the rotation.
    pinned_for: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_issues_theme_status", "theme", "status"),
        Index("ix_issues_pinned_for", "pinned_for", unique=True),
    )


class Edition(Base):
    """One scheduled send: the issue chosen for it and its body, rendered once."""

    __tablename__ = "editions"

    id: Mapped[int] = mapped_column(primary_key=True)
    # One edition per scheduled time, enforced here: two senders cannot both settle a week.
    scheduled_at: Mapped[datetime] = mapped_column(UTCDateTime(), unique=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id"), unique=True)
    theme: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(300))
    html: Mapped[str] = mapped_column(Text())
    text: Mapped[str] = mapped_column(Text())
    # Random per edition, so Message-IDs stay unique even if the database is ever recreated.
    message_id_seed: Mapped[str] = mapped_column(String(32))
    status: Mapped[EditionStatus] = mapped_column(_enum(EditionStatus))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    issue: Mapped[Issue] = relationship()


class Delivery(Base):
    """One recipient of one edition: the ledger row that makes every outcome exact."""

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    edition_id: Mapped[int] = mapped_column(ForeignKey("editions.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    status: Mapped[DeliveryStatus] = mapped_column(_enum(DeliveryStatus))
    attempts: Mapped[int] = mapped_column(Integer(), default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    first_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_code: Mapped[int | None] = mapped_column(Integer())
    last_reply: Mapped[str | None] = mapped_column(String(500))
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # What came back after it was sent (`ledger_reports`): the strongest report so far, hard
    # (the address is gone) over soft (full, delayed, blocked), a complaint over both; code, text.
    report_kind: Mapped[str | None] = mapped_column(String(16))
    report_status: Mapped[str | None] = mapped_column(String(32))
    report_text: Mapped[str | None] = mapped_column(String(500))
    reported_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("edition_id", "subscriber_id"),
        Index("ix_deliveries_edition_status", "edition_id", "status"),
        # Claims take the lowest ids of one status: a range scan of this index.
        Index("ix_deliveries_status_id", "status", "id"),
        Index("ix_deliveries_subscriber_id", "subscriber_id"),
    )


# --- The subscriber's life: consent log, consent texts, suppression, sign-up limits --------


class ConsentEventKind(enum.StrEnum):
    REQUESTED = "requested"  # the sign-up form was sent
    CONFIRMED = "confirmed"  # the confirmation link was followed and its button pressed
    UNSUBSCRIBED = "unsubscribed"
    RESUBSCRIBED = "resubscribed"  # "toch weer ontvangen", with the unsubscribe token
    IMPORTED = "imported"  # put on the list by the operator (import or add), with a basis
    BOUNCED = "bounced"
    PAUSED = "paused"
    RESUMED = "resumed"
    ERASED = "erased"  # the subscriber's data was erased; the row keeps no link to them
    CHANGED = "changed"  # the operator corrected the address or the name (`subscribers change`)


class ConsentEvent(Base):
    """The consent log: one row per event per subscriber, only ever added to (a trigger says so)."""

    __tablename__ = "consent_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    # NULL only for an erasure, which leaves nothing that points at the person.
    subscriber_id: Mapped[int | None] = mapped_column(ForeignKey("subscribers.id"))
    event: Mapped[ConsentEventKind] = mapped_column(_enum(ConsentEventKind))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    # How it happened: form, confirm-link, one-click, footer-link, come-back-link, cli, import…
    source: Mapped[str] = mapped_column(String(32))
    consent_version: Mapped[str | None] = mapped_column(String(16))
    # The operator's basis for an import, the length of a pause.
    detail: Mapped[str | None] = mapped_column(String(500))
    # Shortened (IPv4 /24, IPv6 /48), and only when NEWSLETTER_CONSENT_LOG_IP is on.
    client_ip: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (Index("ix_consent_events_subscriber_id", "subscriber_id"),)


class ConsentText(Base):
    """Every version of the consent text a reader was shown, so the log can say what they read."""

    __tablename__ = "consent_texts"

    version: Mapped[str] = mapped_column(String(16), primary_key=True)
    text: Mapped[str] = mapped_column(Text())
    first_used_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Suppression(Base):
    """An erased address as a keyed hash: imports cannot bring it back; its owner can."""

    __tablename__ = "suppressions"

    address_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SignupAttempt(Base):
    """One sign-up sent from one client (a keyed hash of its address): limits per client."""

    __tablename__ = "signup_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_signup_attempts_client_hash_at", "client_hash", "at"),)


# --- Notes to the author ------------------------------------------------------------------


class Notice(Base):
    """A note to the author from the scheduler (newsletter/notices/), each one once.

    `key` names what it is about (`dry:<time>`, `skipped:<time>`, `stopped:<edition>`,
    `report:<edition>`); claiming it is inserting it, so two schedulers note a thing once.
    """

    __tablename__ = "notices"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text())
    # The author's address when it was mailed; NULL when NEWSLETTER_AUTHOR_EMAIL was unset and
    # the note went to the log only.
    recipient: Mapped[str | None] = mapped_column(String(320))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer(), default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(String(500))
