"""The letters that are public: every edition that started sending, from its scheduled time on.

An edition exists only once its week was settled and its deliveries created (it started
sending); `send --now` can settle a time that is still ahead of the clock, so a letter is shown
only from its scheduled time. What is read here is the issue's snapshot, never an edition's
HTML: that holds the per-edition markers, and nothing personal may reach the archive.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from newsletter.mail.rendering import IssueContent
from newsletter.storage.models import Edition, Issue


@dataclass(frozen=True)
class Letter:
    """One published letter, as the archive shows it."""

    slug: str
    sent_at: datetime  # the edition's scheduled time
    content: IssueContent


def _published(now: datetime, theme: str | None = None) -> Select[Edition, Issue]:
    query = (
        select(Edition, Issue)
        .join(Issue, Edition.issue_id == Issue.id)
        .where(Edition.scheduled_at <= now)
    )
    return query.where(Edition.theme == theme) if theme is not None else query


def _letter(edition: Edition, issue: Issue) -> Letter:
    content = IssueContent(issue.subject, issue.theme, issue.question, issue.preheader, issue.body)
    return Letter(issue.slug, edition.scheduled_at, content)


def letters(
    session: Session, now: datetime, *, theme: str | None = None, offset: int = 0, limit: int = 10
) -> list[Letter]:
    """Published letters, newest first (of one theme, if given)."""
    query = _published(now, theme).order_by(Edition.scheduled_at.desc()).offset(offset).limit(limit)
    return [_letter(edition, issue) for edition, issue in session.execute(query)]


def count(session: Session, now: datetime, *, theme: str | None = None) -> int:
    """How many letters are published (of one theme, if given)."""
    query = _published(now, theme).with_only_columns(func.count()).order_by(None)
    return session.scalar(query) or 0


def find(session: Session, slug: str, now: datetime) -> Letter | None:
    """The published letter of this slug, or None (unknown, or not sent yet)."""
    row = session.execute(_published(now).where(Issue.slug == slug)).one_or_none()
    return _letter(*row) if row else None


def neighbours(session: Session, letter: Letter, now: datetime) -> tuple[Letter | None, ...]:
    """The letter before this one and the one after it, if published."""
    base = _published(now)
    older = base.where(Edition.scheduled_at < letter.sent_at).order_by(Edition.scheduled_at.desc())
    newer = base.where(Edition.scheduled_at > letter.sent_at).order_by(Edition.scheduled_at)
    found = []
    for query in (older, newer):
        row = session.execute(query.limit(1)).one_or_none()
        found.append(_letter(*row) if row else None)
    return tuple(found)


def latest(session: Session, now: datetime) -> Letter | None:
    """The newest published letter."""
    found = letters(session, now, limit=1)
    return found[0] if found else None
