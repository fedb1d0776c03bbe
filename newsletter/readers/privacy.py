"""A reader's rights: a copy of what is kept (export) and erasure behind a suppression list."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from newsletter.readers import consent
from newsletter.storage import ledger_editions
from newsletter.storage.models import (
    ConsentEvent,
    ConsentEventKind,
    ConsentText,
    Delivery,
    Edition,
    Subscriber,
    SubscriberStatus,
    Suppression,
)
from newsletter.tokens import keyed_hash

EXPORT_BATCH = 1000


def address_hash(key: bytes, email: str) -> str:
    """The keyed hash (HMAC-SHA256) kept of an erased address; the address itself is not."""
    return keyed_hash(key, "suppression", email.strip().lower().encode()).hex()


def _hashes(keys: Sequence[bytes], email: str) -> list[str]:
    # An entry made under an older key still counts while that key is in the list.
    return [address_hash(key, email) for key in keys]


def suppressed_since(session: Session, keys: Sequence[bytes], email: str) -> datetime | None:
    """When this address was erased, if it is on the suppression list."""
    return session.scalar(
        select(Suppression.created_at).where(Suppression.address_hash.in_(_hashes(keys, email)))
    )


def lift_suppression(session: Session, keys: Sequence[bytes], email: str) -> bool:
    """Take the address off the suppression list (its owner signed up again themselves)."""
    result = session.execute(
        delete(Suppression)
        .where(Suppression.address_hash.in_(_hashes(keys, email)))
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Forgotten:
    on_list: bool  # there was a subscriber with this address
    already_suppressed: bool


def forget(session: Session, keys: Sequence[bytes], email: str, now: datetime) -> Forgotten:
    """Erase everything kept about the address; keep only its keyed hash on the suppression list.

    The subscriber, their consent log and their delivery rows go; an 'erased' event without any
    link to the person stays, as the record that the request was carried out.
    """
    subscriber = session.scalars(
        select(Subscriber).where(Subscriber.email_key == email.strip().lower())
    ).one_or_none()
    if subscriber is not None:
        session.execute(delete(ConsentEvent).where(ConsentEvent.subscriber_id == subscriber.id))
        ledger_editions.erase_reader(session, subscriber.id)
        session.execute(delete(Subscriber).where(Subscriber.id == subscriber.id))
        session.expunge(subscriber)
    already = suppressed_since(session, keys, email) is not None
    if not already:
        session.add(Suppression(address_hash=address_hash(keys[0], email), created_at=now))
    consent.log(session, None, ConsentEventKind.ERASED, consent.Source.CLI, now)
    session.flush()
    return Forgotten(on_list=subscriber is not None, already_suppressed=already)


# --- export -------------------------------------------------------------------------------


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def _event(event: ConsentEvent) -> dict[str, Any]:
    return {
        "event": event.event.value,
        "at": _iso(event.at),
        "source": event.source,
        "consent_version": event.consent_version,
        "detail": event.detail,
        "client_ip": event.client_ip,
    }


def _subscriber(subscriber: Subscriber, events: list[ConsentEvent]) -> dict[str, Any]:
    return {
        "email": subscriber.email,
        "name": subscriber.name,
        "status": subscriber.status.value,
        "source": subscriber.source,
        "requested_at": _iso(subscriber.requested_at),
        "confirmed_at": _iso(subscriber.confirmed_at),
        "consent_version": subscriber.consent_version,
        "consent_basis": subscriber.consent_basis,
        "created_at": _iso(subscriber.created_at),
        "subscribed_at": _iso(subscriber.subscribed_at),
        "unsubscribed_at": _iso(subscriber.unsubscribed_at),
        "bounced_at": _iso(subscriber.bounced_at),
        "paused_until": _iso(subscriber.paused_until),
        "consent_log": [_event(event) for event in events],
    }


def export_records(
    session: Session, email: str | None = None, *, include_pending: bool = False
) -> Iterator[dict[str, Any]]:
    """Every subscriber (or the one with this address) with their consent log, in batches.

    Unconfirmed sign-ups only with `include_pending`, or when their own address is asked for.
    A single address also gets its delivery history: which letters went out to it, and when.
    """
    last_id = 0
    while True:
        query = select(Subscriber).where(Subscriber.id > last_id).order_by(Subscriber.id)
        if email is not None:
            query = query.where(Subscriber.email_key == email.strip().lower())
        elif not include_pending:
            query = query.where(Subscriber.status != SubscriberStatus.PENDING)
        batch = list(session.scalars(query.limit(EXPORT_BATCH)))
        if not batch:
            return
        events: dict[int, list[ConsentEvent]] = {}
        for event in consent.events_of(session, [s.id for s in batch]):
            events.setdefault(event.subscriber_id or 0, []).append(event)
        for subscriber in batch:
            record = _subscriber(subscriber, events.get(subscriber.id, []))
            if email is not None:
                record["deliveries"] = _deliveries(session, subscriber.id)
            yield record
        last_id = batch[-1].id
        session.expunge_all()


def _deliveries(session: Session, subscriber_id: int) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Edition.scheduled_at, Edition.subject, Delivery.status, Delivery.finished_at)
        .join(Edition, Edition.id == Delivery.edition_id)
        .where(Delivery.subscriber_id == subscriber_id)
        .order_by(Edition.scheduled_at)
    )
    return [
        {"edition": _iso(when), "subject": subject, "status": status.value, "at": _iso(done)}
        for when, subject, status, done in rows
    ]


def consent_texts(session: Session, versions: set[str] | None = None) -> dict[str, str]:
    """The consent texts by version (all of them, or those named)."""
    query = select(ConsentText.version, ConsentText.text).order_by(ConsentText.first_used_at)
    if versions is not None:
        query = query.where(ConsentText.version.in_(sorted(versions)))
    return {version: text for version, text in session.execute(query)}
