"""One-click unsubscribe over real HTTP: GET changes nothing, POST acts at once (RFC 8058)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from newsletter.links import Purpose
from newsletter.readers import subscriptions
from newsletter.settings import Settings
from newsletter.storage.models import Subscriber, SubscriberStatus
from newsletter.tokens import new_token_id, sign
from tests.support.readers import path_for
from tests.support.servers import LiveServer


def make_subscriber(factory: sessionmaker[Session], email: str = "anna@example.com") -> Subscriber:
    with factory() as session, session.begin():
        return subscriptions.add(session, email, "Anna", datetime.now(UTC))


def status_of(factory: sessionmaker[Session], subscriber: Subscriber) -> SubscriberStatus:
    with factory() as session:
        return session.get_one(Subscriber, subscriber.id).status


def test_get_and_head_show_a_form_and_change_nothing(
    live_app: LiveServer, settings: Settings, factory: sessionmaker[Session]
) -> None:
    subscriber = make_subscriber(factory)
    url = live_app.url + path_for(settings, subscriber)
    scanner = {"User-Agent": "Mozilla/5.0 (compatible; SafeLinks scanner)"}
    response = httpx.get(url, headers=scanner)
    assert response.status_code == 200
    assert '<html lang="nl"' in response.text
    assert 'method="post"' in response.text.lower()
    assert "submit()" not in response.text
    assert httpx.head(url).status_code == 200
    assert status_of(factory, subscriber) is SubscriberStatus.SUBSCRIBED


@pytest.mark.parametrize(
    "body",
    [
        {"content": b"List-Unsubscribe=One-Click",
         "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
        {"files": {"List-Unsubscribe": (None, "One-Click")}},
        {},
    ],
    ids=["urlencoded", "multipart", "empty"],
)  # fmt: skip
def test_post_unsubscribes_at_once_without_cookies_or_redirect(
    live_app: LiveServer, settings: Settings, factory: sessionmaker[Session], body: dict[str, Any]
) -> None:
    subscriber = make_subscriber(factory)
    url = live_app.url + path_for(settings, subscriber)
    with httpx.Client() as fresh:
        response = fresh.post(url, **body)
    assert response.status_code == 200
    assert "location" not in response.headers
    assert "afgemeld" in response.text.lower()
    assert status_of(factory, subscriber) is SubscriberStatus.UNSUBSCRIBED
    with factory() as session:
        found = session.get_one(Subscriber, subscriber.id)
        assert found.unsubscribed_at is not None
        first = found.unsubscribed_at
    # Repeating it is harmless.
    assert httpx.post(url).status_code == 200
    with factory() as session:
        assert session.get_one(Subscriber, subscriber.id).unsubscribed_at == first


def test_a_tampered_token_gets_404_and_changes_nothing(
    live_app: LiveServer, settings: Settings, factory: sessionmaker[Session]
) -> None:
    subscriber = make_subscriber(factory)
    path = path_for(settings, subscriber)
    # Change a character in the middle: the last one carries unused bits in base64.
    middle = len(path) - 20
    tampered = path[:middle] + ("A" if path[middle] != "A" else "B") + path[middle + 1 :]
    for method in ("GET", "POST"):
        response = httpx.request(method, live_app.url + tampered)
        assert response.status_code == 404
        assert "werkt niet" in response.text
    assert httpx.post(live_app.url + "/afmelden/nonsense!").status_code == 404
    assert status_of(factory, subscriber) is SubscriberStatus.SUBSCRIBED


def test_a_validly_signed_token_for_nobody_gets_404(
    live_app: LiveServer, settings: Settings, factory: sessionmaker[Session]
) -> None:
    make_subscriber(factory)
    token = sign(settings.secret_keys(), Purpose.UNSUBSCRIBE, new_token_id())
    assert httpx.post(f"{live_app.url}/afmelden/{token}").status_code == 404


def test_the_token_reveals_neither_address_nor_row_id(
    settings: Settings, factory: sessionmaker[Session]
) -> None:
    import base64

    subscriber = make_subscriber(factory, "zeldzaam-adres@example.com")
    token = path_for(settings, subscriber).rsplit("/", 1)[1]
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert "zeldzaam" not in token and b"zeldzaam" not in raw
    assert len(raw) == 32  # 128 random bits, then a 128-bit MAC
    assert raw[:16] == bytes.fromhex(subscriber.token_id)  # the random id, not the row id


def test_every_page_sends_security_headers(
    live_app: LiveServer, settings: Settings, factory: sessionmaker[Session]
) -> None:
    subscriber = make_subscriber(factory)
    response = httpx.get(live_app.url + path_for(settings, subscriber))
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert httpx.get(live_app.url + "/healthz").text == "ok"
