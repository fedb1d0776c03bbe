"""The scheduler's notes to the author: find what is due, note it once, mail it (or log it).

`tick` runs every hour (and after the weekly job): the queue running dry, a skipped Sunday, a
report for each finished edition; `relay_stopped` when a send stops because the relay refuses,
`unbuildable` when the week's issue cannot be made into a message.
With NEWSLETTER_AUTHOR_EMAIL set a note is mailed through the transactional sender; a mail the
relay does not take is tried again by later ticks for a day. Unset, the same lines go to the log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from newsletter.mail import transactional
from newsletter.mail.rendering import RenderError
from newsletter.mail.transport import RelayUnavailable
from newsletter.notices import due, facts, record
from newsletter.publishing import planning
from newsletter.settings import Settings
from newsletter.storage.db import transaction

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Noted:
    """One note this run made: what it was, and whether it reached her (or the log)."""

    key: str
    subject: str
    delivered: bool


def due_drafts(session: Session, settings: Settings, now: datetime) -> list[record.Draft]:
    """Every note that is due now (those noted before are dropped when claiming)."""
    first_dry, last_planned = facts.queue_outlook(session, settings, now)
    found = [
        due.dry(now, first_dry, last_planned, settings),
        due.skipped(facts.last_skip(session, settings, now), settings),
        *(due.report(r, now, settings) for r in facts.finished_reports(session, now)),
    ]
    return [draft for draft in found if draft is not None]


def paragraphs(body: str) -> list[dict[str, str]]:
    """The body's paragraphs for the HTML part: words, and commands (lines indented by two)."""
    result = []
    for block in body.strip().split("\n\n"):
        lines = block.split("\n")
        words = " ".join(line for line in lines if not line.startswith("  "))
        code = "\n".join(line.strip() for line in lines if line.startswith("  "))
        result.append({"text": words, "code": code})
    return result


def _mail(settings: Settings, draft: record.Draft, now: datetime) -> str | None:
    """Mail one note to the author; None when the relay took it, else why not."""
    assert settings.author_email is not None
    author = settings.author_name or settings.sender.display_name or ""
    try:
        data = transactional.compose(
            settings,
            "notice",
            to_email=settings.author_email,
            to_name=author or None,
            now=now,
            subject=draft.subject,
            body=draft.body.strip(),
            paragraphs=paragraphs(draft.body),
        )
        verdict = transactional.hand_over(settings, settings.author_email, data)
    except (RenderError, RelayUnavailable) as exc:
        return str(exc)
    return None if verdict.accepted else verdict.describe()


def _deliver(
    factory: sessionmaker[Session],
    settings: Settings,
    notice_id: int,
    draft: record.Draft,
    now: datetime,
) -> bool:  # fmt: skip - five arguments read best on two lines
    if settings.author_email is None:
        log.warning("note for the author: %s. %s", draft.subject, " ".join(draft.body.split()))
        with transaction(factory) as session:
            record.mark_sent(session, notice_id, now)
        return True
    problem = _mail(settings, draft, now)
    with transaction(factory) as session:
        if problem is None:
            record.mark_sent(session, notice_id, now)
        else:
            record.mark_failed(session, notice_id, problem)
    if problem is None:
        log.info("note to the author sent: %s", draft.subject)
    else:
        log.warning(
            "note to the author not sent (%s): %s; tried again later", problem, draft.subject
        )
    return problem is None


def note(
    factory: sessionmaker[Session], settings: Settings, draft: record.Draft, now: datetime
) -> Noted | None:
    """Note one thing, once: claim it, then mail or log it. None when noted before."""
    with transaction(factory) as session:
        notice = record.claim(session, draft, settings.author_email, now)
        if notice is None:
            return None
        session.flush()
        notice_id = notice.id
    return Noted(draft.key, draft.subject, _deliver(factory, settings, notice_id, draft, now))


def tick(factory: sessionmaker[Session], settings: Settings, now: datetime) -> list[Noted]:
    """Note whatever is due now, and try again the mails to her that did not go out."""
    with factory() as session:
        drafts = due_drafts(session, settings, now)
        retry = [
            (n.id, record.Draft(n.key, n.kind, n.subject, n.body))
            for n in record.unsent(session, now)
            if settings.author_email is not None
        ]
    noted = [n for n in (note(factory, settings, draft, now) for draft in drafts) if n]
    for notice_id, draft in retry:
        if draft.key not in {n.key for n in noted}:
            delivered = _deliver(factory, settings, notice_id, draft, now)
            noted.append(Noted(draft.key, draft.subject, delivered))
    return noted


def relay_stopped(
    factory: sessionmaker[Session], settings: Settings, now: datetime, reason: str
) -> Noted | None:
    """The send stopped because the relay refused or could not be reached: tell her, once
    per edition."""
    with factory() as session:
        sending = facts.sending_edition(session)
    if sending is None:
        return None
    edition_id, scheduled_at, waiting = sending
    return note(
        factory, settings, due.stopped(edition_id, scheduled_at, reason, waiting, settings), now
    )


def unbuildable(
    factory: sessionmaker[Session], settings: Settings, now: datetime, reason: str
) -> Noted | None:
    """The week's issue cannot be made into a message: tell her, once for that Sunday."""
    when = planning.latest_time(settings, now)
    if when is None:
        return None
    return note(factory, settings, due.unbuildable(when, reason, settings), now)
