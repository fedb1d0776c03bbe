"""The sign-up's one mail: a confirmation link, or "you are on the list already".

It always goes out if the relay takes it: a mail that will not build with the reader's name is
built without it (logged once), so no name, whoever typed it, can block an address.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime

from newsletter.mail import transactional
from newsletter.mail.slots import greeting
from newsletter.mail.transport import RelayUnavailable
from newsletter.readers import consent
from newsletter.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Mail:
    """A mail to send after the sign-up is stored: a confirmation, or 'you are already in'."""

    subscriber_id: int
    email: str
    name: str | None
    url: str
    already_subscribed: bool


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


def _built(settings: Settings, mail: Mail, now: datetime) -> bytes | None:
    """The mail's bytes; without the name when it will not build with it; None if not at all."""
    try:
        return build_mail(settings, mail, now)
    except Exception as exc:  # any failure: the address must never be blocked by it
        first = type(exc).__name__
    if mail.name is None:
        log.error("sign-up mail for subscriber %s not built (%s)", mail.subscriber_id, first)
        return None
    try:
        data = build_mail(settings, replace(mail, name=None), now)
    except Exception as exc:
        log.error(
            "sign-up mail for subscriber %s not built, with or without the name (%s, %s)",
            mail.subscriber_id,
            first,
            type(exc).__name__,
        )
        return None
    log.warning(
        "sign-up mail for subscriber %s would not build with the name (%s); sent without it",
        mail.subscriber_id,
        first,
    )
    return data


def send_mail(settings: Settings, mail: Mail, now: datetime) -> bool:
    """Send it through the newsletter's own transport; a failure is logged once, never raised."""
    data = _built(settings, mail, now)
    if data is None:
        return False
    try:
        verdict = transactional.hand_over(settings, mail.email, data)
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
