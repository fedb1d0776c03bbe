"""Subscribers: adding, leaving, pausing, coming back, bouncing; one row per address, any case."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session

from newsletter.i18n import N_, _
from newsletter.readers import consent, privacy
from newsletter.readers.addresses import (
    address_key,
    clean_basis,
    clean_name,
    find_by_address,
    for_people,
    normalise_address,
)
from newsletter.storage import ledger_editions
from newsletter.storage.models import ConsentEventKind, Subscriber, SubscriberStatus
from newsletter.tokens import new_token_id

PAUSE_WEEKS = range(1, 27)
# A reader's state as people read it.
STATUS_WORDS = {
    SubscriberStatus.PENDING: N_("pending"),
    SubscriberStatus.SUBSCRIBED: N_("subscribed"),
    SubscriberStatus.UNSUBSCRIBED: N_("unsubscribed"),
    SubscriberStatus.BOUNCED: N_("bounced"),
}


class AlreadySubscribed(ValueError):
    """The address is already on the list."""


class Suppressed(ValueError):
    """The address was erased on request: only its owner can put it back, by signing up."""


def _already(address: str, existing: Subscriber) -> AlreadySubscribed:
    return AlreadySubscribed(
        _("{address} is already on the list ({status})").format(
            address=for_people(address), status=_(STATUS_WORDS[existing.status])
        )
    )


def _suppressed(address: str) -> Suppressed:
    return Suppressed(
        _("{address} was erased on request; only its owner can sign up again").format(
            address=for_people(address)
        )
    )


def add(
    session: Session,
    email: str,
    name: str | None,
    now: datetime,
    *,
    basis: str | None = None,
    source: str = consent.Source.CLI,
    keys: Sequence[bytes] = (),
) -> Subscriber:
    """Add a confirmed subscriber (the operator vouches for consent, on the basis given).

    With `keys`, an address on the suppression list (erased on request) is refused.
    """
    address = normalise_address(email)
    cleaned = clean_name(name)
    reason = clean_basis(basis)
    existing = find_by_address(session, address)
    if existing is not None:
        raise _already(address, existing)
    if keys and privacy.suppressed_since(session, keys, address) is not None:
        raise _suppressed(address)
    subscriber = Subscriber(
        email=address,
        email_key=address_key(address),
        name=cleaned,
        status=SubscriberStatus.SUBSCRIBED,
        token_id=new_token_id(),
        created_at=now,
        subscribed_at=now,
        requested_at=now,
        confirmed_at=now,
        source=source,
        consent_basis=reason,
    )
    session.add(subscriber)
    session.flush()
    consent.log(session, subscriber.id, ConsentEventKind.IMPORTED, source, now, detail=reason)
    return subscriber


def unsubscribe(
    session: Session,
    subscriber: Subscriber,
    now: datetime,
    *,
    source: str = consent.Source.CLI,
    client_ip: str | None = None,
) -> bool:
    """Take the subscriber off the list now, including the rest of any send in progress."""
    changed = subscriber.status is SubscriberStatus.SUBSCRIBED
    if changed:
        subscriber.status = SubscriberStatus.UNSUBSCRIBED
        subscriber.unsubscribed_at = now
        subscriber.paused_until = None
        consent.log(
            session,
            subscriber.id,
            ConsentEventKind.UNSUBSCRIBED,
            source,
            now,
            version=subscriber.consent_version,
            client_ip=client_ip,
        )
    _skip_unfinished(session, subscriber, now, "unsubscribed")
    return changed


def _skip_unfinished(session: Session, subscriber: Subscriber, now: datetime, why: str) -> None:
    ledger_editions.skip_unfinished(session, [subscriber.id], why, now)
    session.flush()


def pause(
    session: Session,
    subscriber: Subscriber,
    weeks: int,
    now: datetime,
    *,
    client_ip: str | None = None,
) -> datetime | None:
    """No letters for `weeks` weeks (a send in progress included); None unless subscribed."""
    if subscriber.status is not SubscriberStatus.SUBSCRIBED or weeks not in PAUSE_WEEKS:
        return None
    until = now + timedelta(weeks=weeks)
    subscriber.paused_until = until
    consent.log(
        session,
        subscriber.id,
        ConsentEventKind.PAUSED,
        consent.Source.PREFERENCES,
        now,
        detail=f"{weeks} weeks, until {until.date().isoformat()}",
        client_ip=client_ip,
    )
    _skip_unfinished(session, subscriber, now, "paused")
    return until


def resume(
    session: Session, subscriber: Subscriber, now: datetime, *, client_ip: str | None = None
) -> bool:
    """End a pause now: the next letter comes as usual."""
    if subscriber.paused_until is None or subscriber.paused_until <= now:
        return False
    subscriber.paused_until = None
    consent.log(
        session,
        subscriber.id,
        ConsentEventKind.RESUMED,
        consent.Source.PREFERENCES,
        now,
        client_ip=client_ip,
    )
    session.flush()
    return True


def put_on_list(subscriber: Subscriber, now: datetime, *, source: str, version: str | None) -> None:
    """Subscribed from now on, confirmed now, under this consent text (not an operator's basis).

    An open sign-up is closed: its confirmation link will not work again.
    """
    subscriber.status = SubscriberStatus.SUBSCRIBED
    subscriber.confirm_nonce = None
    subscriber.subscribed_at = now
    subscriber.confirmed_at = now
    subscriber.unsubscribed_at = None
    subscriber.bounced_at = None
    subscriber.paused_until = None
    subscriber.source = source
    subscriber.consent_version = version
    subscriber.consent_basis = None


def resubscribe(
    session: Session,
    subscriber: Subscriber,
    now: datetime,
    version: str,
    *,
    client_ip: str | None = None,
) -> bool:
    """Back on the list after leaving ("toch weer ontvangen"), under the consent text shown."""
    if subscriber.status is not SubscriberStatus.UNSUBSCRIBED:
        return False
    put_on_list(subscriber, now, source=consent.Source.COME_BACK, version=version)
    subscriber.requested_at = now
    consent.log(
        session,
        subscriber.id,
        ConsentEventKind.RESUBSCRIBED,
        consent.Source.COME_BACK,
        now,
        version=version,
        client_ip=client_ip,
    )
    session.flush()
    return True


@dataclass(frozen=True)
class Changed:
    """What `change` did: the address before and after (if it changed), and the name."""

    old_address: str | None = None
    new_address: str | None = None
    name: str | None = None  # "changed" or "cleared", or None when the name stayed

    def __bool__(self) -> bool:
        return self.new_address is not None or self.name is not None

    @property
    def detail(self) -> str:
        """The consent log's words (the log is kept in one language)."""
        said = [f"address {self.old_address} → {self.new_address}"] if self.new_address else []
        return "; ".join([*said, *([f"name {self.name}"] if self.name else [])])


def change(
    session: Session,
    subscriber: Subscriber,
    now: datetime,
    *,
    email: str | None = None,
    name: str | None = None,
    keys: Sequence[bytes] = (),
) -> Changed:
    """Correct a reader's address and/or name (`name=""` clears it), logged as the operator's.

    An address used by another reader, or erased on request (with `keys`), is refused.
    """
    old = new = named = None
    if email is not None:
        address = normalise_address(email)
        other = find_by_address(session, address)
        if other is not None and other.id != subscriber.id:
            raise _already(address, other)
        if other is None and keys and privacy.suppressed_since(session, keys, address) is not None:
            raise _suppressed(address)
        if address != subscriber.email:
            old, new = subscriber.email, address
            subscriber.email = address
            subscriber.email_key = address_key(address)
    if name is not None:
        cleaned = clean_name(name)
        if cleaned != subscriber.name:
            named = "cleared" if cleaned is None else "changed"
            subscriber.name = cleaned
    changed = Changed(old, new, named)
    if changed:
        session.flush()
        consent.log(
            session,
            subscriber.id,
            ConsentEventKind.CHANGED,
            consent.Source.CLI,
            now,
            detail=changed.detail,
        )
    return changed


def due_at(session: Session, when: datetime) -> int:
    """How many readers a letter settled for `when` would go to: subscribed, not paused then."""
    return (
        session.scalar(
            select(func.count())
            .select_from(Subscriber)
            .where(
                Subscriber.status == SubscriberStatus.SUBSCRIBED,
                Subscriber.paused_until.is_(None) | (Subscriber.paused_until <= when),
            )
        )
        or 0
    )


def find_by_token_id(session: Session, token_id: str) -> Subscriber | None:
    return session.scalars(select(Subscriber).where(Subscriber.token_id == token_id)).one_or_none()


def mark_bounced(
    session: Session, subscriber_ids: Sequence[int], now: datetime, *, source: str, detail: str
) -> None:
    """These readers' addresses are gone: off the list, logged, and nothing more is sent."""
    if not subscriber_ids:
        return
    still_subscribed = Subscriber.id.in_(list(subscriber_ids)) & (
        Subscriber.status == SubscriberStatus.SUBSCRIBED
    )
    # Logged before the status changes, so only readers whose status changes are logged.
    session.execute(
        consent.log_for(ConsentEventKind.BOUNCED, source, now, still_subscribed, detail=detail)
    )
    session.execute(
        update(Subscriber)
        .where(still_subscribed)
        .values(status=SubscriberStatus.BOUNCED, bounced_at=now)
        .execution_options(synchronize_session=False)
    )
    ledger_editions.skip_unfinished(session, subscriber_ids, "address bounced", now)


def restore_bounced(session: Session, among: Select[int], now: datetime) -> int:
    """Put readers marked bounced back on the list (the relay, not the address, was at fault).

    `among` selects the subscriber ids to consider, e.g. the readers an edition failed.
    """
    bounced = Subscriber.id.in_(among.scalar_subquery()) & (
        Subscriber.status == SubscriberStatus.BOUNCED
    )
    session.execute(
        consent.log_for(
            ConsentEventKind.RESUBSCRIBED,
            consent.Source.CLI,
            now,
            bounced,
            detail="bounce undone by the operator: newsletter retry --include-bounced",
        )
    )
    result = session.execute(
        update(Subscriber)
        .where(bounced)
        .values(status=SubscriberStatus.SUBSCRIBED, bounced_at=None, confirm_nonce=None)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
