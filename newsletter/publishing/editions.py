"""Settling editions: one per scheduled time, with its issue chosen and its body rendered once."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, insert, literal, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from newsletter.mail.rendering import IssueContent, render_edition
from newsletter.publishing import planning
from newsletter.settings import Settings
from newsletter.storage.db import transaction
from newsletter.storage.models import (
    Delivery,
    DeliveryStatus,
    Edition,
    EditionStatus,
    IssueStatus,
    Subscriber,
    SubscriberStatus,
)


@dataclass(frozen=True)
class Settled:
    """What settling found: the edition of the latest scheduled time, or why there is none."""

    scheduled_at: datetime | None
    edition_id: int | None = None
    created: bool = False
    recipients: int = 0
    missed: bool = False
    nothing_queued: bool = False
    skipped_themes: list[str] = field(default_factory=list)
    theme: str | None = None
    subject: str | None = None


def settle(factory: sessionmaker[Session], settings: Settings, now: datetime) -> Settled:
    """Create the edition of the latest scheduled time at or before now, once, within the grace."""
    scheduled_at = planning.latest_time(settings, now)
    if scheduled_at is None:
        return Settled(None)
    with transaction(factory) as session:
        existing = session.scalars(
            select(Edition).where(Edition.scheduled_at == scheduled_at)
        ).one_or_none()
        if existing is not None:
            return Settled(
                scheduled_at, existing.id, theme=existing.theme, subject=existing.subject
            )
    if now - scheduled_at > planning.grace(settings):
        return Settled(scheduled_at, missed=True)
    try:
        with transaction(factory) as session:
            return _create_edition(session, settings, scheduled_at, now)
    except IntegrityError:
        # Another scheduler or `send` settled the same time first: the database said no.
        with transaction(factory) as session:
            edition = session.scalars(
                select(Edition).where(Edition.scheduled_at == scheduled_at)
            ).one()
            return Settled(scheduled_at, edition.id, theme=edition.theme, subject=edition.subject)


def _create_edition(
    session: Session, settings: Settings, scheduled_at: datetime, now: datetime
) -> Settled:
    choice = planning.choose_issue(session, settings.themes)
    if choice.issue is None:
        return Settled(scheduled_at, nothing_queued=True, skipped_themes=choice.skipped_themes)
    issue = choice.issue
    seed = secrets.token_hex(8)
    rendered = render_edition(
        IssueContent(issue.subject, issue.theme, issue.question, issue.preheader, issue.body),
        settings,
        seed=seed,
        send_at=scheduled_at,
    )
    edition = Edition(
        scheduled_at=scheduled_at,
        issue_id=issue.id,
        theme=issue.theme,
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        message_id_seed=seed,
        status=EditionStatus.SENDING,
        created_at=now,
    )
    session.add(edition)
    session.flush()
    issue.status = IssueStatus.SENT
    session.execute(
        insert(Delivery).from_select(
            ["edition_id", "subscriber_id", "status", "attempts"],
            select(
                literal(edition.id),
                Subscriber.id,
                literal(DeliveryStatus.PENDING.value),
                literal(0),
            ).where(
                Subscriber.status == SubscriberStatus.SUBSCRIBED,
                Subscriber.paused_until.is_(None) | (Subscriber.paused_until <= scheduled_at),
            ),
        )
    )
    # rowcount of INSERT … SELECT is -1 on psycopg 3; count what was written instead.
    recipients = session.scalar(select(func.count()).where(Delivery.edition_id == edition.id)) or 0
    return Settled(
        scheduled_at,
        edition.id,
        created=True,
        recipients=recipients,
        skipped_themes=choice.skipped_themes,
        theme=edition.theme,
        subject=edition.subject,
    )
