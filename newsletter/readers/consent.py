"""The consent record: the consent text and its versions, the append-only log, shortened IPs."""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from sqlalchemy import ColumnElement, Insert, func, insert, literal, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.mail.slots import environment, house_context
from newsletter.settings import Settings
from newsletter.storage.models import (
    ConsentEvent,
    ConsentEventKind,
    ConsentText,
    Subscriber,
)

TEMPLATE = "consent.txt.j2"


class Source:
    """How an event came about: the `source` column of the consent log."""

    FORM = "form"  # the sign-up form (/aanmelden)
    CONFIRM_LINK = "confirm-link"  # the button behind the link in the confirmation mail
    ONE_CLICK = "one-click"  # the mail client's unsubscribe button (RFC 8058 POST)
    FOOTER_LINK = "footer-link"  # the page behind the link at the bottom of each letter
    COME_BACK = "come-back-link"  # "toch weer ontvangen" on the page after leaving
    PREFERENCES = "preferences"  # pausing or resuming on that same page
    CLI = "cli"  # `newsletter subscribers …`
    IMPORT = "import"  # `newsletter subscribers import`
    RELAY = "relay"  # the relay refused the address for good
    DSN = "dsn"  # a delivery status notification (or an MTA's bounce) said the address is gone
    COMPLAINT = "complaint"  # the reader marked a letter as spam (an ARF report came back)
    MIGRATION = "migration"  # on the list before consent was recorded


@dataclass(frozen=True)
class Consent:
    """One version of the consent text, as the reader sees it."""

    version: str
    text: str

    @property
    def paragraphs(self) -> list[str]:
        return [" ".join(block.split()) for block in self.text.split("\n\n") if block.strip()]


@lru_cache(maxsize=8)
def _render(list_name: str, sender_name: str, sender_email: str, log_ip: bool) -> Consent:
    text = (
        environment()
        .get_template(TEMPLATE)
        .render(
            list_name=list_name, sender_name=sender_name, sender_email=sender_email, log_ip=log_ip
        )
        .strip()
    )
    text = "\n\n".join(" ".join(block.split()) for block in text.split("\n\n") if block.strip())
    return Consent(hashlib.sha256(text.encode()).hexdigest()[:12], text)


def current(settings: Settings) -> Consent:
    """The consent text this installation shows now, with its version (a hash of the text)."""
    house = house_context(settings)
    return _render(
        house["list_name"], house["sender_name"], house["sender_email"], settings.consent_log_ip
    )


def remember(session: Session, consent: Consent, now: datetime) -> None:
    """Keep this version's text in the database the first time it is used."""
    if session.get(ConsentText, consent.version) is not None:
        return
    try:
        with session.begin_nested():
            session.add(ConsentText(version=consent.version, text=consent.text, first_used_at=now))
    except IntegrityError:
        pass  # another process stored the same version a moment ago


def log(
    session: Session,
    subscriber_id: int | None,
    event: ConsentEventKind,
    source: str,
    now: datetime,
    *,
    version: str | None = None,
    detail: str | None = None,
    client_ip: str | None = None,
) -> None:
    """Add one event to the consent log."""
    session.add(
        ConsentEvent(
            subscriber_id=subscriber_id,
            event=event,
            at=now,
            source=source,
            consent_version=version,
            detail=detail[:500] if detail else None,
            client_ip=client_ip,
        )
    )


def log_for(
    event: ConsentEventKind,
    source: str,
    now: datetime,
    where: ColumnElement[bool],
    *,
    detail: str | None = None,
) -> Insert:
    """One set-based INSERT … SELECT: the same event for every subscriber matching `where`."""
    return insert(ConsentEvent).from_select(
        ["subscriber_id", "event", "at", "source", "detail"],
        select(
            Subscriber.id,
            literal(event.value),
            literal(now, ConsentEvent.at.type),
            literal(source),
            literal(detail, ConsentEvent.detail.type),
        ).where(where),
    )


def events_of(session: Session, subscriber_ids: Sequence[int]) -> list[ConsentEvent]:
    """The log of these subscribers, oldest first."""
    if not subscriber_ids:
        return []
    return list(
        session.scalars(
            select(ConsentEvent)
            .where(ConsentEvent.subscriber_id.in_(list(subscriber_ids)))
            .order_by(ConsentEvent.subscriber_id, ConsentEvent.id)
        )
    )


def latest_reasons(session: Session, subscriber_ids: Sequence[int]) -> dict[int, str]:
    """Why each of these readers left the list: the source and detail of their latest bounce or
    unsubscribe in the log, e.g. 'dsn: 5.1.1 user unknown' or 'complaint'."""
    leaving = [ConsentEventKind.BOUNCED, ConsentEventKind.UNSUBSCRIBED]
    reasons: dict[int, str] = {}
    for start in range(0, len(subscriber_ids), 1000):  # within every database's bind limit
        chunk = list(subscriber_ids[start : start + 1000])
        latest = (
            select(func.max(ConsentEvent.id))
            .where(ConsentEvent.subscriber_id.in_(chunk), ConsentEvent.event.in_(leaving))
            .group_by(ConsentEvent.subscriber_id)
        )
        rows = session.execute(
            select(ConsentEvent.subscriber_id, ConsentEvent.source, ConsentEvent.detail).where(
                ConsentEvent.id.in_(latest.scalar_subquery())
            )
        ).all()
        for sid, source, detail in rows:
            if sid is not None:
                reasons[sid] = f"{source}: {detail}" if detail else source
    return reasons


def shorten_ip(host: str | None) -> str | None:
    """The client's network, not its address: IPv4 to its /24, IPv6 to its /48."""
    if not host:
        return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))
