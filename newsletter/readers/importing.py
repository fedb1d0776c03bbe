"""`subscribers import`: a CSV list in, each reader as the file says, never more on the list.

A plain list (an `email` column, perhaps `name`) adds subscribers on the operator's basis. A file
with a `status` column (an export) keeps what it says: a row that is not `subscribed` is refused
unless `keep_status` is given, and then imported as it is (left, bounced, unconfirmed), with its
dates, its pause and its proof of consent. A row the file says left never becomes a subscriber.
Addresses already on the list are left alone; erased ones are skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from newsletter.i18n import _
from newsletter.readers import consent, csv_format, privacy, subscriptions
from newsletter.readers.addresses import (
    AddressError,
    address_key,
    clean_basis,
    clean_name,
    find_by_address,
    for_people,
    normalise_address,
)
from newsletter.storage.models import ConsentEventKind, Subscriber, SubscriberStatus
from newsletter.tokens import new_token_id

MOMENTS = (
    "created_at",
    "subscribed_at",
    "unsubscribed_at",
    "bounced_at",
    "requested_at",
    "confirmed_at",
    "paused_until",
)
MAX_ADDRESS = 320
PROOF = {"source": 32, "consent_version": 16, "consent_basis": 500}


@dataclass
class ImportReport:
    added: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    problems: list[tuple[int, str]] = field(default_factory=list)
    suppressed: list[int] = field(default_factory=list)  # lines with an erased address
    kept: dict[str, int] = field(default_factory=dict)  # statuses other than subscribed, counted


class RowError(ValueError):
    """One row cannot be imported; the message says why."""


def _moment(cells: dict[str, str], column: str) -> datetime | None:
    text = cells.get(column, "").strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise RowError(
            _("{column}: {value!r} is not a time like 2026-11-29T07:00:00Z").format(
                column=column, value=text[:40]
            )
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _status(cells: dict[str, str], has_status: bool, keep_status: bool) -> SubscriberStatus:
    status = SubscriberStatus.SUBSCRIBED
    if has_status:
        text = cells.get("status", "").strip().lower()
        try:
            status = SubscriberStatus(text)
        except ValueError:
            choices = ", ".join(s.value for s in SubscriberStatus)
            raise RowError(
                _("status: {value!r} is not one of {choices}").format(
                    value=text[:20], choices=choices
                )
            ) from None
    left = any(cells.get(c, "").strip() for c in ("unsubscribed_at", "bounced_at"))
    if status is SubscriberStatus.SUBSCRIBED and left:
        raise RowError(_("the file says this reader left (unsubscribed_at or bounced_at is set)"))
    if status is not SubscriberStatus.SUBSCRIBED and not keep_status:
        raise RowError(
            _(
                "status {status}: not on the list in the file, so not imported "
                "(--keep-status imports them as they are)"
            ).format(status=status.value)
        )
    return status


def _values(
    cells: dict[str, str], status: SubscriberStatus, reason: str, now: datetime
) -> dict[str, Any]:
    """The row's columns as the subscriber row will hold them."""
    values: dict[str, Any] = {column: _moment(cells, column) for column in MOMENTS}
    for column, limit in PROOF.items():
        text = " ".join(cells.get(column, "").split())
        if len(text) > limit:
            raise RowError(
                _("{column}: longer than {count} characters").format(column=column, count=limit)
            )
        values[column] = text or None
    values["created_at"] = values["created_at"] or now
    if status is SubscriberStatus.SUBSCRIBED:
        values["subscribed_at"] = values["subscribed_at"] or now
        values["requested_at"] = values["requested_at"] or now
        values["confirmed_at"] = values["confirmed_at"] or now
        values["source"] = values["source"] or consent.Source.IMPORT
        if not (values["consent_version"] or values["consent_basis"]):
            values["consent_basis"] = reason
    return values


def _add(
    session: Session,
    address: str,
    name: str | None,
    status: SubscriberStatus,
    values: dict[str, Any],
    detail: str,
    now: datetime,
) -> None:
    subscriber = Subscriber(
        email=address,
        email_key=address_key(address),
        name=name,
        status=status,
        token_id=new_token_id(),
        **values,
    )
    session.add(subscriber)
    session.flush()
    consent.log(
        session, subscriber.id, ConsentEventKind.IMPORTED, consent.Source.IMPORT, now, detail=detail
    )


@dataclass
class _Import:
    """One import under way: where rows go, what has been seen, what the operator asked."""

    session: Session
    now: datetime
    reason: str
    keys: Sequence[bytes]
    keep_status: bool
    report: ImportReport = field(default_factory=ImportReport)
    seen: set[str] = field(default_factory=set)
    has_status: bool = False

    def who(self, cells: dict[str, str]) -> tuple[str, str | None]:
        """The row's address and name, checked; RowError when either is unusable."""
        email = cells.get("email", "").strip()
        if not email:
            raise RowError(_("no address in the email column"))
        if len(email) > MAX_ADDRESS:
            raise RowError(
                _("the address is longer than {count} characters").format(count=MAX_ADDRESS)
            )
        try:
            address = normalise_address(email)
            name = clean_name(cells.get("name") or None)
        except AddressError as exc:
            raise RowError(str(exc)) from None
        if address_key(address) in self.seen:
            raise RowError(_("{address} appears twice in the file").format(address=address))
        self.seen.add(address_key(address))
        return address, name

    def row(self, row: csv_format.Row) -> None:
        """Import one row, or leave it (already there, erased); RowError says why not."""
        if row.problem is not None:
            raise RowError(row.problem)
        address, name = self.who(row.cells)
        existing = find_by_address(self.session, address)
        if existing is not None:
            state = _(subscriptions.STATUS_WORDS[existing.status])
            self.report.already.append(f"{for_people(address)} ({state})")
            return
        if self.keys and privacy.suppressed_since(self.session, self.keys, address) is not None:
            self.report.suppressed.append(row.line)
            return
        status = _status(row.cells, self.has_status, self.keep_status)
        values = _values(row.cells, status, self.reason, self.now)
        detail = f"{self.reason} (status in the file: {status.value})"
        kept_detail = detail if self.has_status else self.reason
        _add(self.session, address, name, status, values, kept_detail, self.now)
        self.report.added.append(address)
        if status is not SubscriberStatus.SUBSCRIBED:
            self.report.kept[status.value] = self.report.kept.get(status.value, 0) + 1


def import_csv(
    session: Session,
    path: Path,
    now: datetime,
    *,
    basis: str | None = None,
    keys: Sequence[bytes] = (),
    keep_status: bool = False,
    encoding: str = "utf-8",
) -> ImportReport:
    """Import every good row; report each bad one by line and skip it.

    Raises csv_format.CsvFileError when the file as a whole cannot be read as a list (no address
    column, or not in `encoding`: the message says how to read it). With
    `keys`, addresses on the suppression list are skipped and reported by line.
    """
    run = _Import(session, now, clean_basis(basis), keys, keep_status)
    for row in csv_format.read(path, encoding):
        run.has_status = "status" in row.cells  # every row has every column of the header
        try:
            run.row(row)
        except RowError as exc:
            run.report.problems.append((row.line, str(exc)))
    return run.report
