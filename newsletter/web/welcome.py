"""The welcome hook of the confirmation button: claimed with the confirmation, sent after it."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from sqlalchemy.orm import Session
from starlette.background import BackgroundTask
from starlette.responses import Response

from newsletter import links
from newsletter.publishing import archive
from newsletter.readers import welcome
from newsletter.readers.welcome import Welcome
from newsletter.storage.models import Subscriber
from newsletter.web.pages import Site

__all__ = ["Welcome", "claim", "send_after"]


def claim(session: Session, here: Site, subscriber: Subscriber, now: datetime) -> Welcome | None:
    """The reader's welcome, with the latest letter online, if it is due (in this transaction)."""
    due = welcome.claim(session, here.settings, here.keys, subscriber, now)
    if due is None:
        return None
    due = replace(due, next_letter=here.next_letter())
    latest = archive.latest(session, now) if here.settings.archive else None
    if latest is None:
        return due
    base = here.settings.base_url
    return replace(
        due,
        latest_title=latest.content.subject,
        latest_url=links.letter_url(base, latest.slug),
        archive_url=links.archive_url(base),
    )


def send_after(response: Response, here: Site, due: Welcome | None) -> Response:
    """Send the welcome once the page has answered: a slow relay never holds the page up."""
    if due is not None:
        response.background = BackgroundTask(welcome.send_mail, here.settings, due, here.now())
    return response
