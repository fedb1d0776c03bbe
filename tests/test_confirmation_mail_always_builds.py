"""A sign-up's mail always goes out: a name it will not build with is left out, logged once.

The names here are ones the door now refuses, stored before it did (or by a stranger's sign-up
of someone else's address): a reader must never be kept off the list by them.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from newsletter.readers import subscriptions
from newsletter.readers.confirmation_mail import Mail, send_mail
from newsletter.storage.models import Subscriber, SubscriberStatus
from tests.support.readers import link_in, sign_up
from tests.support.relays import body_of
from tests.support.servers import Site

# An encoded word that decodes to a line break: the To header cannot carry it.
BREAKING_NAME = "=?utf-8?q?Anna=0D=0ABcc:_x@evil.example?="


def store_name(factory: sessionmaker[Session], email: str, name: str) -> None:
    """Put a name on a row the way old data has it: past today's checks."""
    with factory() as session, session.begin():
        session.execute(update(Subscriber).where(Subscriber.email_key == email).values(name=name))


def ours(caplog: pytest.LogCaptureFixture) -> str:
    """What the newsletter logged (the test relay logs what it receives; that is not ours)."""
    return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("newsletter"))


def wait_for(caplog: pytest.LogCaptureFixture, text: str) -> None:
    deadline = time.monotonic() + 10
    while text not in ours(caplog) and time.monotonic() < deadline:
        time.sleep(0.02)


def test_a_mail_that_will_not_build_with_the_name_goes_without_it(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    mail = Mail(7, "anna@example.com", BREAKING_NAME, f"{site.url}/bevestig/x", False)
    with caplog.at_level(logging.INFO):
        assert send_mail(site.settings, mail, datetime.now(UTC))
    [received] = site.wait_for_mail(1)
    assert received.rcpt_tos == ["anna@example.com"]
    assert received.message["To"] == "anna@example.com"
    assert received.message["Bcc"] is None
    assert body_of(received.message, "plain").count("Hallo,") == 1
    warnings = [
        r
        for r in caplog.records
        if r.levelno >= logging.WARNING and r.name.startswith("newsletter")
    ]
    assert len(warnings) == 1, caplog.text
    assert "sent without it" in warnings[0].getMessage()
    assert "anna" not in ours(caplog).lower() and "evil" not in ours(caplog)


def test_a_name_left_by_someone_else_does_not_keep_the_owner_off_the_list(
    site: Site, factory: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    # A stranger's sign-up of Bram's address left a name that breaks mails.
    sign_up(site, "bram@example.com", "Iemand")
    site.wait_for_mail(1)
    store_name(factory, "bram@example.com", BREAKING_NAME)
    with factory() as session, session.begin():
        session.execute(update(Subscriber).values(confirm_sent_at=None, confirm_sends=0))
    # Bram signs up himself, without a name: his mail goes out and the name is his (none).
    with caplog.at_level(logging.WARNING):
        sign_up(site, "bram@example.com")
        mail = site.wait_for_mail(2)[1]
    assert mail.message["To"] == "bram@example.com"
    assert "Hallo," in body_of(mail.message, "plain")
    assert "Welkom" in httpx.post(link_in(mail, f"{site.url}/bevestig/")).text
    with factory() as session:
        bram = session.scalars(select(Subscriber)).one()
    assert bram.status is SubscriberStatus.SUBSCRIBED and bram.name is None


def test_a_reader_on_the_list_with_such_a_name_still_hears_they_are_in(
    site: Site, factory: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    with factory() as session, session.begin():
        subscriptions.add(session, "cor@example.com", "Cor", datetime.now(UTC), basis="test")
    store_name(factory, "cor@example.com", BREAKING_NAME)
    with caplog.at_level(logging.INFO):
        assert sign_up(site, "cor@example.com").status_code == 200
        [mail] = site.wait_for_mail(1)
        wait_for(caplog, "sign-up mail sent")
    assert mail.message["Subject"].startswith("Je staat al op de lijst")
    assert mail.message["To"] == "cor@example.com"
    assert ours(caplog).count("would not build with the name") == 1
    assert "cor@" not in ours(caplog)
