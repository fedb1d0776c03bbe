"""The delivery ledger: the one module that writes deliveries and editions.

Every delivery of an edition is a row that moves through these states; each move is one function
here, with the module that may cause it:

| state | event | next state | caused by (function) |
|---|---|---|---|
| (none) | edition settled; reader subscribed, not paused | pending | publishing (create_edition) |
| pending, or retry that is due | a sender claims it | sending (owner, lease) | engine (claim) |
| sending, lease expired | another sender claims it | sending (new owner) | engine (claim) |
| sending | the relay accepted it | sent | engine (record) |
| sending | temporary failure within the retry age | retry (at a time) | engine (record) |
| sending | permanent, or temporary past the age | failed | engine (record) |
| sending | the reader left before the hand-over | skipped | engine (record) |
| sending | handed back untried (relay down, stop) | retry, try not counted | engine (release) |
| sending | its sender died | retry | engine (recover_abandoned) |
| pending, sending, retry | reader left, paused, bounced | skipped | readers (skip_unfinished) |
| any | the reader was erased | (row deleted) | readers (erase_reader) |
| failed | the operator retries the edition | pending | delivery (requeue_failed) |

Outcomes are written with `WHERE status = 'sending' AND lease_owner = <me>`, so a row that was
skipped (the reader left) or reclaimed meanwhile is never overwritten. An edition is `sending`
until none of its deliveries is unfinished, then `done` (`finish_editions`). What comes back
after `sent` (a bounce, a delay, a complaint) is noted on the row by `ledger_reports`, the
ledger's second module; it never changes the state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import (
    Select,
    Table,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
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

FINAL = (DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.SKIPPED)


@dataclass(frozen=True)
class Claimed:
    """One claimed delivery with what is needed to build and address its message."""

    delivery_id: int
    edition_id: int
    subscriber_id: int
    email: str
    name: str | None
    token_id: str
    active: bool
    first_attempt_at: datetime
    attempts: int


@dataclass(frozen=True)
class Outcome:
    """What became of one claimed delivery: its next state, and the reply that decided it."""

    delivery_id: int
    status: DeliveryStatus
    code: int | None = None
    reply: str | None = None
    next_attempt_at: datetime | None = None


def _claim_ids(
    session: Session, *, owner: str, now: datetime, lease: timedelta, limit: int, skip_locked: bool
) -> list[int]:
    """Take up to `limit` due deliveries: expired leases, retries whose time has come, pending.

    One query per kind, each a range scan of the (status, id) index in id order: a single query
    with an OR over the kinds made SQLite scan the table from its start on every claim, past
    every delivery already sent.
    """
    kinds = (
        and_(Delivery.status == DeliveryStatus.SENDING, Delivery.lease_expires_at <= now),
        and_(
            Delivery.status == DeliveryStatus.RETRY,
            or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now),
        ),
        Delivery.status == DeliveryStatus.PENDING,
    )
    claimed_ids: list[int] = []
    for due in kinds:
        wanted = limit - len(claimed_ids)
        if wanted <= 0:
            break
        candidates = select(Delivery.id).where(due).order_by(Delivery.id).limit(wanted)
        if skip_locked:
            candidates = candidates.with_for_update(skip_locked=True)
        claimed_ids += session.scalars(
            update(Delivery)
            .where(Delivery.id.in_(candidates.scalar_subquery()))
            .values(
                status=DeliveryStatus.SENDING,
                lease_owner=owner,
                lease_expires_at=now + lease,
                attempts=Delivery.attempts + 1,
                first_attempt_at=func.coalesce(Delivery.first_attempt_at, now),
            )
            .returning(Delivery.id)
            .execution_options(synchronize_session=False)
        ).all()
    return claimed_ids


def claim(
    session: Session, *, owner: str, now: datetime, lease: timedelta, limit: int, skip_locked: bool
) -> list[Claimed]:
    """Claim up to `limit` due deliveries for `owner`, with what is needed to send them."""
    claimed_ids = _claim_ids(
        session, owner=owner, now=now, lease=lease, limit=limit, skip_locked=skip_locked
    )
    if not claimed_ids:
        return []
    rows = session.execute(
        select(
            Delivery.id,
            Delivery.edition_id,
            Delivery.subscriber_id,
            Subscriber.email,
            Subscriber.name,
            Subscriber.token_id,
            Subscriber.status,
            Delivery.first_attempt_at,
            Delivery.attempts,
        )
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.id.in_(claimed_ids))
        .order_by(Delivery.id)
    ).all()
    return [
        Claimed(
            delivery_id=row[0],
            edition_id=row[1],
            subscriber_id=row[2],
            email=row[3],
            name=row[4],
            token_id=row[5],
            active=row[6] is SubscriberStatus.SUBSCRIBED,
            first_attempt_at=row[7] or now,
            attempts=row[8],
        )
        for row in rows
    ]


def record(session: Session, outcomes: Sequence[Outcome], *, owner: str, now: datetime) -> None:
    """Write the outcomes of deliveries this owner still holds; others are left as they are."""
    if not outcomes:
        return
    table = cast(Table, Delivery.__table__)
    statement = (
        update(table)
        .where(
            table.c.id == bindparam("b_id"),
            table.c.status == DeliveryStatus.SENDING.value,
            table.c.lease_owner == owner,
        )
        .values(
            status=bindparam("b_status"),
            last_code=bindparam("b_code"),
            last_reply=bindparam("b_reply"),
            next_attempt_at=bindparam("b_next"),
            finished_at=bindparam("b_finished"),
            lease_owner=None,
            lease_expires_at=None,
        )
    )
    session.connection().execute(
        statement,
        [
            {
                "b_id": o.delivery_id,
                "b_status": o.status.value,
                "b_code": o.code,
                "b_reply": o.reply[:500] if o.reply else None,
                "b_next": o.next_attempt_at,
                "b_finished": now if o.status in FINAL else None,
            }
            for o in outcomes
        ],
    )


def release(session: Session, delivery_ids: Sequence[int], *, owner: str) -> None:
    """Hand claimed deliveries back untried (the relay was down): the attempt does not count."""
    if not delivery_ids:
        return
    session.execute(
        update(Delivery)
        .where(
            Delivery.id.in_(list(delivery_ids)),
            Delivery.status == DeliveryStatus.SENDING,
            Delivery.lease_owner == owner,
        )
        .values(
            status=DeliveryStatus.RETRY,
            attempts=Delivery.attempts - 1,
            lease_owner=None,
            lease_expires_at=None,
        )
        .execution_options(synchronize_session=False)
    )


def recover_abandoned(session: Session, *, live_owners: Sequence[str] | None = None) -> int:
    """Put deliveries claimed by senders that are gone back in the queue; returns how many.

    `live_owners=None` means no other sender can be alive (SQLite, under the sender lock).
    """
    condition = Delivery.status == DeliveryStatus.SENDING
    if live_owners is not None:
        condition = and_(condition, Delivery.lease_owner.not_in(list(live_owners)))
    result = session.execute(
        update(Delivery)
        .where(condition)
        .values(
            status=DeliveryStatus.RETRY,
            next_attempt_at=None,
            lease_owner=None,
            lease_expires_at=None,
            last_reply="released: the sender that claimed it stopped",
        )
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


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


def counts(session: Session, edition_id: int | None = None) -> dict[DeliveryStatus, int]:
    """Deliveries per state, for one edition or all."""
    query = select(Delivery.status, func.count()).group_by(Delivery.status)
    if edition_id is not None:
        query = query.where(Delivery.edition_id == edition_id)
    found: dict[DeliveryStatus, int] = {status: n for status, n in session.execute(query)}
    return {status: found.get(status, 0) for status in DeliveryStatus}


def next_retry_at(session: Session) -> datetime | None:
    return session.scalar(
        select(func.min(Delivery.next_attempt_at)).where(Delivery.status == DeliveryStatus.RETRY)
    )


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
