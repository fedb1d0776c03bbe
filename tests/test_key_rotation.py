"""Rotating NEWSLETTER_SECRET_KEY: every link and form signed with an older key keeps working."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from newsletter.links import Purpose
from newsletter.readers import addresses, signup, subscriptions
from newsletter.storage.models import Subscriber, SubscriberStatus
from newsletter.tokens import new_token_id, sign, verify
from newsletter.web.guards import CSRF_COOKIE
from tests.support.databases import SECRET
from tests.support.relays import SmtpServer
from tests.support.servers import Site, start_site

NEW_KEY = "the-new-secret-key-after-rotation"
OLD = [SECRET.encode()]


@pytest.fixture
def rotated(env: dict[str, str], engine: Engine, smtp_server: SmtpServer) -> Iterator[Site]:
    """The site after a rotation: a new key, the one the tests signed with kept as an old key."""
    site = start_site(
        env, engine, smtp_server,
        NEWSLETTER_SECRET_KEY=NEW_KEY, NEWSLETTER_OLD_SECRET_KEYS=f"{SECRET}, older-key-0123456789",
    )  # fmt: skip
    try:
        yield site
    finally:
        site.live.stop()


def add(factory: sessionmaker[Session], email: str) -> Subscriber:
    with factory() as session, session.begin():
        return subscriptions.add(session, email, None, datetime.now(UTC), basis="test")


def status(factory: sessionmaker[Session], subscriber: Subscriber) -> Subscriber:
    with factory() as session:
        return session.get_one(Subscriber, subscriber.id)


def test_links_in_letters_sent_before_the_rotation_still_work(
    rotated: Site, factory: sessionmaker[Session]
) -> None:
    reader = add(factory, "anna@example.com")
    token = sign(OLD, Purpose.UNSUBSCRIBE, reader.token_id)
    assert httpx.get(f"{rotated.url}/afmelden/{token}").status_code == 200
    assert httpx.post(f"{rotated.url}/pauzeren/{token}", data={"weken": "2"}).status_code == 200
    assert status(factory, reader).paused_until is not None
    assert httpx.post(f"{rotated.url}/hervatten/{token}").status_code == 200
    assert httpx.post(f"{rotated.url}/afmelden/{token}").status_code == 200
    assert status(factory, reader).status is SubscriberStatus.UNSUBSCRIBED
    assert httpx.post(f"{rotated.url}/terugkomen/{token}").status_code == 200
    assert status(factory, reader).status is SubscriberStatus.SUBSCRIBED


def test_a_confirmation_link_sent_before_the_rotation_still_works(
    rotated: Site, factory: sessionmaker[Session]
) -> None:
    with factory() as session, session.begin():
        mail = signup.request(
            session, rotated.settings, OLD, email="bram@example.com", name=None,
            client_host="192.0.2.1", now=datetime.now(UTC),
        )  # fmt: skip
    assert mail is not None
    url = mail.url.replace(rotated.settings.base_url, rotated.url)
    assert httpx.get(url).status_code == 200
    assert httpx.post(url).status_code == 200
    with factory() as session:
        found = addresses.find_by_address(session, "bram@example.com")
    assert found is not None and found.status is SubscriberStatus.SUBSCRIBED


def test_a_form_opened_before_the_rotation_can_still_be_sent(rotated: Site) -> None:
    nonce = new_token_id()
    token = sign(OLD, Purpose.CSRF, nonce, datetime.now(UTC) + timedelta(hours=1))
    with httpx.Client(cookies={CSRF_COOKIE: nonce}) as browser:
        response = browser.post(
            f"{rotated.url}/aanmelden", data={"email": "cor@example.org", "csrf_token": token}
        )
    assert response.status_code == 200 and "Kijk in je mailbox" in response.text


def test_new_links_are_signed_with_the_new_key(
    rotated: Site, factory: sessionmaker[Session]
) -> None:
    with factory() as session, session.begin():
        mail = signup.request(
            session, rotated.settings, rotated.settings.secret_keys(), email="d@example.com",
            name=None, client_host="192.0.2.2", now=datetime.now(UTC),
        )  # fmt: skip
    assert mail is not None
    token = mail.url.rsplit("/", 1)[1]
    assert verify([NEW_KEY.encode()], Purpose.CONFIRM, token)
    with pytest.raises(ValueError):
        verify(OLD, Purpose.CONFIRM, token)
