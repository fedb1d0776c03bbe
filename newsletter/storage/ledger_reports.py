"""The delivery ledger, continued: what comes back after a delivery was sent.

Part of the ledger (`ledger.py` holds the state machine): the one place that writes a report on
a delivery. A report never changes a delivery's state (`sent` stays `sent`: the relay did accept
it); it adds the strongest report so far to the row:

| report kind | what came back | what the caller does with the reader |
|---|---|---|
| soft | `delayed`, 4.x.x, 5.2.2 mailbox full, 5.7.x blocked, other 5.x.x | counts (`soft_streak`) |
| hard | `failed` with 5.1.x or 5.2.1, or an MTA's wording for a gone address | marks bounced |
| complaint | an ARF `Feedback-Type: abuse` report | unsubscribes |

A weaker report never replaces a stronger one, so reading the same report twice changes nothing.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, SQLColumnExpression, case, func, select, update
from sqlalchemy.orm import Session

from newsletter.storage.models import Delivery, DeliveryStatus, Edition, Subscriber


class ReportKind(enum.StrEnum):
    SOFT = "soft"
    HARD = "hard"
    COMPLAINT = "complaint"


RANK = {ReportKind.SOFT: 1, ReportKind.HARD: 2, ReportKind.COMPLAINT: 3}


@dataclass(frozen=True)
class Reported:
    """The delivery a report names, with its reader and edition."""

    delivery_id: int
    status: DeliveryStatus
    subscriber_id: int
    email: str
    edition_id: int
    edition_seed: str
    scheduled_at: datetime


def find(session: Session, delivery_id: int) -> Reported | None:
    """The delivery with this id, or None (never sent by this database, or erased since)."""
    row = session.execute(
        select(
            Delivery.id,
            Delivery.status,
            Delivery.subscriber_id,
            Subscriber.email,
            Edition.id,
            Edition.message_id_seed,
            Edition.scheduled_at,
        )
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .join(Edition, Edition.id == Delivery.edition_id)
        .where(Delivery.id == delivery_id)
    ).one_or_none()
    return None if row is None else Reported(*row)


def _rank_of(column: SQLColumnExpression[str | None]) -> ColumnElement[int]:
    return case({kind.value: rank for kind, rank in RANK.items()}, value=column, else_=0)


def note(
    session: Session,
    delivery_id: int,
    kind: ReportKind,
    status: str,
    text: str,
    now: datetime,
) -> bool:
    """Write the report on the delivery unless a stronger (or equal) one is there already."""
    result = session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id, _rank_of(Delivery.report_kind) < RANK[kind])
        .values(
            report_kind=kind.value,
            report_status=status[:32],
            report_text=text[:500],
            reported_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def soft_streak(session: Session, subscriber_id: int, until: datetime, limit: int) -> int:
    """How many of the reader's latest sent editions up to `until`, in a row, came back soft.

    A sent edition with no report in between ends the streak; counts at most `limit`.
    """
    kinds = session.scalars(
        select(Delivery.report_kind)
        .join(Edition, Edition.id == Delivery.edition_id)
        .where(
            Delivery.subscriber_id == subscriber_id,
            Delivery.status == DeliveryStatus.SENT,
            Edition.scheduled_at <= until,
        )
        .order_by(Edition.scheduled_at.desc())
        .limit(limit)
    ).all()
    streak = 0
    for kind in kinds:
        if kind != ReportKind.SOFT.value:
            break
        streak += 1
    return streak


def counts(session: Session, edition_id: int) -> dict[ReportKind, int]:
    """Reports per kind for one edition."""
    rows = session.execute(
        select(Delivery.report_kind, func.count())
        .where(Delivery.edition_id == edition_id, Delivery.report_kind.is_not(None))
        .group_by(Delivery.report_kind)
    ).all()
    found = {kind: n for kind, n in rows}
    return {kind: found.get(kind.value, 0) for kind in ReportKind}


def reasons(session: Session, edition_id: int, limit: int = 20) -> list[tuple[str, str, str, int]]:
    """(kind, status, text, deliveries) for one edition's reports, most frequent first."""
    rows = session.execute(
        select(Delivery.report_kind, Delivery.report_status, Delivery.report_text, func.count())
        .where(Delivery.edition_id == edition_id, Delivery.report_kind.is_not(None))
        .group_by(Delivery.report_kind, Delivery.report_status, Delivery.report_text)
        .order_by(func.count().desc())
        .limit(limit)
    ).all()
    return [(k or "", s or "", t or "", n) for k, s, t, n in rows]
