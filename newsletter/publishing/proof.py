"""A test mail: one issue file exactly as a reader will get it on its planned Sunday, to the author.

The letter is rendered for the scheduled time the queue plans it for (the time it is pinned to,
the time the rotation gives it, or, when it was sent, the time it went out), with the greeting and
footer a reader gets, and the subject prefixed `[Proef]`. Its unsubscribe and pause links carry a
token of their own purpose (`links.Purpose.PROOF`): they open a page that says it was a test and
change nothing. Nothing is stored: no edition, no delivery, and the queue is left as it is.
"""

from __future__ import annotations

import enum
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter import links
from newsletter.mail import transactional
from newsletter.mail.composing import EditionMessage, Recipient
from newsletter.mail.rendering import IssueContent, render_edition
from newsletter.mail.transport import Verdict
from newsletter.publishing import planning
from newsletter.publishing.control import sent_on
from newsletter.publishing.issue_files import IssueDraft
from newsletter.settings import Settings
from newsletter.storage.models import Issue, IssueStatus
from newsletter.tokens import new_token_id

PREFIX = "[Proef]"
MAX_WEEKS = 520


class When(enum.StrEnum):
    """How the test mail's date was found."""

    PINNED = "pinned"  # the issue is pinned to that time
    PLANNED = "planned"  # the rotation gives it that time (as queued, or as if queued now)
    SENT = "sent"  # it went out then
    NEXT = "next"  # it does not come up in the plan: the next scheduled time


@dataclass(frozen=True)
class Planned:
    send_at: datetime
    how: When
    queued: Issue | None  # the snapshot in the queue under this name, if any


def _horizon(session: Session, settings: Settings, now: datetime) -> int:
    """Enough scheduled times to place every queued issue and reach the last pin."""
    queued = session.scalar(
        select(func.count()).select_from(Issue).where(Issue.status == IssueStatus.QUEUED)
    )
    last_pin = session.scalar(select(func.max(Issue.pinned_for)))
    weeks = (queued or 0) + 2
    if last_pin is not None and last_pin > now:
        weeks += sum(1 for t in planning.next_times(settings, now, MAX_WEEKS) if t <= last_pin)
    return min(weeks, MAX_WEEKS)


def planned_time(session: Session, settings: Settings, draft: IssueDraft, now: datetime) -> Planned:
    """The scheduled time this file would go out at; nothing is changed."""
    issue = session.scalars(select(Issue).where(Issue.slug == draft.slug)).one_or_none()
    if issue is not None and issue.status is IssueStatus.SENT:
        sent = sent_on(session, issue)
        if sent is not None:
            return Planned(sent, When.SENT, issue)
    extra: Sequence[Issue] = ()
    if issue is None:  # planned as if it were queued now, last in its theme
        extra = [Issue(slug=draft.slug, theme=draft.theme, queued_at=now, pinned_for=None)]
    for week in planning.plan(
        session, settings, now, _horizon(session, settings, now), extra=extra
    ):
        if week.issue is not None and week.issue.slug == draft.slug:
            return Planned(week.when, When.PINNED if week.pinned else When.PLANNED, issue)
    coming = planning.next_times(settings, now, 1)
    return Planned(coming[0] if coming else now, When.NEXT, issue)


def build(
    settings: Settings,
    draft: IssueDraft,
    *,
    to: str,
    name: str | None,
    send_at: datetime,
    keys: Sequence[bytes],
    now: datetime,
) -> bytes:
    """The letter's bytes as a reader gets them, to `to`, subject prefixed with [Proef]."""
    seed = secrets.token_hex(8)
    rendered = render_edition(
        IssueContent(draft.subject, draft.theme, draft.question, draft.preheader, draft.body),
        settings,
        seed=seed,
        send_at=send_at,
        letter_url=links.letter_url(settings.base_url, draft.slug) if settings.archive else None,
    )
    message = EditionMessage(
        settings,
        subject=f"{PREFIX} {rendered.subject}",
        html=rendered.html,
        text=rendered.text,
        seed=seed,
        archive_url=links.archive_url(settings.base_url) if settings.archive else None,
    )
    url = links.proof_url(settings.base_url, keys, new_token_id())
    return message.build(Recipient(0, to, name, url), now)


def send(settings: Settings, to: str, data: bytes) -> Verdict:
    """Hand the test mail over (relay or outbox); raises RelayUnavailable when it is away."""
    return transactional.hand_over(settings, to, data)
