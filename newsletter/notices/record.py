"""The notices table's one writer: each note claimed once by its key, then marked sent or not.

A note is claimed by inserting it (the key is unique), so two schedulers, or a job that runs
again, note one thing once. Sending happens after the claim; a note the relay did not take is
tried again by later runs for a day (`unsent`), then left with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.storage.models import Notice

RETRY_FOR = timedelta(days=1)


@dataclass(frozen=True)
class Draft:
    """A note that is due: what it is about (its key), its kind and its words."""

    key: str
    kind: str
    subject: str
    body: str


def claim(session: Session, draft: Draft, recipient: str | None, now: datetime) -> Notice | None:
    """Store the note, once; None when it was noted before (by this or another process)."""
    if session.scalar(select(Notice.id).where(Notice.key == draft.key)) is not None:
        return None
    notice = Notice(
        key=draft.key,
        kind=draft.kind,
        created_at=now,
        subject=draft.subject[:300],
        body=draft.body,
        recipient=recipient,
        attempts=0,
    )
    try:
        with session.begin_nested():
            session.add(notice)
    except IntegrityError:
        return None  # another scheduler noted it a moment ago
    return notice


def mark_sent(session: Session, notice_id: int, now: datetime) -> None:
    session.execute(
        update(Notice)
        .where(Notice.id == notice_id)
        .values(sent_at=now, attempts=Notice.attempts + 1, last_error=None)
    )


def mark_failed(session: Session, notice_id: int, reason: str) -> None:
    session.execute(
        update(Notice)
        .where(Notice.id == notice_id)
        .values(attempts=Notice.attempts + 1, last_error=reason[:500])
    )


def unsent(session: Session, now: datetime) -> list[Notice]:
    """Mails to the author not yet handed over, younger than a day: to try again."""
    return list(
        session.scalars(
            select(Notice)
            .where(
                Notice.recipient.is_not(None),
                Notice.sent_at.is_(None),
                Notice.created_at > now - RETRY_FOR,
            )
            .order_by(Notice.id)
        )
    )


def latest(session: Session, limit: int) -> list[Notice]:
    """The latest notes, newest first."""
    return list(session.scalars(select(Notice).order_by(Notice.id.desc()).limit(limit)))
