"""What comes back, acted on like a postmaster: bounces mark readers bounced, complaints
unsubscribe them, and nothing else changes anything.

A report counts only when it names one of our deliveries beyond doubt: by the VERP tag of the
address it was sent to (MAC checked), or by a keyed Message-ID of ours that it quotes. An address
in the body alone is never enough; a report naming two deliveries is ambiguous and ignored.

| report | acted on |
|---|---|
| DSN `failed` 5.1.x or 5.2.1; an MTA's words for a gone address | reader bounced (`dsn`) |
| DSN `delayed`, 4.x.x, 5.2.2, 5.7.x, other 5.x.x | counted; the soft limit in a row: bounced |
| ARF `Feedback-Type: abuse` | reader unsubscribed (`complaint`) |
| `delivered`/`relayed`, other feedback, auto-replies, the rest | ignored, logged |
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from newsletter.config_values import parse_imap_url
from newsletter.i18n import _
from newsletter.mail import imap, reports, verp
from newsletter.mail.reports import Kind, RecipientStatus, Report, Severity
from newsletter.readers import consent, subscriptions
from newsletter.settings import Settings
from newsletter.storage import ledger_reports
from newsletter.storage.db import transaction
from newsletter.storage.ledger_reports import Reported, ReportKind
from newsletter.storage.models import DeliveryStatus, Subscriber

log = logging.getLogger(__name__)

HANDLED_FOLDER = "newsletter-handled"
NOT_SENT = (DeliveryStatus.PENDING, DeliveryStatus.SKIPPED)


class Action(enum.StrEnum):
    BOUNCED = "bounced"  # the reader is marked bounced (hard, or the soft limit reached)
    COUNTED = "counted"  # a soft bounce, counted
    UNSUBSCRIBED = "unsubscribed"  # a complaint
    NOTED = "noted"  # about one of our deliveries, nothing to do (delivered, already off)
    IGNORED = "ignored"  # not ours, forged, ambiguous, an auto-reply or not a report


@dataclass(frozen=True)
class Handled:
    action: Action
    why: str
    delivery_id: int | None = None

    @property
    def recognised(self) -> bool:
        """It was about one of our deliveries (so an IMAP fetch moves it away)."""
        return self.delivery_id is not None


def _delivery_ids(settings: Settings, keys: Sequence[bytes], report: Report) -> dict[int, str]:
    """The deliveries the report names, each with the edition seed its Message-ID gave ('')."""
    found: dict[int, str] = {}
    if settings.bounce_address:
        for address in (*report.addressed_to, *report.return_paths):
            tag = verp.tag_of_address(address, settings.bounce_address)
            delivery_id = verp.read_tag(keys, tag) if tag else None
            if delivery_id is not None:
                found.setdefault(delivery_id, "")
    for value in report.message_ids:
        parsed = verp.read_message_id(keys, value)
        if parsed is not None:
            found[parsed[1]] = parsed[0]
    return found


def match(
    session: Session, settings: Settings, keys: Sequence[bytes], report: Report
) -> tuple[Reported | None, str]:
    """The one delivery the report names, or None and why not."""
    named = _delivery_ids(settings, keys, report)
    if not named:
        return None, _("no tag or Message-ID of ours (not about a letter, or forged)")
    if len(named) > 1:
        return None, _("ambiguous: names {count} deliveries").format(count=len(named))
    ((delivery_id, seed),) = named.items()
    reported = ledger_reports.find(session, delivery_id)
    if reported is None:
        return None, _("names a delivery that is not in the ledger (erased, or another database)")
    if seed and seed != reported.edition_seed:
        return None, _("its Message-ID belongs to another database")
    if reported.status in NOT_SENT:
        return None, _("names a delivery that was never sent ({status})").format(
            status=reported.status.value
        )
    return reported, ""


def _recipient(report: Report, email: str) -> RecipientStatus | None:
    """The status about the delivery's address; a lone status when the report names another
    address (forwarding rewrote it); the most severe when there are several."""
    own = [r for r in report.recipients if email.lower() in (r.recipient, r.original_recipient)]
    candidates = own or (list(report.recipients) if len(report.recipients) == 1 else [])
    order = {Severity.HARD: 0, Severity.SOFT: 1, Severity.NONE: 2}
    return min(candidates, key=lambda r: order[r.severity], default=None)


def _complaint(session: Session, report: Report, reported: Reported, now: datetime) -> Handled:
    if report.feedback_type != "abuse":
        kind = report.feedback_type or "none"
        said = _("feedback type {kind}: not a complaint").format(kind=kind)
        return Handled(Action.NOTED, said, reported.delivery_id)
    ledger_reports.note(
        session, reported.delivery_id, ReportKind.COMPLAINT, "abuse", report.describe(), now
    )
    subscriber = session.get_one(Subscriber, reported.subscriber_id)
    changed = subscriptions.unsubscribe(session, subscriber, now, source=consent.Source.COMPLAINT)
    action = Action.UNSUBSCRIBED if changed else Action.NOTED
    said = _("complaint about {email}").format(email=reported.email)
    return Handled(action, said, reported.delivery_id)


def _status_report(
    session: Session, settings: Settings, report: Report, reported: Reported, now: datetime
) -> Handled:
    status = _recipient(report, reported.email)
    delivery, reader = reported.delivery_id, [reported.subscriber_id]
    if status is None:
        return Handled(Action.NOTED, _("the report gives no status for this delivery"), delivery)
    severity = status.severity
    if severity is Severity.NONE:
        said = _("{action}: nothing to do").format(action=status.action)
        return Handled(Action.NOTED, said, delivery)
    kind = ReportKind.HARD if severity is Severity.HARD else ReportKind.SOFT
    ledger_reports.note(session, delivery, kind, status.status, status.describe(), now)
    detail = f"{reported.email}: {status.describe()}"
    if severity is Severity.HARD:
        subscriptions.mark_bounced(session, reader, now, source=consent.Source.DSN, detail=detail)
        return Handled(Action.BOUNCED, detail, delivery)
    limit = settings.soft_bounce_limit
    streak = ledger_reports.soft_streak(
        session, reported.subscriber_id, reported.scheduled_at, limit
    )
    if streak >= limit:
        why = _("{count} soft bounces in a row; the last: {status}").format(
            count=limit, status=status.describe()
        )
        subscriptions.mark_bounced(session, reader, now, source=consent.Source.DSN, detail=why)
        return Handled(Action.BOUNCED, f"{reported.email}: {why}", delivery)
    counted = _("{streak} of {limit} in a row").format(streak=streak, limit=limit)
    return Handled(Action.COUNTED, f"{detail} ({counted})", delivery)


def _not_a_report(report: Report) -> Handled | None:
    if report.kind is Kind.AUTO_REPLY:
        said = _("an auto-reply, not a report")
        return Handled(Action.IGNORED, f"{said} ({report.describe()})")
    if report.kind is Kind.OTHER:
        return Handled(Action.IGNORED, f"{_('not a report')} ({report.describe()})")
    return None


def handle(
    session: Session, settings: Settings, keys: Sequence[bytes], report: Report, now: datetime
) -> Handled:
    """Act on one report, in the caller's transaction."""
    ignored = _not_a_report(report)
    if ignored is not None:
        return ignored
    reported, why = match(session, settings, keys, report)
    if reported is None:
        return Handled(Action.IGNORED, f"{why} ({report.describe()})")
    if report.kind is Kind.COMPLAINT:
        return _complaint(session, report, reported, now)
    return _status_report(session, settings, report, reported, now)


def ingest(
    factory: sessionmaker[Session], settings: Settings, data: bytes, now: datetime
) -> Handled:
    """Read one message and act on it in a transaction of its own; logs what it did.

    Database errors propagate (SQLAlchemy's): the message could not be handled now.
    """
    report = reports.parse(data)
    handled = _not_a_report(report)  # no database needed to ignore these
    if handled is None:
        keys = settings.secret_keys()
        with transaction(factory) as session:
            handled = handle(session, settings, keys, report, now)
    log.info("%s: %s", handled.action.value, handled.why)
    return handled


@dataclass
class Fetched:
    """What one IMAP fetch did: messages moved (per action) and left untouched."""

    moved: dict[Action, int]
    left: int = 0


def fetch(factory: sessionmaker[Session], settings: Settings, now: datetime) -> Fetched:
    """Read NEWSLETTER_BOUNCE_IMAP_URL's folder; move what was about our letters to
    `newsletter-handled`, leave everything else untouched. Raises MailboxUnavailable, and
    SQLAlchemy's errors when the database is down (the message stays where it was)."""
    if settings.bounce_imap_url is None:
        raise imap.MailboxUnavailable("NEWSLETTER_BOUNCE_IMAP_URL is not set")
    config = parse_imap_url(settings.bounce_imap_url.get_secret_value().strip())
    result = Fetched({action: 0 for action in Action})
    with imap.Mailbox(config, timeout=settings.smtp_timeout) as mailbox:
        for uid, data in mailbox.messages():
            handled = ingest(factory, settings, data, now)
            if handled.recognised:
                mailbox.move(uid, HANDLED_FOLDER)
                result.moved[handled.action] += 1
            else:
                result.left += 1
    return result
