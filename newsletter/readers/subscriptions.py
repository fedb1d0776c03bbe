"""Subscribers: adding, importing and leaving; addresses checked and unique whatever their case."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from newsletter.readers import consent, privacy
from newsletter.storage.models import (
    UNFINISHED,
    ConsentEventKind,
    Delivery,
    DeliveryStatus,
    Subscriber,
    SubscriberStatus,
)
from newsletter.tokens import new_token_id, sign

MAX_NAME = 100
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# What the log says when the operator adds or imports a reader without giving a basis.
NO_BASIS = "added by the operator; no basis given"
MAX_BASIS = 500
PAUSE_WEEKS = range(1, 27)


class AddressError(ValueError):
    """An address or name that cannot be used, with the reason."""


class AlreadySubscribed(ValueError):
    """The address is already on the list."""


class Suppressed(ValueError):
    """The address was erased on request: only its owner can put it back, by signing up."""


def normalise_address(email: str) -> str:
    """The address as it will be stored; raises AddressError saying why it is refused."""
    try:
        result = validate_email(email.strip(), check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise AddressError(f"{email.strip() or '(empty)'}: {exc}") from None
    return result.normalized


def clean_name(name: str | None) -> str | None:
    """A display name on one line, or None; names with control characters are refused."""
    if name is None:
        return None
    if _CONTROL.search(name.strip()):
        raise AddressError("the name holds control characters")
    name = " ".join(name.split())
    if len(name) > MAX_NAME:
        raise AddressError(f"the name is longer than {MAX_NAME} characters")
    return name or None


def address_key(email: str) -> str:
    return email.lower()


def find_by_address(session: Session, email: str) -> Subscriber | None:
    return session.scalars(
        select(Subscriber).where(Subscriber.email_key == address_key(email))
    ).one_or_none()


def clean_basis(basis: str | None) -> str:
    """The operator's basis for consent, on one line; NO_BASIS when none is given."""
    text = " ".join((basis or "").split())
    if len(text) > MAX_BASIS:
        raise AddressError(f"the consent basis is longer than {MAX_BASIS} characters")
    return text or NO_BASIS


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
        raise AlreadySubscribed(f"{address} is already on the list ({existing.status.value})")
    if keys and privacy.suppressed_since(session, keys, address) is not None:
        raise Suppressed(f"{address} was erased on request; only its owner can sign up again")
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


@dataclass
class ImportReport:
    added: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    problems: list[tuple[int, str]] = field(default_factory=list)
    suppressed: list[int] = field(default_factory=list)  # lines with an erased address


def _rows(text: str) -> Iterator[tuple[int, dict[str | None, str | list[str] | None]]]:
    sample = text[:4096]
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(io.StringIO(text), dialect=dialect)
    if reader.fieldnames is None or "email" not in [f.strip().lower() for f in reader.fieldnames]:
        raise AddressError("the first line must name the columns, with at least 'email'")
    reader.fieldnames = [f.strip().lower() for f in reader.fieldnames]
    for row in reader:
        yield reader.line_num, row


def import_csv(
    session: Session,
    path: Path,
    now: datetime,
    *,
    basis: str | None = None,
    keys: Sequence[bytes] = (),
) -> ImportReport:
    """Add every good row with the operator's basis; report each bad one by line and skip it.

    With `keys`, addresses on the suppression list are skipped and reported by line.
    """
    reason = clean_basis(basis)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AddressError(f"{path} is not UTF-8 text ({exc.reason})") from None
    report = ImportReport()
    seen: set[str] = set()
    try:
        for line, row in _rows(text):
            if None in row:
                report.problems.append((line, "has more fields than the header names"))
                continue
            email = row.get("email")
            name = row.get("name")
            if not isinstance(email, str) or not email.strip():
                report.problems.append((line, "no address in the email column"))
                continue
            try:
                address = normalise_address(email)
                cleaned = clean_name(name if isinstance(name, str) else None)
            except AddressError as exc:
                report.problems.append((line, str(exc)))
                continue
            if address_key(address) in seen:
                report.problems.append((line, f"{address} appears twice in the file"))
                continue
            seen.add(address_key(address))
            existing = find_by_address(session, address)
            if existing is not None:
                report.already.append(f"{address} ({existing.status.value})")
                continue
            if keys and privacy.suppressed_since(session, keys, address) is not None:
                report.suppressed.append(line)
                continue
            add(session, address, cleaned, now, basis=reason, source=consent.Source.IMPORT)
            report.added.append(address)
    except csv.Error as exc:
        raise AddressError(f"{path}: unreadable CSV: {exc}") from None
    return report


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
    session.execute(
        update(Delivery)
        .where(Delivery.subscriber_id == subscriber.id, Delivery.status.in_(UNFINISHED))
        .values(status=DeliveryStatus.SKIPPED, last_reply=why, finished_at=now)
        .execution_options(synchronize_session=False)
    )
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
    """Subscribed from now on, confirmed now, under this consent text (not an operator's basis)."""
    subscriber.status = SubscriberStatus.SUBSCRIBED
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


def find_by_token_id(session: Session, token_id: str) -> Subscriber | None:
    return session.scalars(select(Subscriber).where(Subscriber.token_id == token_id)).one_or_none()


UNSUBSCRIBE = "unsubscribe"


def unsubscribe_url(base_url: str, keys: list[bytes], token_id: str) -> str:
    return f"{base_url}/afmelden/{sign(keys, UNSUBSCRIBE, token_id)}"
