"""The delivery ledger, continued: editions as a whole, and one reader's deliveries.

Part of the one writer of deliveries and editions (the state machine is in `ledger.py`'s
docstring): an edition created with its deliveries, finished, or requeued after failures; a
reader's unfinished deliveries skipped (they left, paused or bounced) or all of them erased.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Select, delete, exists, func, insert, literal, select, update
from sqlalchemy.orm import Session

from newsletter.storage.models import (
    UNFINISHED,
    Delivery,
    DeliveryStatus,
    Edition,
    EditionStatus,
    Subscriber,
    SubscriberStatus,
)


def finish_editions(session: Session, now: datetime) -> list[int]:
    """Mark editions with no unfinished delivery left as done; returns their ids."""
    unfinished = exists().where(
        Delivery.edition_id == Edition.id, Delivery.status.in_(list(UNFINISHED))
    )
    done = session.scalars(
        select(Edition.id).where(Edition.status == EditionStatus.SENDING, ~unfinished)
    ).all()
    if done:
        session.execute(
            update(Edition)
            .where(Edition.id.in_(done))
            .values(status=EditionStatus.DONE, finished_at=now)
            .execution_options(synchronize_session=False)
        )
    return list(done)


def requeue_failed(session: Session, edition_id: int) -> int:
    """Put an edition's failed deliveries back in the queue; returns how many."""
    result = session.execute(
        update(Delivery)
        .where(Delivery.edition_id == edition_id, Delivery.status == DeliveryStatus.FAILED)
        .values(
            status=DeliveryStatus.PENDING,
            next_attempt_at=None,
            first_attempt_at=None,
            finished_at=None,
            lease_owner=None,
            lease_expires_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    requeued = int(result.rowcount)  # type: ignore[attr-defined]
    if requeued:
        session.execute(
            update(Edition)
            .where(Edition.id == edition_id)
            .values(status=EditionStatus.SENDING, finished_at=None)
            .execution_options(synchronize_session=False)
        )
    return requeued


def failed_readers(edition_id: int) -> Select[int]:
    """The readers whose delivery of this edition failed (a query, for the readers' side)."""
    return select(Delivery.subscriber_id).where(
        Delivery.edition_id == edition_id, Delivery.status == DeliveryStatus.FAILED
    )


def skip_unfinished(
    session: Session, subscriber_ids: Sequence[int], why: str, now: datetime
) -> None:
    """These readers get nothing more of any edition: their unfinished deliveries are skipped.

    A delivery a sender holds right now is skipped too; the sender sees it before the hand-over
    and its `record` leaves the row alone.
    """
    if not subscriber_ids:
        return
    session.execute(
        update(Delivery)
        .where(Delivery.subscriber_id.in_(list(subscriber_ids)), Delivery.status.in_(UNFINISHED))
        .values(status=DeliveryStatus.SKIPPED, last_reply=why, finished_at=now)
        .execution_options(synchronize_session=False)
    )


def erase_reader(session: Session, subscriber_id: int) -> None:
    """Delete every delivery row of an erased reader."""
    session.execute(delete(Delivery).where(Delivery.subscriber_id == subscriber_id))


def create_edition(session: Session, edition: Edition) -> int:
    """Store a settled edition with one pending delivery per reader due it; returns how many.

    Due: subscribed, and not paused past the edition's scheduled time.
    """
    session.add(edition)
    session.flush()
    scheduled_at = edition.scheduled_at
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
    return session.scalar(select(func.count()).where(Delivery.edition_id == edition.id)) or 0
