"""Which note to the author is due when, and its words: plain functions of facts and a clock.

Four kinds, each keyed by what it is about, so it is noted once:

- dry (`dry:<first Sunday without a letter>`): that Sunday is within NEWSLETTER_REMIND_WEEKS
  weeks; told on a weekday between 09:00 and 18:00, or at once when fewer than three days are
  left.
- skipped (`skipped:<Sunday>`): the latest scheduled time went by (past the grace) without an
  edition, once the author had queued anything; nothing was queued, or it was missed.
- stopped (`stopped:<edition>`): the relay refused the letter (or was away) and the send stopped.
- report (`report:<edition>`): the edition is finished (told within a week of it).
- unbuildable (`unbuildable:<Sunday>`): the week's issue cannot be made into a message; nothing
  was sent and it stays queued.

The words are Dutch and live in `templates/notices/<kind>.txt.j2` (first line: the subject).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from newsletter.mail.rendering import dutch_date
from newsletter.mail.slots import environment
from newsletter.notices.record import Draft
from newsletter.settings import Settings

WORKDAY_HOURS = range(9, 18)
WELL_BEFORE = timedelta(days=3)
REPORT_WITHIN = timedelta(days=7)


def stamp(moment: datetime) -> str:
    """A moment in a key: UTC, to the minute, so one moment always makes one key."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


def _date(moment: datetime, settings: Settings) -> str:
    return dutch_date(moment.astimezone(settings.zone))


def render(kind: str, key: str, **values: Any) -> Draft:
    """The note's subject (the template's first line) and body."""
    text = environment().get_template(f"notices/{kind}.txt.j2").render(**values).strip("\n")
    subject, _, body = text.partition("\n")
    return Draft(key=key, kind=kind, subject=subject.strip(), body=body.strip("\n") + "\n")


def remind_now(now: datetime, first_dry: datetime, settings: Settings) -> bool:
    """Whether the queue-runs-dry reminder is due now, for the first Sunday without a letter."""
    if settings.remind_weeks == 0 or first_dry <= now:
        return False
    left = first_dry - now
    if left > timedelta(weeks=settings.remind_weeks):
        return False
    if left < WELL_BEFORE:
        return True  # late: better now than on the Sunday itself
    local = now.astimezone(settings.zone)
    return local.weekday() < 5 and local.hour in WORKDAY_HOURS


def dry(
    now: datetime, first_dry: datetime | None, last_planned: datetime | None, settings: Settings
) -> Draft | None:
    """The reminder that the queue runs dry, when it is due."""
    if first_dry is None or not remind_now(now, first_dry, settings):
        return None
    return render(
        "dry",
        f"dry:{stamp(first_dry)}",
        dry_date=_date(first_dry, settings),
        last_date=_date(last_planned, settings) if last_planned else "",
    )


@dataclass(frozen=True)
class Skip:
    """A scheduled time that went by without a letter, and why."""

    when: datetime
    nothing_queued: bool  # True: nothing was queued then; False: it was, but not sent in time


def skipped(skip: Skip | None, settings: Settings) -> Draft | None:
    if skip is None:
        return None
    local_iso = skip.when.astimezone(settings.zone).isoformat(timespec="minutes")
    return render(
        "skipped",
        f"skipped:{stamp(skip.when)}",
        date=_date(skip.when, settings),
        reason="nothing-queued" if skip.nothing_queued else "missed",
        send_anyway=f"newsletter send --now {local_iso}",
    )


def stopped(
    edition_id: int, scheduled_at: datetime, reason: str, waiting: int, settings: Settings
) -> Draft:
    """The send of an edition stopped because the relay refused it."""
    return render(
        "stopped",
        f"stopped:{edition_id}",
        date=_date(scheduled_at, settings),
        reason=" ".join(reason.split())[:300],
        waiting=waiting,
    )


def unbuildable(scheduled_at: datetime, reason: str, settings: Settings) -> Draft:
    """The week's letter could not be made; the author must fix its file."""
    return render(
        "unbuildable",
        f"unbuildable:{stamp(scheduled_at)}",
        date=_date(scheduled_at, settings),
        reason=" ".join(reason.split())[:500],
    )


@dataclass(frozen=True)
class Report:
    """What a finished edition reached, and how the list changed since the previous one."""

    edition_id: int
    scheduled_at: datetime
    finished_at: datetime
    subject: str
    reached: int
    failed: int
    bounced: int
    joined: int
    left: int


def report(facts: Report, now: datetime, settings: Settings) -> Draft | None:
    """The report after an edition is finished (not for editions finished long ago)."""
    if now - facts.finished_at > REPORT_WITHIN:
        return None
    return render(
        "report",
        f"report:{facts.edition_id}",
        date=_date(facts.scheduled_at, settings),
        subject=facts.subject,
        reached=facts.reached,
        failed=facts.failed,
        bounced=facts.bounced,
        joined=facts.joined,
        left=facts.left,
    )
