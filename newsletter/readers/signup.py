"""Double opt-in: a sign-up asks, a mail confirms; what is never confirmed is purged.

Every sign-up is answered the same way, whoever owns the address, so the form tells no one who
is on the list. Confirmation mails are limited per address (one, then longer and longer waits)
and sign-ups per client, in the database, so the limits hold across processes.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter import links
from newsletter.mail import transactional
from newsletter.mail.rendering import RenderError, greeting
from newsletter.mail.transport import RelayUnavailable
from newsletter.readers import addresses, consent, privacy, subscriptions
from newsletter.settings import Settings
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


@dataclass(frozen=True)
class Mail:
    """A mail to send after the sign-up is stored: a confirmation, or 'you are already in'."""

    subscriber_id: int
    email: str
    name: str | None
    url: str
    already_subscribed: bool


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


def _count_client(
    session: Session, keys: Sequence[bytes], settings: Settings, host: str | None, now: datetime
) -> None:
    digest = _client_hash(keys, host)
    recent = session.scalar(
        select(func.count())
        .select_from(SignupAttempt)
        .where(SignupAttempt.client_hash == digest, SignupAttempt.at > now - CLIENT_WINDOW)
    )
    if (recent or 0) >= settings.signup_client_hourly_limit:
        raise TooManySignups(f"more than {settings.signup_client_hourly_limit} sign-ups an hour")
    session.add(SignupAttempt(client_hash=digest, at=now))


def confirm_url(settings: Settings, keys: Sequence[bytes], token_id: str, now: datetime) -> str:
    expires = now + timedelta(days=settings.confirm_expiry_days)
    return links.confirm_url(settings.base_url, keys, token_id, expires)


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


def _pending(session: Session, address: str, name: str | None, now: datetime) -> Subscriber:
    """The address's row, created as pending if it is new (racing another request is fine)."""
    existing = addresses.find_by_address(session, address)
    if existing is not None:
        return existing
    subscriber = Subscriber(
        email=address,
        email_key=addresses.address_key(address),
        name=name,
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
    """Record a sign-up and say which mail to send, if the limits allow one.

    Raises addresses.AddressError for an unusable address or name, TooManySignups when this
    client is over its limit. The answer to the visitor must not depend on the result.
    """
    address = addresses.normalise_address(email)
    cleaned = addresses.clean_name(name)
    _count_client(session, keys, settings, client_host, now)
    text = consent.current(settings)
    consent.remember(session, text, now)
    subscriber = _pending(session, address, cleaned, now)
    already = subscriber.status is SubscriberStatus.SUBSCRIBED
    if not already:
        if subscriber.status is SubscriberStatus.PENDING and cleaned:
            subscriber.name = cleaned
        subscriber.requested_at = now
        subscriber.consent_version = text.version
        consent.log(
            session,
            subscriber.id,
            ConsentEventKind.REQUESTED,
            consent.Source.FORM,
            now,
            version=text.version,
            client_ip=consent.shorten_ip(client_host) if settings.consent_log_ip else None,
        )
    session.flush()
    if not _may_mail(session, subscriber, settings, now):
        log.info("sign-up for subscriber %s: a mail went out recently; none sent", subscriber.id)
        return None
    if already:
        url = links.unsubscribe_url(settings.base_url, keys, subscriber.token_id)
    else:
        url = confirm_url(settings, keys, subscriber.token_id, now)
    return Mail(subscriber.id, subscriber.email, subscriber.name, url, already)


def find_for_confirmation(
    session: Session, keys: Sequence[bytes], token: str, now: datetime
) -> Subscriber | None:
    """The subscriber a confirmation link is for; None if the link is bad, expired or stale."""
    token_id = links.read(keys, links.Purpose.CONFIRM, token, now)
    if token_id is None:
        return None
    return subscriptions.find_by_token_id(session, token_id)


def confirm(
    session: Session,
    keys: Sequence[bytes],
    subscriber: Subscriber,
    now: datetime,
    *,
    client_ip: str | None = None,
) -> bool:
    """The confirmation button: on the list from now on, with proof of consent."""
    if subscriber.status is SubscriberStatus.SUBSCRIBED:
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


# --- the mail -----------------------------------------------------------------------------


def build_mail(settings: Settings, mail: Mail, now: datetime) -> bytes:
    """The confirmation (or 'already on the list') mail."""
    return transactional.compose(
        settings,
        "confirm",
        to_email=mail.email,
        to_name=mail.name,
        now=now,
        greeting=greeting(mail.name),
        url=mail.url,
        already=mail.already_subscribed,
        expiry_days=f"{settings.confirm_expiry_days:g}",
        consent=consent.current(settings),
    )


def send_mail(settings: Settings, mail: Mail, now: datetime) -> bool:
    """Send it through the newsletter's own transport; a failure is logged, never raised."""
    try:
        data = build_mail(settings, mail, now)
        verdict = transactional.hand_over(settings, mail.email, data)
    except RenderError as exc:
        log.error("sign-up mail for subscriber %s not built: %s", mail.subscriber_id, exc)
        return False
    except RelayUnavailable as exc:
        log.warning("sign-up mail for subscriber %s not sent: %s", mail.subscriber_id, exc)
        return False
    if not verdict.accepted:
        log.warning(
            "sign-up mail for subscriber %s refused: %s %s",
            mail.subscriber_id,
            verdict.code,
            verdict.describe(),
        )
        return False
    log.info("sign-up mail sent to subscriber %s", mail.subscriber_id)
    return True
