"""The delivery ledger: with `ledger_editions` and `ledger_reports`, the one writer of deliveries
and editions. This module is the senders' side: claims, outcomes, leases, hand-backs.

Every delivery of an edition is a row that moves through these states; each move is one function
here, with the module that may cause it:

| state | event | next state | caused by (`E.`: `ledger_editions.`) |
|---|---|---|---|
| (none) | edition settled; reader due it | pending | publishing (E.create_edition) |
| pending, or retry that is due | a sender claims it | sending (owner, lease) | engine (claim) |
| sending, lease expired | another sender claims it | sending (new owner) | engine (claim) |
| sending | its sender is still working on it | sending (lease renewed) | engine (renew) |
| sending | the relay accepted it | sent | engine (record) |
| sending | temporary failure within the retry age | retry (at a time) | engine (record) |
| sending | permanent, or temporary past the age | failed | engine (record) |
| sending | the reader left before the hand-over | skipped | engine (record) |
| sending | handed back untried (relay down, stop) | retry, try not counted | engine (release) |
| retry | the relay refused everyone | retry, due now, try not counted | engine (forgive) |
| sending | its sender died | retry | engine (recover_abandoned) |
| pending, sending, retry | reader left, paused, bounced | skipped | readers (E.skip_unfinished) |
| any | the reader was erased | (row deleted) | readers (E.erase_reader) |
| failed | the operator retries the edition | pending | delivery (E.requeue_failed) |

Leases are on the wall clock, never on a job's `--now` clock: two senders started with
different `--now` times must agree on when a lease runs out. Outcomes are written with
`WHERE status = 'sending' AND lease_owner = <me>`, so a row that was skipped (the reader left)
or reclaimed meanwhile is never overwritten. Before each hand-over the sender reads the row
again: only a row that still exists, is `sending` and is owned by this sender is sent; a row
that is gone (the reader was erased) is never sent. An edition is `sending` until none of its
deliveries is unfinished, then `done` (`E.finish_editions`). What comes back after `sent` (a
bounce, a delay, a complaint) is noted on the row by `ledger_reports`; it never changes the
state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    bindparam,
    case,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from newsletter.storage.models import (
    Delivery,
    DeliveryStatus,
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
    fresh: bool = False  # this claim is the first try: a refusal by the relay leaves no age


@dataclass(frozen=True)
class Outcome:
    """What became of one claimed delivery: its next state, and the reply that decided it."""

    delivery_id: int
    status: DeliveryStatus
    code: int | None = None
    reply: str | None = None
    next_attempt_at: datetime | None = None


def _claim_ids(
    session: Session,
    *,
    owner: str,
    now: datetime,
    lease: timedelta,
    limit: int,
    skip_locked: bool,
    wall: datetime,
) -> list[int]:
    """Take up to `limit` due deliveries: expired leases, retries whose time has come, pending.

    One query per kind, each a range scan of the (status, id) index in id order: a single query
    with an OR over the kinds made SQLite scan the table from its start on every claim, past
    every delivery already sent. Leases are on the wall clock (`wall`), shared by every sender;
    retry times and ages on the job's clock (`now`, which `--now` may set).
    """
    kinds = (
        and_(Delivery.status == DeliveryStatus.SENDING, Delivery.lease_expires_at <= wall),
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
                lease_expires_at=wall + lease,
                attempts=Delivery.attempts + 1,
                first_attempt_at=func.coalesce(Delivery.first_attempt_at, now),
            )
            .returning(Delivery.id)
            .execution_options(synchronize_session=False)
        ).all()
    return claimed_ids


def claim(
    session: Session,
    *,
    owner: str,
    now: datetime,
    lease: timedelta,
    limit: int,
    skip_locked: bool,
    wall: datetime | None = None,
) -> list[Claimed]:
    """Claim up to `limit` due deliveries for `owner`, with what is needed to send them.

    `now` is the job's clock (retries due, first attempts); `wall`, the real time the leases
    are on (default: now, the real time).
    """
    claimed_ids = _claim_ids(
        session,
        owner=owner,
        now=now,
        lease=lease,
        limit=limit,
        skip_locked=skip_locked,
        wall=wall or datetime.now(UTC),
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
            fresh=row[7] is None or row[7] == now,
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


def release(
    session: Session, claimed: Sequence[Claimed], *, owner: str, reason: str | None = None
) -> None:
    """Hand claimed deliveries back untried (the relay was down): no attempt, and no age.
    `reason` (why the relay took nothing) is kept as the reply, for `newsletter status`."""
    if not claimed:
        return
    fresh = [c.delivery_id for c in claimed if c.fresh] or [-1]
    why = {"last_code": None, "last_reply": reason[:500]} if reason else {}
    session.execute(
        update(Delivery)
        .where(
            Delivery.id.in_([c.delivery_id for c in claimed]),
            Delivery.status == DeliveryStatus.SENDING,
            Delivery.lease_owner == owner,
        )
        .values(
            status=DeliveryStatus.RETRY,
            attempts=Delivery.attempts - 1,
            first_attempt_at=case((Delivery.id.in_(fresh), None), else_=Delivery.first_attempt_at),
            lease_owner=None,
            lease_expires_at=None,
            **why,
        )
        .execution_options(synchronize_session=False)
    )


def renew(session: Session, delivery_ids: Sequence[int], *, owner: str, until: datetime) -> int:
    """Extend the lease of deliveries this owner still holds; returns how many it holds."""
    result = session.execute(
        update(Delivery)
        .where(
            Delivery.id.in_(list(delivery_ids)),
            Delivery.status == DeliveryStatus.SENDING,
            Delivery.lease_owner == owner,
        )
        .values(lease_expires_at=until)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def forgive(
    session: Session, delivery_ids: Sequence[int], fresh_ids: Sequence[int], reply: str
) -> None:
    """Tries the relay refused for everyone (`retry` rows): not counted, no age, due again."""
    if not delivery_ids:
        return
    session.execute(
        update(Delivery)
        .where(Delivery.id.in_(list(delivery_ids)), Delivery.status == DeliveryStatus.RETRY)
        .values(
            attempts=Delivery.attempts - 1,
            next_attempt_at=None,
            last_reply=reply[:500],
            first_attempt_at=case(
                (Delivery.id.in_(list(fresh_ids) or [-1]), None),
                else_=Delivery.first_attempt_at,
            ),
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
    return _put_back(session, condition)


def recover_family(session: Session, family: str) -> int:
    """Put back what the senders whose owner ids start with `family` claimed (a child process
    of a send that died); returns how many."""
    return _put_back(
        session,
        and_(
            Delivery.status == DeliveryStatus.SENDING,
            func.substr(Delivery.lease_owner, 1, len(family)) == family,
        ),
    )


def _put_back(session: Session, condition: ColumnElement[bool]) -> int:
    """The claims that match go back to be sent again (retry, due now); how many."""
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
