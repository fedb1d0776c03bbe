"""Consent moves only forward: a confirmation link confirms its own open sign-up once, never again.

Over real HTTP, on SQLite and PostgreSQL: a used link, replayed after the reader left, shows a
calm page and changes nothing; only the reader's own new sign-up (or the way back behind their
unsubscribe link) puts them on the list again.
"""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from newsletter import links
from newsletter.readers import signup
from newsletter.settings import Settings
from newsletter.storage.db import downgrade, make_engine, upgrade
from newsletter.storage.models import ConsentEvent, Subscriber, SubscriberStatus
from newsletter.tokens import new_token_id
from tests.support.readers import link_in, sign_up
from tests.support.relays import body_of
from tests.support.servers import Site

USED = "Deze link is al gebruikt"


def reader(factory: sessionmaker[Session], email: str) -> Subscriber:
    with factory() as session:
        return session.scalars(select(Subscriber).where(Subscriber.email_key == email)).one()


def log_of(factory: sessionmaker[Session], email: str) -> list[tuple[str, str]]:
    with factory() as session:
        return [
            (event.event.value, event.source)
            for event in session.scalars(
                select(ConsentEvent)
                .join(Subscriber, Subscriber.id == ConsentEvent.subscriber_id)
                .where(Subscriber.email_key == email)
                .order_by(ConsentEvent.id)
            )
        ]


def unsubscribe_link(site: Site, mail_count: int) -> str:
    """The unsubscribe link of the `mail_count`-th mail ('you are on the list already')."""
    mail = site.wait_for_mail(mail_count)[-1]
    match = re.search(
        re.escape(site.url) + r"/afmelden/[A-Za-z0-9_\-]+", body_of(mail.message, "plain")
    )
    assert match, body_of(mail.message, "plain")
    return match.group(0)


def confirmation_link(site: Site, mail_count: int) -> str:
    """The link in the last of the first `mail_count` mails (a confirmation mail)."""
    return link_in(site.wait_for_mail(mail_count)[-1], f"{site.url}/bevestig/")


def test_a_used_link_replayed_after_leaving_changes_nothing(
    site: Site, factory: sessionmaker[Session]
) -> None:
    sign_up(site, "anna@example.com", "Anna")
    link = confirmation_link(site, 1)
    assert "Welkom" in httpx.post(link).text
    anna = reader(factory, "anna@example.com")
    assert anna.status is SubscriberStatus.SUBSCRIBED and anna.confirm_nonce is None
    token = links.unsubscribe_url(site.url, site.settings.secret_keys(), anna.token_id)
    assert httpx.post(token, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert reader(factory, "anna@example.com").status is SubscriberStatus.UNSUBSCRIBED

    for method in ("GET", "HEAD", "POST", "POST"):
        response = httpx.request(method, link)
        assert response.status_code == 200, method
        if method != "HEAD":
            assert USED in response.text and "Ja, ik meld me aan" not in response.text
    assert reader(factory, "anna@example.com").status is SubscriberStatus.UNSUBSCRIBED
    assert log_of(factory, "anna@example.com") == [
        ("requested", "form"),
        ("confirmed", "confirm-link"),
        ("unsubscribed", "one-click"),
    ]


def test_only_a_new_sign_up_of_their_own_brings_a_reader_back(
    site: Site, factory: sessionmaker[Session]
) -> None:
    site.cli("subscribers", "add", "bram@example.com", "--consent", "asked in person")
    site.cli("subscribers", "unsubscribe", "bram@example.com")
    sign_up(site, "bram@example.com")
    first = confirmation_link(site, 1)
    assert reader(factory, "bram@example.com").status is SubscriberStatus.UNSUBSCRIBED
    assert "Welkom" in httpx.post(first).text
    site.cli("subscribers", "unsubscribe", "bram@example.com")
    assert USED in httpx.post(first).text
    assert reader(factory, "bram@example.com").status is SubscriberStatus.UNSUBSCRIBED

    # A second sign-up of their own is a new sign-up with a link of its own (mail 2 was the
    # welcome after the first confirmation).
    sign_up(site, "bram@example.com")
    second = confirmation_link(site, 3)
    assert second != first
    assert USED in httpx.post(first).text
    assert "Welkom" in httpx.post(second).text
    assert [event for event, _ in log_of(factory, "bram@example.com")] == [
        "imported",
        "unsubscribed",
        "requested",
        "confirmed",
        "unsubscribed",
        "requested",
        "confirmed",
    ]  # fmt: skip - one event per line would hide the story


def test_coming_back_closes_an_open_sign_up(site: Site, factory: sessionmaker[Session]) -> None:
    site.cli("subscribers", "add", "cor@example.com", "--consent", "test")
    site.cli("subscribers", "unsubscribe", "cor@example.com")
    sign_up(site, "cor@example.com")
    link = confirmation_link(site, 1)
    cor = reader(factory, "cor@example.com")
    keys = site.settings.secret_keys()
    token = links.unsubscribe_url(site.url, keys, cor.token_id).rsplit("/", 1)[1]
    assert httpx.post(f"{site.url}/terugkomen/{token}").status_code == 200
    assert reader(factory, "cor@example.com").confirm_nonce is None
    httpx.post(f"{site.url}/afmelden/{token}")
    assert USED in httpx.post(link).text
    assert reader(factory, "cor@example.com").status is SubscriberStatus.UNSUBSCRIBED


def test_every_mail_of_one_open_sign_up_carries_a_working_link_until_one_is_used(
    settings: Settings, factory: sessionmaker[Session], site: Site
) -> None:
    keys = site.settings.secret_keys()
    start = datetime.now(UTC) - timedelta(hours=1)
    urls = []
    for minutes in (0, 20):
        with factory() as session, session.begin():
            mail = signup.request(
                session, site.settings, keys, email="dirk@example.com", name=None,
                client_host="192.0.2.7", now=start + timedelta(minutes=minutes),
            )  # fmt: skip
        assert mail is not None
        urls.append(mail.url.replace(site.settings.base_url, site.url))
    assert urls[0] != urls[1]
    assert "Ja, ik meld me aan" in httpx.get(urls[0]).text
    assert "Welkom" in httpx.post(urls[1]).text
    assert USED in httpx.post(urls[0]).text
    assert [event for event, _ in log_of(factory, "dirk@example.com")] == [
        "requested",
        "requested",
        "confirmed",
    ]  # fmt: skip - the story reads best on one line


def test_pressing_the_button_many_times_at_once_confirms_once(
    site: Site, factory: sessionmaker[Session]
) -> None:
    sign_up(site, "eva@example.com")
    link = confirmation_link(site, 1)
    start = threading.Barrier(12)
    answers: list[int] = []

    def press() -> None:
        start.wait()
        answers.append(httpx.post(link, timeout=30).status_code)

    threads = [threading.Thread(target=press) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [200] * 12
    assert log_of(factory, "eva@example.com") == [
        ("requested", "form"),
        ("confirmed", "confirm-link"),
    ]


def test_links_sent_before_the_upgrade_still_confirm_their_sign_up(settings: Settings) -> None:
    engine = make_engine(settings.database_url)
    try:
        upgrade(engine, "0003")
        token_ids = {"pending": new_token_id(), "unsubscribed": new_token_id()}
        with engine.begin() as connection:
            for status, token_id in token_ids.items():
                connection.execute(
                    text(
                        "INSERT INTO subscribers (email, email_key, status, token_id, created_at,"
                        " requested_at, consent_version) VALUES (:email, :email, :status, :token,"
                        " :now, :now, 'abc')"
                    ),
                    {"email": f"{status}@example.com", "status": status, "token": token_id,
                     "now": datetime(2026, 11, 20)},
                )  # fmt: skip
        upgrade(engine)
        keys = settings.secret_keys()
        now = datetime.now(UTC)
        with sessionmaker(engine)() as session, session.begin():
            for status, token_id in token_ids.items():
                token = links.confirm_url("", keys, token_id, now + timedelta(days=1))
                token = token.rsplit("/", 1)[1]
                if status == "pending":
                    found = signup.find_for_confirmation(session, keys, token, now)
                    assert signup.confirm(session, keys, found, now)
                else:  # a link from before the reader left never brings them back
                    with pytest.raises(signup.LinkUsed):
                        signup.find_for_confirmation(session, keys, token, now)
        downgrade(engine, "0003")
        upgrade(engine)
    finally:
        engine.dispose()
