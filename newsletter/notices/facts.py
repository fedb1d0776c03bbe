"""What the notes to the author are made of, read from the database (nothing is written here)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from newsletter.notices.due import REPORT_WITHIN, Report, Skip
from newsletter.publishing import planning
from newsletter.settings import Settings
from newsletter.storage.models import (
    UNFINISHED,
    ConsentEvent,
    ConsentEventKind,
    Delivery,
    DeliveryStatus,
    Edition,
    EditionStatus,
    Issue,
    IssueStatus,
    Subscriber,
    SubscriberStatus,
)

JOINED = (ConsentEventKind.CONFIRMED, ConsentEventKind.IMPORTED, ConsentEventKind.RESUBSCRIBED)
LEFT = (ConsentEventKind.UNSUBSCRIBED, ConsentEventKind.ERASED)


def queue_outlook(
    session: Session, settings: Settings, now: datetime
) -> tuple[datetime | None, datetime | None]:
    """The first coming Sunday without a letter within the reminder's reach, and the last
    Sunday before it that has one (None, None when the queue reaches far enough)."""
    if settings.remind_weeks == 0:
        return None, None
    reach = now + timedelta(weeks=settings.remind_weeks)
    count = sum(1 for t in planning.next_times(settings, now, 60) if t <= reach) + 1
    last: datetime | None = None
    for week in planning.plan(session, settings, now, count):
        if week.issue is None:
            return week.when, last
        last = week.when
    return None, None


def _queued_at(when: datetime) -> ColumnElement[bool]:
    """Issues that were in the queue, ready to go, at `when`."""
    still_queued = and_(
        Issue.status == IssueStatus.QUEUED,
        or_(Issue.pinned_for.is_(None), Issue.pinned_for <= when),
    )
    sent_later = Issue.id.in_(select(Edition.issue_id).where(Edition.scheduled_at > when))
    return and_(Issue.queued_at <= when, or_(still_queued, sent_later))


def last_skip(session: Session, settings: Settings, now: datetime) -> Skip | None:
    """The latest scheduled time, if it went by (past the grace) without an edition.

    Only once the author has started: some issue was queued before it.
    """
    when = planning.latest_time(settings, now)
    if when is None or now - when <= planning.grace(settings):
        return None
    if session.scalar(select(Edition.id).where(Edition.scheduled_at == when)) is not None:
        return None
    if session.scalar(select(Issue.id).where(Issue.queued_at <= when).limit(1)) is None:
        return None
    ready = session.scalar(select(Issue.id).where(_queued_at(when)).limit(1))
    return Skip(when, nothing_queued=ready is None)


def _events(
    session: Session, kinds: tuple[ConsentEventKind, ...], after: datetime | None, until: datetime
) -> int:  # fmt: skip - the window's two ends read best side by side
    window = ConsentEvent.at <= until
    if after is not None:
        window = and_(window, ConsentEvent.at > after)
    query = (
        select(func.count()).select_from(ConsentEvent).where(ConsentEvent.event.in_(kinds), window)
    )
    return session.scalar(query) or 0


def edition_report(session: Session, edition: Edition) -> Report:
    """What one finished edition reached, and the list's changes since the letter before it."""
    per_state = dict(
        session.execute(
            select(Delivery.status, func.count())
            .where(Delivery.edition_id == edition.id)
            .group_by(Delivery.status)
        ).all()
    )
    bounced = session.scalar(
        select(func.count())
        .select_from(Delivery)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(
            Delivery.edition_id == edition.id,
            Delivery.status == DeliveryStatus.FAILED,
            Subscriber.status == SubscriberStatus.BOUNCED,
        )
    )
    previous = session.scalar(
        select(func.max(Edition.scheduled_at)).where(Edition.scheduled_at < edition.scheduled_at)
    )
    until = edition.finished_at or edition.scheduled_at
    return Report(
        edition_id=edition.id,
        scheduled_at=edition.scheduled_at,
        finished_at=until,
        subject=edition.subject,
        reached=per_state.get(DeliveryStatus.SENT, 0),
        failed=per_state.get(DeliveryStatus.FAILED, 0),
        bounced=bounced or 0,
        joined=_events(session, JOINED, previous, until),
        left=_events(session, LEFT, previous, until),
    )


def finished_reports(session: Session, now: datetime) -> list[Report]:
    """A report for each edition finished within the last week."""
    editions = session.scalars(
        select(Edition)
        .where(Edition.status == EditionStatus.DONE, Edition.finished_at > now - REPORT_WITHIN)
        .order_by(Edition.scheduled_at)
    )
    return [edition_report(session, edition) for edition in editions]


def sending_edition(session: Session) -> tuple[int, datetime, int] | None:
    """The newest edition still being sent: its id, its time, and how many readers wait."""
    row = session.execute(
        select(Edition.id, Edition.scheduled_at, func.count(Delivery.id))
        .join(Delivery, Delivery.edition_id == Edition.id)
        .where(Delivery.status.in_(UNFINISHED))
        .group_by(Edition.id, Edition.scheduled_at)
        .order_by(Edition.scheduled_at.desc())
        .limit(1)
    ).first()
    return (row[0], row[1], row[2]) if row is not None else None
