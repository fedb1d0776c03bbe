"""Settling editions: one per scheduled time, with its issue chosen and its body rendered once."""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from newsletter import links
from newsletter.i18n import _
from newsletter.mail import composing
from newsletter.mail.rendering import IssueContent, RenderError, render_edition
from newsletter.publishing import planning
from newsletter.settings import Settings
from newsletter.storage import ledger_editions
from newsletter.storage.db import transaction
from newsletter.storage.models import Edition, EditionStatus, IssueStatus


class SettleOutcome(enum.StrEnum):
    """What settling found for the latest scheduled time."""

    CREATED = "created"  # a new edition, with its deliveries
    EXISTING = "existing"  # settled before (by this or another process): finish it
    MISSED = "missed"  # past the misfire grace: that week is skipped
    NOTHING_QUEUED = "nothing-queued"  # no issue for any theme: no letter that week
    NO_TIME = "no-time"  # no scheduled time in the past year
    BEHIND = "behind"  # a newer edition exists: time only moves forward, nothing settled


class EditionError(RuntimeError):
    """The edition's message cannot be built at all; nothing is settled, the issue stays queued."""


@dataclass(frozen=True)
class Settled:
    """The edition of the latest scheduled time, or why there is none."""

    outcome: SettleOutcome
    scheduled_at: datetime | None
    edition_id: int | None = None
    recipients: int = 0
    skipped_themes: list[str] = field(default_factory=list)
    theme: str | None = None
    subject: str | None = None


def _existing(session: Session, scheduled_at: datetime) -> Settled | None:
    edition = session.scalars(
        select(Edition).where(Edition.scheduled_at == scheduled_at)
    ).one_or_none()
    if edition is None:
        return None
    return Settled(
        SettleOutcome.EXISTING,
        scheduled_at,
        edition.id,
        theme=edition.theme,
        subject=edition.subject,
    )


def _newer(session: Session, scheduled_at: datetime) -> Settled | None:
    """The newest edition, if it is later than `scheduled_at`: time only moves forward."""
    newest = session.scalars(
        select(Edition).order_by(Edition.scheduled_at.desc()).limit(1)
    ).one_or_none()
    if newest is None or newest.scheduled_at <= scheduled_at:
        return None
    return Settled(
        SettleOutcome.BEHIND,
        newest.scheduled_at,
        newest.id,
        theme=newest.theme,
        subject=newest.subject,
    )


def settle(factory: sessionmaker[Session], settings: Settings, now: datetime) -> Settled:
    """Create the edition of the latest scheduled time at or before now, once, within the grace.

    Raises EditionError when the chosen issue's message cannot be built (it stays queued).
    """
    scheduled_at = planning.latest_time(settings, now)
    if scheduled_at is None:
        return Settled(SettleOutcome.NO_TIME, None)
    with transaction(factory) as session:
        existing = _existing(session, scheduled_at) or _newer(session, scheduled_at)
    if existing is not None:
        return existing
    if now - scheduled_at > planning.grace(settings):
        return Settled(SettleOutcome.MISSED, scheduled_at)
    try:
        with transaction(factory) as session:
            return _create_edition(session, settings, scheduled_at, now)
    except IntegrityError:
        # Another scheduler or `send` settled the same time first: the database said no.
        with transaction(factory) as session:
            found = _existing(session, scheduled_at)
        if found is None:
            raise
        return found


def _create_edition(
    session: Session, settings: Settings, scheduled_at: datetime, now: datetime
) -> Settled:
    choice = planning.choose_issue(session, settings.themes, scheduled_at)
    if choice.issue is None:
        return Settled(
            SettleOutcome.NOTHING_QUEUED, scheduled_at, skipped_themes=choice.skipped_themes
        )
    issue = choice.issue
    seed = secrets.token_hex(8)
    letter_url = links.letter_url(settings.base_url, issue.slug) if settings.archive else None
    try:
        rendered = render_edition(
            IssueContent(issue.subject, issue.theme, issue.question, issue.preheader, issue.body),
            settings,
            seed=seed,
            send_at=scheduled_at,
            letter_url=letter_url,
        )
        message = composing.EditionMessage(
            settings,
            subject=rendered.subject,
            html=rendered.html,
            text=rendered.text,
            seed=seed,
            keys=[b"proof that it builds"],
            archive_url=links.archive_url(settings.base_url) if settings.archive else None,
        )
        composing.sample(message, now)
    except (RenderError, ValueError, UnicodeError, LookupError) as exc:
        raise EditionError(
            _(
                "the issue {name!r} ({file}) cannot be made into a message: {reason}. Nothing "
                "was sent and it stays queued; fix it and queue it again."
            ).format(name=issue.slug, file=issue.source_path, reason=exc)
        ) from None
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
    recipients = ledger_editions.create_edition(session, edition)
    issue.status = IssueStatus.SENT
    issue.pinned_for = None  # a pin is spent once its letter is settled
    return Settled(
        SettleOutcome.CREATED,
        scheduled_at,
        edition.id,
        recipients=recipients,
        skipped_themes=choice.skipped_themes,
        theme=edition.theme,
        subject=edition.subject,
    )
