"""Leaving, pausing and coming back behind the footer link, over real HTTP."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.links import Purpose
from newsletter.publishing.editions import SettleOutcome
from newsletter.readers import subscriptions
from newsletter.settings import Settings
from newsletter.storage.models import (
    ConsentEvent,
    ConsentEventKind,
    Delivery,
    Subscriber,
    SubscriberStatus,
)
from newsletter.tokens import new_token_id, sign
from tests.support.cli import Cli
from tests.support.issue_files import write_issue
from tests.support.relays import SmtpServer, body_of
from tests.support.servers import LiveServer

SCANNER = {"User-Agent": "Mozilla/5.0 (compatible; SafeLinks)"}


def add(factory: sessionmaker[Session], email: str = "anna@example.com") -> Subscriber:
    with factory() as session, session.begin():
        return subscriptions.add(session, email, "Anna", datetime.now(UTC), basis="test")


def token(settings: Settings, subscriber: Subscriber) -> str:
    return sign(settings.secret_keys(), Purpose.UNSUBSCRIBE, subscriber.token_id)


def fresh(factory: sessionmaker[Session], subscriber: Subscriber) -> Subscriber:
    with factory() as session:
        return session.get_one(Subscriber, subscriber.id)


def log_of(factory: sessionmaker[Session], subscriber: Subscriber) -> list[ConsentEvent]:
    with factory() as session:
        return list(
            session.scalars(
                select(ConsentEvent)
                .where(ConsentEvent.subscriber_id == subscriber.id)
                .order_by(ConsentEvent.id)
            )
        )


def test_the_footer_page_offers_leaving_and_pausing_and_a_get_changes_nothing(
    live_app: LiveServer, settings: Settings, factory: sessionmaker[Session]
) -> None:
    reader = add(factory)
    t = token(settings, reader)
    page = httpx.get(f"{live_app.url}/afmelden/{t}", headers=SCANNER)
    assert page.status_code == 200
    assert f'action="/afmelden/{t}"' in page.text
    assert 'name="via" value="pagina"' in page.text
    assert f'action="/pauzeren/{t}"' in page.text and 'name="weken"' in page.text
    assert "submit()" not in page.text and "<script" not in page.text
    # A scanner opening every address it can think of changes nothing either.
    for path in ("afmelden", "pauzeren", "hervatten", "terugkomen"):
        for method in ("GET", "HEAD"):
            response = httpx.request(method, f"{live_app.url}/{path}/{t}", headers=SCANNER)
            assert response.status_code == 200, (method, path)
    after = fresh(factory, reader)
    assert after.status is SubscriberStatus.SUBSCRIBED and after.paused_until is None
    assert [e.event for e in log_of(factory, reader)] == [ConsentEventKind.IMPORTED]


@pytest.mark.parametrize(
    ("body", "source"),
    [
        ({"data": {"List-Unsubscribe": "One-Click", "via": "pagina"}}, "footer-link"),
        ({"content": b"List-Unsubscribe=One-Click",
          "headers": {"Content-Type": "application/x-www-form-urlencoded"}}, "one-click"),
        ({"files": {"List-Unsubscribe": (None, "One-Click")}}, "one-click"),
        ({}, "one-click"),
        ({"content": b"--x\r\nbroken", "headers": {"Content-Type": "multipart/form-data"}},
         "one-click"),
        ({"content": b"\xff\xfe\x00", "headers": {"Content-Type": "text/plain"}}, "one-click"),
        ({"content": b"via=pagina&" + b"a=1&" * 40,
          "headers": {"Content-Type": "application/x-www-form-urlencoded"}}, "one-click"),
    ],
    ids=["footer-page", "urlencoded", "multipart", "empty", "malformed", "binary", "many-fields"],
)  # fmt: skip
def test_every_unsubscribe_post_acts_and_the_log_says_how(
    live_app: LiveServer,
    settings: Settings,
    factory: sessionmaker[Session],
    body: dict[str, Any],
    source: str,
) -> None:
    reader = add(factory)
    response = httpx.post(f"{live_app.url}/afmelden/{token(settings, reader)}", **body)
    assert response.status_code == 200
    assert "Toch weer ontvangen" in response.text
    assert fresh(factory, reader).status is SubscriberStatus.UNSUBSCRIBED
    last = log_of(factory, reader)[-1]
    assert last.event is ConsentEventKind.UNSUBSCRIBED and last.source == source
    assert last.client_ip is None


def test_coming_back_with_the_same_token_is_logged(
    live_app: LiveServer, settings: Settings, factory: sessionmaker[Session]
) -> None:
    reader = add(factory)
    t = token(settings, reader)
    left = httpx.post(f"{live_app.url}/afmelden/{t}")
    assert f'action="/terugkomen/{t}"' in left.text
    # The page after leaving, opened again later, still offers the way back.
    assert "Toch weer ontvangen" in httpx.get(f"{live_app.url}/afmelden/{t}").text
    back = httpx.post(f"{live_app.url}/terugkomen/{t}")
    assert back.status_code == 200 and "weer bent" in back.text
    after = fresh(factory, reader)
    assert after.status is SubscriberStatus.SUBSCRIBED and after.unsubscribed_at is None
    assert after.source == "come-back-link" and after.consent_version is not None
    assert after.consent_basis is None
    assert [(e.event, e.source) for e in log_of(factory, reader)] == [
        (ConsentEventKind.IMPORTED, "cli"),
        (ConsentEventKind.UNSUBSCRIBED, "one-click"),
        (ConsentEventKind.RESUBSCRIBED, "come-back-link"),
    ]
    # Twice is harmless.
    assert httpx.post(f"{live_app.url}/terugkomen/{t}").status_code == 200
    assert len(log_of(factory, reader)) == 3


def test_a_bounced_reader_cannot_come_back_with_the_link(
    live_app: LiveServer, settings: Settings, factory: sessionmaker[Session]
) -> None:
    reader = add(factory)
    with factory() as session, session.begin():
        session.get_one(Subscriber, reader.id).status = SubscriberStatus.BOUNCED
    back = httpx.post(f"{live_app.url}/terugkomen/{token(settings, reader)}")
    assert back.status_code == 200 and "/aanmelden" in back.text
    assert fresh(factory, reader).status is SubscriberStatus.BOUNCED


def test_pausing_and_resuming(
    live_app: LiveServer, settings: Settings, factory: sessionmaker[Session]
) -> None:
    reader = add(factory)
    t = token(settings, reader)
    before = datetime.now(UTC)
    response = httpx.post(f"{live_app.url}/pauzeren/{t}", data={"weken": "4"})
    assert response.status_code == 200 and "Even pauze" in response.text
    until = fresh(factory, reader).paused_until
    assert until is not None
    assert before + timedelta(weeks=4) <= until <= datetime.now(UTC) + timedelta(weeks=4)
    page = httpx.get(f"{live_app.url}/afmelden/{t}")
    assert "Je pauzeert tot" in page.text and f'action="/hervatten/{t}"' in page.text
    resumed = httpx.post(f"{live_app.url}/hervatten/{t}")
    assert resumed.status_code == 200 and "De pauze is voorbij" in resumed.text
    assert fresh(factory, reader).paused_until is None
    assert [(e.event, e.detail) for e in log_of(factory, reader)][1:] == [
        (ConsentEventKind.PAUSED, f"4 weeks, until {until.date().isoformat()}"),
        (ConsentEventKind.RESUMED, None),
    ]
    assert fresh(factory, reader).status is SubscriberStatus.SUBSCRIBED


@pytest.mark.parametrize("weeks", [None, "", "abc", "0", "27", "-1", "4.5", "9" * 50])
def test_a_bad_pause_is_refused(
    live_app: LiveServer, settings: Settings, factory: sessionmaker[Session], weeks: str | None
) -> None:
    reader = add(factory)
    data = {} if weeks is None else {"weken": weeks}
    response = httpx.post(f"{live_app.url}/pauzeren/{token(settings, reader)}", data=data)
    assert response.status_code == 400 and '<html lang="nl"' in response.text
    assert fresh(factory, reader).paused_until is None


def test_an_unsubscribed_reader_has_nothing_to_pause(
    live_app: LiveServer, settings: Settings, factory: sessionmaker[Session]
) -> None:
    reader = add(factory)
    t = token(settings, reader)
    httpx.post(f"{live_app.url}/afmelden/{t}")
    response = httpx.post(f"{live_app.url}/pauzeren/{t}", data={"weken": "4"})
    assert response.status_code == 200 and "niets te pauzeren" in response.text
    assert fresh(factory, reader).paused_until is None


@pytest.mark.parametrize("path", ["afmelden", "pauzeren", "hervatten", "terugkomen"])
def test_bad_tokens_get_404_everywhere(
    live_app: LiveServer, settings: Settings, factory: sessionmaker[Session], path: str
) -> None:
    reader = add(factory)
    t = token(settings, reader)
    keys = settings.secret_keys()
    bad = [
        t[:10] + ("A" if t[10] != "A" else "B") + t[11:],
        t[:-1] + ("A" if t[-1] != "A" else "B"),
        sign(keys, Purpose.UNSUBSCRIBE, new_token_id()),
        sign(keys, "confirm", reader.token_id),
        sign([b"a-key-nobody-here-has-ever-used"], Purpose.UNSUBSCRIBE, reader.token_id),
        "x",
    ]
    for value in bad:
        for method in ("GET", "POST"):
            response = httpx.request(method, f"{live_app.url}/{path}/{value}", data={"weken": "4"})
            assert response.status_code == 404, (method, value)
    after = fresh(factory, reader)
    assert after.status is SubscriberStatus.SUBSCRIBED and after.paused_until is None


def test_oversized_posts_are_refused_before_anything_changes(
    live_app: LiveServer, settings: Settings, factory: sessionmaker[Session]
) -> None:
    reader = add(factory)
    t = token(settings, reader)
    for path in ("afmelden", "pauzeren", "terugkomen"):
        response = httpx.post(f"{live_app.url}/{path}/{t}", content=b"x" * 17_000)
        assert response.status_code == 413
    assert fresh(factory, reader).status is SubscriberStatus.SUBSCRIBED


def test_paused_readers_are_skipped_until_their_date(
    cli: Cli, tmp_path: Path, smtp_server: SmtpServer, factory: sessionmaker[Session]
) -> None:
    folder = tmp_path / "issues"
    paths = [write_issue(folder, f"brief-{n}", theme=theme) for n, theme in
             enumerate(["loslaten", "vasthouden", "zachtheid"])]  # fmt: skip
    cli("issues", "queue", *map(str, paths))
    cli("subscribers", "add", "anna@example.com", "--consent", "test")
    cli("subscribers", "add", "bram@example.com", "--consent", "test")
    with factory() as session, session.begin():
        bram = session.scalars(
            select(Subscriber).where(Subscriber.email_key == "bram@example.com")
        ).one()
        bram.paused_until = datetime(2026, 12, 10, tzinfo=UTC)
    env = {"NEWSLETTER_SMTP_URL": smtp_server.url}
    cli("send", "--now", "2026-11-29T07:00", env=env)
    cli("send", "--now", "2026-12-06T07:00", env=env)
    cli("send", "--now", "2026-12-13T07:00", env=env)
    received = [m.rcpt_tos[0] for m in smtp_server.received]
    assert received == ["anna@example.com", "anna@example.com", "anna@example.com",
                        "bram@example.com"]  # fmt: skip


def test_a_pause_skips_the_rest_of_a_send_in_progress(
    live_app: LiveServer, settings: Settings, factory: sessionmaker[Session], cli: Cli,
    tmp_path: Path,
) -> None:  # fmt: skip
    cli("issues", "queue", str(write_issue(tmp_path / "issues", "een")))
    reader = add(factory)
    from newsletter.publishing.editions import settle

    settled = settle(factory, settings, datetime.fromisoformat("2026-11-29T07:00:00+01:00"))
    assert settled.outcome is SettleOutcome.CREATED
    httpx.post(f"{live_app.url}/pauzeren/{token(settings, reader)}", data={"weken": "2"})
    with factory() as session:
        delivery = session.scalars(select(Delivery)).one()
        assert delivery.status.value == "skipped" and delivery.last_reply == "paused"


def test_the_letter_links_to_the_page(
    cli: Cli, tmp_path: Path, smtp_server: SmtpServer, live_app: LiveServer
) -> None:
    cli("issues", "queue", str(write_issue(tmp_path / "issues", "een")))
    cli("subscribers", "add", "anna@example.com", "--consent", "test")
    cli("send", "--now", "2026-11-29T07:00", NEWSLETTER_SMTP_URL=smtp_server.url)
    [mail] = smtp_server.received
    text = body_of(mail.message, "plain")
    match = re.fullmatch(r"<(.+)>", mail.message["List-Unsubscribe"])
    assert match
    url = match.group(1)
    assert "pauzeren" in text.lower() and url in text
    page = httpx.get(live_app.url + url.removeprefix("https://nieuws.example.nl"))
    assert "Pauzeer" in page.text
