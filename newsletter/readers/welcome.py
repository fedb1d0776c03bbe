"""The welcome after confirming: one mail per reader, ever, unless NEWSLETTER_WELCOME is off.

The right to send it is claimed in the transaction that confirms (`welcomed_at` is set where it
was empty, so two clicks or two processes give one welcome); the mail goes out after the page
has answered, through the transactional sender, like the confirmation mail.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from newsletter import links
from newsletter.mail import transactional
from newsletter.mail.rendering import RenderError
from newsletter.mail.slots import greeting
from newsletter.mail.transport import RelayUnavailable
from newsletter.settings import Settings
from newsletter.storage.models import Subscriber, SubscriberStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Welcome:
    """A welcome to send: to whom, and the links it offers."""

    subscriber_id: int
    email: str
    name: str | None
    leave_url: str  # the reader's own page to leave or pause
    latest_title: str | None = None  # the latest letter online, if there is one
    latest_url: str | None = None
    archive_url: str | None = None
    next_letter: str | None = None  # when the first letter comes, as a Dutch date


def claim(
    session: Session,
    settings: Settings,
    keys: Sequence[bytes],
    subscriber: Subscriber,
    now: datetime,
) -> Welcome | None:
    """The welcome this reader is due, claimed once; None when welcomed before, or it is off."""
    if not settings.welcome or subscriber.status is not SubscriberStatus.SUBSCRIBED:
        return None
    claimed = session.execute(
        update(Subscriber)
        .where(Subscriber.id == subscriber.id, Subscriber.welcomed_at.is_(None))
        .values(welcomed_at=now)
        .execution_options(synchronize_session=False)
    )
    if not claimed.rowcount:  # type: ignore[attr-defined]
        return None
    leave = links.unsubscribe_url(settings.base_url, keys, subscriber.token_id)
    return Welcome(subscriber.id, subscriber.email, subscriber.name, leave)


def build_mail(settings: Settings, welcome: Welcome, now: datetime) -> bytes:
    """The welcome mail (templates/email/welcome.*)."""
    return transactional.compose(
        settings,
        "welcome",
        to_email=welcome.email,
        to_name=welcome.name,
        now=now,
        greeting=greeting(welcome.name),
        leave_url=welcome.leave_url,
        pause_url=f"{welcome.leave_url}?pauzeren",
        latest_title=welcome.latest_title or "",
        latest_url=welcome.latest_url or "",
        archive_url=welcome.archive_url or "",
        next_letter=welcome.next_letter or "",
        themes=either(settings.themes),
    )


def either(words: Sequence[str]) -> str:
    """'loslaten, vasthouden of zachtheid'."""
    return " of ".join([", ".join(words[:-1]), words[-1]]) if len(words) > 1 else "".join(words)


def send_mail(settings: Settings, welcome: Welcome, now: datetime) -> bool:
    """Send it; a failure is logged, never raised (the reader is on the list all the same)."""
    try:
        verdict = transactional.hand_over(
            settings, welcome.email, build_mail(settings, welcome, now)
        )
    except RenderError as exc:
        log.error("welcome for subscriber %s not built: %s", welcome.subscriber_id, exc)
        return False
    except RelayUnavailable as exc:
        log.warning("welcome for subscriber %s not sent: %s", welcome.subscriber_id, exc)
        return False
    if not verdict.accepted:
        log.warning(
            "welcome for subscriber %s refused: %s", welcome.subscriber_id, verdict.describe()
        )
        return False
    log.info("welcome sent to subscriber %s", welcome.subscriber_id)
    return True
