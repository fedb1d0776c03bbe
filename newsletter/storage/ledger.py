"""The delivery ledger: claim due deliveries under a lease, record outcomes, finish editions.

Each delivery moves pending → sending (claimed: owner + lease) → sent | retry | failed | skipped.
Outcomes are written with `WHERE status = 'sending' AND lease_owner = <me>`, so a row that was
skipped (the reader left) or reclaimed meanwhile is never overwritten.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, and_, bindparam, exists, func, or_, select, update
from sqlalchemy.orm import Session

from newsletter.mail.transport import Outcome
from newsletter.readers import consent
from newsletter.storage.models import (
    UNFINISHED,
    ConsentEventKind,
    Delivery,
    DeliveryStatus,
    Edition,
    EditionStatus,
    Subscriber,
    SubscriberStatus,
)

RETRY_BASE = timedelta(minutes=1)
RETRY_CAP = timedelta(hours=4)
_HARD_BOUNCE = re.compile(r"\b5\.(1\.\d+|2\.1)\b")


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


def claim(
    session: Session,
    *,
    owner: str,
    now: datetime,
    lease: timedelta,
    limit: int,
    skip_locked: bool,
) -> list[Claimed]:
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


def backoff(attempts: int, rng: random.Random) -> timedelta:
    """Exponential backoff, jittered in its upper half: 1, 2, 4 … minutes, at most 4 hours."""
    ceiling: timedelta = min(RETRY_BASE * (2 ** max(attempts - 1, 0)), RETRY_CAP)
    return ceiling * (0.5 + rng.random() / 2)


def is_hard_bounce(outcome: Outcome) -> bool:
    """A permanent refusal of the address itself (RCPT stage, or a 5.1.x / 5.2.1 status)."""
    if outcome.accepted or outcome.temporary:
        return False
    return outcome.reply.startswith("RCPT:") or bool(_HARD_BOUNCE.search(outcome.reply))


@dataclass(frozen=True)
class Result:
    """What became of one claimed delivery."""

    claimed: Claimed
    status: DeliveryStatus
    outcome: Outcome | None = None
    next_attempt_at: datetime | None = None


def decide(
    claimed: Claimed, outcome: Outcome, now: datetime, max_age: timedelta, rng: random.Random
) -> Result:
    """Turn a relay's answer into the delivery's next state."""
    if outcome.accepted:
        return Result(claimed, DeliveryStatus.SENT, outcome)
    if not outcome.temporary:
        return Result(claimed, DeliveryStatus.FAILED, outcome)
    if now - claimed.first_attempt_at >= max_age:
        given_up = Outcome(
            accepted=False,
            code=outcome.code,
            reply=f"gave up after {claimed.attempts} attempts: {outcome.reply}"[:500],
        )
        return Result(claimed, DeliveryStatus.FAILED, given_up)
    return Result(claimed, DeliveryStatus.RETRY, outcome, now + backoff(claimed.attempts, rng))


def record(session: Session, results: Sequence[Result], *, owner: str, now: datetime) -> None:
    """Write the outcomes of claimed deliveries; bounced addresses leave the list."""
    if not results:
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
    final = (DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.SKIPPED)
    session.connection().execute(
        statement,
        [
            {
                "b_id": r.claimed.delivery_id,
                "b_status": r.status.value,
                "b_code": r.outcome.code if r.outcome else None,
                "b_reply": (r.outcome.reply[:500] if r.outcome else "not subscribed any more"),
                "b_next": r.next_attempt_at,
                "b_finished": now if r.status in final else None,
            }
            for r in results
        ],
    )
    bounced = [
        r.claimed.subscriber_id
        for r in results
        if r.status is DeliveryStatus.FAILED and r.outcome and is_hard_bounce(r.outcome)
    ]
    if bounced:
        session.execute(consent.log_bounced(bounced, now))  # before the status changes
        session.execute(
            update(Subscriber)
            .where(Subscriber.id.in_(bounced), Subscriber.status == SubscriberStatus.SUBSCRIBED)
            .values(status=SubscriberStatus.BOUNCED, bounced_at=now)
            .execution_options(synchronize_session=False)
        )
        # A bounced address gets nothing more, in this edition or any other.
        session.execute(
            update(Delivery)
            .where(
                Delivery.subscriber_id.in_(bounced),
                Delivery.status.in_([DeliveryStatus.PENDING, DeliveryStatus.RETRY]),
            )
            .values(status=DeliveryStatus.SKIPPED, last_reply="address bounced", finished_at=now)
            .execution_options(synchronize_session=False)
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


def requeue_failed(
    session: Session, edition_id: int, *, include_bounced: bool, now: datetime
) -> tuple[int, int]:
    """Put an edition's failed deliveries back in the queue (after the relay was fixed).

    Readers marked bounced by this edition stay off the list unless `include_bounced`, for when
    the relay, not the address, was at fault. Returns (requeued, readers restored).
    """
    restored = 0
    if include_bounced:
        bounced_here = select(Delivery.subscriber_id).where(
            Delivery.edition_id == edition_id, Delivery.status == DeliveryStatus.FAILED
        )
        session.execute(
            consent.log_for(
                ConsentEventKind.RESUBSCRIBED,
                consent.Source.CLI,
                now,
                Subscriber.id.in_(bounced_here.scalar_subquery())
                & (Subscriber.status == SubscriberStatus.BOUNCED),
                detail="bounce undone by the operator: newsletter retry --include-bounced",
            )
        )
        result = session.execute(
            update(Subscriber)
            .where(
                Subscriber.id.in_(bounced_here.scalar_subquery()),
                Subscriber.status == SubscriberStatus.BOUNCED,
            )
            .values(status=SubscriberStatus.SUBSCRIBED, bounced_at=None)
            .execution_options(synchronize_session=False)
        )
        restored = int(result.rowcount)  # type: ignore[attr-defined]
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
    return requeued, restored
