"""Double opt-in: a sign-up asks, a mail confirms; what is never confirmed is purged.

Every sign-up is answered the same way, whoever owns the address, so the form tells no one who
is on the list: before the answer only the per-client limit is counted (the same work for every
address); the sign-up is stored and its mail sent after the answer (`record_and_mail`).
Confirmation mails are limited per address (one, then longer and longer waits) and sign-ups per
client, in the database, so the limits hold across processes. A confirmation link carries the
nonce of the one open sign-up it was sent for; confirming clears it, so a used link never puts
anyone on the list again.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from newsletter import links
from newsletter.readers import addresses, consent, privacy, subscriptions
from newsletter.readers.confirmation_mail import Mail, send_mail
from newsletter.settings import Settings
from newsletter.storage.db import lock_for_transaction, transaction
from newsletter.storage.models import (
    ConsentEvent,
    ConsentEventKind,
    SignupAttempt,
    Subscriber,
    SubscriberStatus,
)
from newsletter.tokens import keyed_hash, new_token_id

log = logging.getLogger(__name__)

CLIENT_WINDOW = timedelta(hours=1)
MAX_BACKOFF_DOUBLINGS = 7  # 15 minutes doubles up to 32 hours between unanswered mails


class TooManySignups(RuntimeError):
    """This client sent more sign-ups in the last hour than allowed."""


class InvalidLink(ValueError):
    """A confirmation link that is forged, cut short or expired."""


class LinkUsed(ValueError):
    """A genuine confirmation link whose sign-up is no longer open: it was used (or replaced)."""


def client_key(host: str | None) -> str:
    """The network a sign-up came from, for limiting: an IPv4 address, or an IPv6 /64."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host[:64]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(getattr(address, "ipv4_mapped", None) or address)


def _client_hash(keys: Sequence[bytes], host: str | None) -> str:
    return keyed_hash(keys[0], "signup-client", client_key(host).encode()).hex()


def admit(
    session: Session, keys: Sequence[bytes], settings: Settings, host: str | None, now: datetime
) -> None:
    """Count one sign-up against its client's hourly limit; TooManySignups when over it.

    Exact under concurrency: one transaction per client network at a time counts and adds (an
    advisory lock on PostgreSQL, the write lock on SQLite). It never looks at the address.
    """
    digest = _client_hash(keys, host)
    lock_for_transaction(session, "signup-client:" + digest)
    recent = session.scalar(
        select(func.count())
        .select_from(SignupAttempt)
        .where(SignupAttempt.client_hash == digest, SignupAttempt.at > now - CLIENT_WINDOW)
    )
    if (recent or 0) >= settings.signup_client_hourly_limit:
        raise TooManySignups(f"more than {settings.signup_client_hourly_limit} sign-ups an hour")
    session.add(SignupAttempt(client_hash=digest, at=now))
    session.flush()


def confirm_url(settings: Settings, keys: Sequence[bytes], nonce: str, now: datetime) -> str:
    """The link for the open sign-up with this nonce, valid NEWSLETTER_CONFIRM_EXPIRY_DAYS."""
    expires = now + timedelta(days=settings.confirm_expiry_days)
    return links.confirm_url(settings.base_url, keys, nonce, expires)


def _may_mail(session: Session, subscriber: Subscriber, settings: Settings, now: datetime) -> bool:
    """Claim the right to mail this address now; one claim wins, whatever the process."""
    sends = subscriber.confirm_sends
    last = subscriber.confirm_sent_at
    if last is not None and sends > 0:
        doublings = min(sends - 1, MAX_BACKOFF_DOUBLINGS)
        wait = timedelta(minutes=settings.signup_resend_minutes) * (2**doublings)
        if now < last + wait:
            return False
    claimed = session.execute(
        update(Subscriber)
        .where(Subscriber.id == subscriber.id, Subscriber.confirm_sends == sends)
        .values(confirm_sends=sends + 1, confirm_sent_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(claimed.rowcount)  # type: ignore[attr-defined]


def _pending(session: Session, address: str, now: datetime) -> Subscriber:
    """The address's row, created as pending if it is new (racing another request is fine)."""
    existing = addresses.find_by_address(session, address)
    if existing is not None:
        return existing
    subscriber = Subscriber(
        email=address,
        email_key=addresses.address_key(address),
        status=SubscriberStatus.PENDING,
        token_id=new_token_id(),
        created_at=now,
    )
    try:
        with session.begin_nested():
            session.add(subscriber)
    except IntegrityError:
        found = addresses.find_by_address(session, address)
        if found is None:
            raise
        return found
    return subscriber


def record(
    session: Session,
    settings: Settings,
    keys: Sequence[bytes],
    *,
    address: str,
    name: str | None,
    client_ip: str | None,
    now: datetime,
) -> Mail | None:
    """Store a sign-up of a checked address and name; say which mail to send, if one may go.

    A reader not on the list gets (or keeps) an open sign-up, whose nonce the link carries; the
    name is the one typed with the sign-up whose mail goes out, so a stranger's earlier sign-up
    cannot choose it.
    """
    text = consent.current(settings)
    consent.remember(session, text, now)
    subscriber = _pending(session, address, now)
    already = subscriber.status is SubscriberStatus.SUBSCRIBED
    if not already:
        subscriber.requested_at = now
        subscriber.consent_version = text.version
        subscriber.confirm_nonce = subscriber.confirm_nonce or new_token_id()
        consent.log(
            session,
            subscriber.id,
            ConsentEventKind.REQUESTED,
            consent.Source.FORM,
            now,
            version=text.version,
            client_ip=client_ip,
        )
    session.flush()
    if not _may_mail(session, subscriber, settings, now):
        log.info("sign-up for subscriber %s: a mail went out recently; none sent", subscriber.id)
        return None
    if already:
        url = links.unsubscribe_url(settings.base_url, keys, subscriber.token_id)
    else:
        subscriber.name = name
        url = confirm_url(settings, keys, str(subscriber.confirm_nonce), now)
    session.flush()
    return Mail(subscriber.id, subscriber.email, subscriber.name, url, already)


def request(
    session: Session,
    settings: Settings,
    keys: Sequence[bytes],
    *,
    email: str,
    name: str | None,
    client_host: str | None,
    now: datetime,
) -> Mail | None:
    """A whole sign-up in one transaction: check, count the client, store; the mail to send.

    Raises addresses.AddressError for an unusable address or name, TooManySignups when this
    client is over its limit. (The web form does the same in two steps, around its answer.)
    """
    address = addresses.normalise_address(email)
    cleaned = addresses.clean_name(name)
    admit(session, keys, settings, client_host, now)
    client_ip = consent.shorten_ip(client_host) if settings.consent_log_ip else None
    return record(
        session, settings, keys, address=address, name=cleaned, client_ip=client_ip, now=now
    )


def record_and_mail(
    factory: sessionmaker[Session],
    settings: Settings,
    keys: Sequence[bytes],
    *,
    address: str,
    name: str | None,
    client_ip: str | None,
    now: datetime,
) -> bool:
    """The work after the answer: store the sign-up, then send its mail. Never raises.

    Whether the address is new, waiting, on the list, gone or erased, the visitor has had the
    same answer in the same time; what differs happens here.
    """
    try:
        with transaction(factory) as session:
            mail = record(
                session, settings, keys, address=address, name=name, client_ip=client_ip, now=now
            )
    except Exception as exc:  # a background task: nothing above us could report it
        log.error("sign-up not stored: %s", type(exc).__name__)
        return False
    return mail is not None and send_mail(settings, mail, now)


def find_for_confirmation(
    session: Session, keys: Sequence[bytes], token: str, now: datetime, *, lock: bool = False
) -> Subscriber:
    """The reader whose open sign-up this link is for.

    Raises InvalidLink for a forged or expired link, LinkUsed for a genuine one whose sign-up is
    no longer open (confirmed, or gone). With `lock`, the row stays locked until the transaction
    ends, so two presses of the button confirm once.
    """
    nonce = links.read(keys, links.Purpose.CONFIRM, token, now)
    if nonce is None:
        raise InvalidLink("not a valid confirmation link")
    query = select(Subscriber).where(Subscriber.confirm_nonce == nonce)
    found = session.scalars(query.with_for_update() if lock else query).one_or_none()
    if found is None or found.status is SubscriberStatus.SUBSCRIBED:
        raise LinkUsed("this sign-up is no longer open")
    return found


def confirm(
    session: Session,
    keys: Sequence[bytes],
    subscriber: Subscriber,
    now: datetime,
    *,
    client_ip: str | None = None,
) -> bool:
    """The confirmation button: on the list from now on, with proof of consent.

    The sign-up's nonce is cleared (put_on_list), so the link never works again.
    """
    if subscriber.status is SubscriberStatus.SUBSCRIBED or subscriber.confirm_nonce is None:
        return False
    subscriptions.put_on_list(
        subscriber, now, source=consent.Source.FORM, version=subscriber.consent_version
    )
    subscriber.confirm_sends = 0
    if subscriber.requested_at is None:  # cannot happen through the form; keep the record whole
        subscriber.requested_at = now
    consent.log(
        session,
        subscriber.id,
        ConsentEventKind.CONFIRMED,
        consent.Source.CONFIRM_LINK,
        now,
        version=subscriber.consent_version,
        client_ip=client_ip,
    )
    # Signing up again themselves is how an erased reader comes back.
    privacy.lift_suppression(session, keys, subscriber.email)
    session.flush()
    return True


def purge(session: Session, settings: Settings, now: datetime) -> int:
    """Delete sign-ups never confirmed within the retention, and old per-client counts."""
    cutoff = now - timedelta(days=settings.pending_retention_days)
    stale = select(Subscriber.id).where(
        Subscriber.status == SubscriberStatus.PENDING,
        Subscriber.confirmed_at.is_(None),
        or_(Subscriber.requested_at.is_(None), Subscriber.requested_at < cutoff),
        Subscriber.created_at < cutoff,
    )
    ids = list(session.scalars(stale))
    if ids:
        session.execute(delete(ConsentEvent).where(ConsentEvent.subscriber_id.in_(ids)))
        session.execute(delete(Subscriber).where(Subscriber.id.in_(ids)))
    session.execute(delete(SignupAttempt).where(SignupAttempt.at < now - CLIENT_WINDOW * 24))
    return len(ids)
