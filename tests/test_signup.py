"""Sign-up with double opt-in over real HTTP: one answer for everyone, a mail, a button."""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.links import Purpose
from newsletter.readers import signup
from newsletter.scheduler import PURGE_JOB_ID, Jobs, build_scheduler
from newsletter.storage.models import (
    ConsentEvent,
    ConsentEventKind,
    ConsentText,
    Subscriber,
    SubscriberStatus,
)
from newsletter.tokens import new_token_id, sign
from newsletter.web.guards import CSRF_COOKIE
from tests.support.readers import form_token, link_in, sign_up
from tests.support.relays import SmtpServer, body_of, free_port
from tests.support.servers import Site, start_site

SCANNER = {"User-Agent": "Mozilla/5.0 (compatible; Barracuda link protection)"}


def subscriber(factory: sessionmaker[Session], email: str) -> Subscriber | None:
    with factory() as session:
        return session.scalars(
            select(Subscriber).where(Subscriber.email_key == email.lower())
        ).one_or_none()


def events(factory: sessionmaker[Session], subscriber_id: int) -> list[ConsentEvent]:
    with factory() as session:
        return list(
            session.scalars(
                select(ConsentEvent)
                .where(ConsentEvent.subscriber_id == subscriber_id)
                .order_by(ConsentEvent.id)
            )
        )


def confirm(site: Site, url: str) -> httpx.Response:
    return httpx.post(url)


# --- the form -------------------------------------------------------------------------------


def test_the_form_shows_the_whole_consent_text_and_sets_a_strict_cookie(site: Site) -> None:
    response = httpx.get(f"{site.url}/aanmelden")
    assert response.status_code == 200
    page = response.text
    assert '<html lang="nl"' in page
    assert 'method="post"' in page and 'action="/aanmelden"' in page
    from newsletter.readers import consent

    text = consent.current(site.settings)
    for paragraph in text.paragraphs:
        assert html.escape(paragraph, quote=False) in page.replace("&#39;", "'")
    assert f"Versie {text.version}" in page
    assert 'name="website"' in page and 'tabindex="-1"' in page  # the honeypot
    assert "<script" not in page and " style=" not in page
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{CSRF_COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/aanmelden" in cookie
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "form-action 'self'" in response.headers["content-security-policy"]


def test_the_embeddable_snippet_prefills_the_form_safely(site: Site) -> None:
    response = httpx.get(
        f"{site.url}/aanmelden", params={"email": "anna@example.com", "name": '<b>"Anna"</b>'}
    )
    assert 'value="anna@example.com"' in response.text
    assert "<b>" not in response.text and "&lt;b&gt;&#34;Anna&#34;&lt;/b&gt;" in response.text


# --- one answer for everyone ----------------------------------------------------------------


def test_a_new_address_gets_the_same_page_and_a_confirmation_mail(
    site: Site, factory: sessionmaker[Session]
) -> None:
    response = sign_up(site, "Anna@Example.com", "Anna")
    assert response.status_code == 200
    assert "Kijk in je mailbox" in response.text and "Anna@Example.com" in response.text
    [mail] = site.wait_for_mail(1)
    message = mail.message
    assert mail.rcpt_tos == ["Anna@example.com"]
    assert message["Subject"] == "Bevestig je aanmelding voor Wekelijks moment van rust"
    assert message["To"] == "Anna <Anna@example.com>"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["List-Unsubscribe"] is None
    assert message.get_content_type() == "multipart/alternative"
    assert all(byte < 128 for byte in mail.data), "7-bit clean"
    url = link_in(mail, f"{site.url}/bevestig/")
    assert url in body_of(message, "html")
    assert "Hallo Anna," in body_of(message, "plain")
    found = subscriber(factory, "anna@example.com")
    assert found is not None and found.status is SubscriberStatus.PENDING
    assert found.confirmed_at is None and found.requested_at is not None
    [requested] = events(factory, found.id)
    assert requested.event is ConsentEventKind.REQUESTED and requested.source == "form"
    assert requested.consent_version == found.consent_version
    assert requested.client_ip is None  # off unless the operator turns it on
    with factory() as session:
        assert session.get(ConsentText, found.consent_version) is not None


def test_the_answer_is_the_same_whoever_owns_the_address(
    site: Site, factory: sessionmaker[Session]
) -> None:
    site.cli("subscribers", "add", "lid@example.com", "--consent", "test")
    site.cli("subscribers", "add", "weg@example.com", "--consent", "test")
    site.cli("subscribers", "unsubscribe", "weg@example.com")
    sign_up(site, "wacht@example.com")  # pending from here on
    site.wait_for_mail(1)
    pages = {}
    for email in ("nieuw@example.com", "wacht@example.com", "lid@example.com", "weg@example.com"):
        response = sign_up(site, email)
        pages[email] = (response.status_code, response.text.replace(email, "ADRES"))
    assert len(set(pages.values())) == 1, "the page must not tell who is on the list"
    # The member hears they are in already; the rest get a link to confirm.
    mails = {m.rcpt_tos[0]: m.message for m in site.wait_for_mail(4)[1:]}
    assert set(mails) == {"nieuw@example.com", "lid@example.com", "weg@example.com"}
    assert mails["lid@example.com"]["Subject"].startswith("Je staat al op de lijst")
    assert "/afmelden/" in body_of(mails["lid@example.com"], "plain")
    lid = subscriber(factory, "lid@example.com")
    assert lid is not None and lid.status is SubscriberStatus.SUBSCRIBED


def test_one_address_gets_one_mail_per_interval(site: Site, factory: sessionmaker[Session]) -> None:
    for _ in range(3):
        assert sign_up(site, "anna@example.com").status_code == 200
    site.wait_for_mail(1)
    with factory() as session:
        found = session.scalars(select(Subscriber)).one()
        assert found.confirm_sends == 1
    assert len(site.smtp.received) == 1


def test_waits_between_unanswered_mails_grow(factory: sessionmaker[Session], site: Site) -> None:
    keys = site.settings.secret_keys()
    start = datetime(2026, 11, 23, 12, tzinfo=UTC)
    sent = []
    for minutes in (0, 10, 16, 30, 47, 75, 110):
        with factory() as session, session.begin():
            mail = signup.request(
                session, site.settings, keys, email="b@example.com", name=None,
                client_host=f"192.0.2.{minutes}", now=start + timedelta(minutes=minutes),
            )  # fmt: skip
        sent.append(mail is not None)
    # 15 minutes, then 30, then 60 between mails.
    assert sent == [True, False, True, False, True, False, True]


def test_a_client_is_limited_per_hour(
    env: dict[str, str], engine: Engine, smtp_server: SmtpServer, factory: sessionmaker[Session]
) -> None:
    site = start_site(env, engine, smtp_server, NEWSLETTER_SIGNUP_CLIENT_HOURLY_LIMIT="2")
    try:
        assert sign_up(site, "a@example.com").status_code == 200
        assert sign_up(site, "b@example.com").status_code == 200
        refused = sign_up(site, "c@example.com")
        assert refused.status_code == 429
        assert "Even rustig aan" in refused.text
        assert subscriber(factory, "c@example.com") is None
        site.wait_for_mail(2)
    finally:
        site.live.stop()


def test_the_honeypot_gets_the_same_page_and_nothing_else(
    site: Site, factory: sessionmaker[Session]
) -> None:
    response = sign_up(site, "robot@example.com", website="http://spam.example")
    assert response.status_code == 200 and "Kijk in je mailbox" in response.text
    assert subscriber(factory, "robot@example.com") is None
    assert site.smtp.received == []


def test_a_bad_address_is_explained_on_the_form(site: Site, factory: sessionmaker[Session]) -> None:
    for email, name in [("anna@@example", ""), ("", ""), ("x@example.com", "Eva\r\nBcc: y")]:
        response = sign_up(site, email, name)
        assert response.status_code == 400
        assert 'method="post"' in response.text
        assert "<script" not in response.text
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 0
    assert site.smtp.received == []


# --- CSRF -------------------------------------------------------------------------------------


def test_a_post_without_the_forms_token_and_cookie_only_shows_the_form_again(
    site: Site, factory: sessionmaker[Session]
) -> None:
    keys = site.settings.secret_keys()
    nonce = new_token_id()
    good = sign(keys, Purpose.CSRF, nonce, datetime.now(UTC) + timedelta(hours=1))
    attempts = [
        ({"email": "a@example.com"}, {}),  # a bare cross-site post
        ({"email": "a@example.com", "csrf_token": good}, {}),  # token, no cookie
        ({"email": "a@example.com", "csrf_token": good}, {CSRF_COOKIE: new_token_id()}),
        ({"email": "a@example.com", "csrf_token": "x" * 43}, {CSRF_COOKIE: nonce}),
        (
            {"email": "a@example.com",
             "csrf_token": sign(keys, Purpose.CSRF, nonce, datetime.now(UTC) - timedelta(seconds=1))},
            {CSRF_COOKIE: nonce},
        ),  # expired
        (
            {"email": "a@example.com",
             "csrf_token": sign([b"another-secret-key-entirely!"], Purpose.CSRF, nonce)},
            {CSRF_COOKIE: nonce},
        ),  # signed with a key we do not hold
    ]  # fmt: skip
    for data, cookies in attempts:
        with httpx.Client(cookies=cookies) as client:
            response = client.post(f"{site.url}/aanmelden", data=data)
        assert response.status_code == 400, data
        assert "stond al een tijdje open" in response.text
        assert 'value="a@example.com"' in response.text  # nothing typed is lost
    assert subscriber(factory, "a@example.com") is None
    # The page it shows carries a fresh token and cookie: pressing again works.
    with httpx.Client() as client:
        again = client.post(f"{site.url}/aanmelden", data={"email": "a@example.com"})
        retry = client.post(
            f"{site.url}/aanmelden",
            data={"email": "a@example.com", "csrf_token": form_token(again.text)},
        )
    assert retry.status_code == 200 and "Kijk in je mailbox" in retry.text


# --- confirming -------------------------------------------------------------------------------


def test_get_on_the_confirmation_link_changes_nothing_and_post_confirms(
    site: Site, factory: sessionmaker[Session]
) -> None:
    sign_up(site, "anna@example.com", "Anna")
    [mail] = site.wait_for_mail(1)
    url = link_in(mail, f"{site.url}/bevestig/")
    for _ in range(2):
        page = httpx.get(url, headers=SCANNER)
        assert page.status_code == 200
        assert 'method="post"' in page.text and "submit()" not in page.text
        assert "Ja, ik meld me aan" in page.text
        assert httpx.head(url, headers=SCANNER).status_code == 200
    found = subscriber(factory, "anna@example.com")
    assert found is not None and found.status is SubscriberStatus.PENDING
    assert found.confirmed_at is None

    done = confirm(site, url)
    assert done.status_code == 200 and "Je bent aangemeld" in done.text
    found = subscriber(factory, "anna@example.com")
    assert found is not None and found.status is SubscriberStatus.SUBSCRIBED
    assert found.confirmed_at is not None and found.source == "form"
    assert [e.event for e in events(factory, found.id)] == [
        ConsentEventKind.REQUESTED,
        ConsentEventKind.CONFIRMED,
    ]
    # Pressing again, or opening the link again, is harmless: the link has been used.
    again = confirm(site, url)
    assert again.status_code == 200 and "Deze link is al gebruikt" in again.text
    assert "Deze link is al gebruikt" in httpx.get(url).text
    assert len(events(factory, found.id)) == 2


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_bad_confirmation_links_get_404_and_change_nothing(
    site: Site, factory: sessionmaker[Session], method: str
) -> None:
    sign_up(site, "anna@example.com")
    [mail] = site.wait_for_mail(1)
    url = link_in(mail, f"{site.url}/bevestig/")
    found = subscriber(factory, "anna@example.com")
    assert found is not None
    keys = site.settings.secret_keys()
    middle = len(url) - 20
    bad = [
        url[:middle] + ("A" if url[middle] != "A" else "B") + url[middle + 1 :],  # tampered
        url[:-1] + ("A" if url[-1] != "A" else "B"),  # a changed last character
        url + "x",
        f"{site.url}/bevestig/"
        + sign(keys, Purpose.CONFIRM, found.token_id, datetime.now(UTC) - timedelta(seconds=5)),
        f"{site.url}/bevestig/" + sign(keys, "unsubscribe", found.token_id),  # wrong purpose
        f"{site.url}/bevestig/%00%ff",
        f"{site.url}/bevestig/" + "A" * 300,
    ]
    for link in bad:
        response = httpx.request(method, link)
        assert response.status_code == 404, link
        assert "werkt niet" in response.text
    # A genuine link for no open sign-up says so, calmly, and confirms nothing: an unknown id,
    # or the reader's own id (links carry the sign-up's nonce, never the reader's id).
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    for token_id in (new_token_id(), found.token_id):
        unknown = sign(keys, Purpose.CONFIRM, token_id, tomorrow)
        response = httpx.request(method, f"{site.url}/bevestig/{unknown}")
        assert response.status_code == 200 and "al gebruikt" in response.text
    found = subscriber(factory, "anna@example.com")
    assert found is not None and found.status is SubscriberStatus.PENDING


def test_a_confirmation_link_expires_after_the_configured_days(
    site: Site, factory: sessionmaker[Session]
) -> None:
    keys = site.settings.secret_keys()
    now = datetime.now(UTC)
    with factory() as session, session.begin():
        mail = signup.request(
            session, site.settings, keys, email="c@example.com", name=None,
            client_host="192.0.2.1", now=now - timedelta(days=7, minutes=1),
        )  # fmt: skip
    assert mail is not None
    assert httpx.post(mail.url.replace(site.settings.base_url, site.url)).status_code == 404
    with factory() as session, session.begin():
        fresh = signup.request(
            session, site.settings, keys, email="c@example.com", name=None,
            client_host="192.0.2.1", now=now - timedelta(days=6, hours=23),
        )  # fmt: skip
    assert fresh is not None
    assert httpx.post(fresh.url.replace(site.settings.base_url, site.url)).status_code == 200


def test_an_absent_relay_changes_nothing_on_the_page(
    env: dict[str, str],
    engine: Engine,
    smtp_server: SmtpServer,
    factory: sessionmaker[Session],
    caplog: pytest.LogCaptureFixture,
) -> None:
    site = start_site(
        env, engine, smtp_server, NEWSLETTER_SMTP_URL=f"smtp://127.0.0.1:{free_port()}"
    )
    try:
        with caplog.at_level(logging.WARNING, logger="newsletter.readers.signup"):
            response = sign_up(site, "anna@example.com")
            deadline = datetime.now(UTC) + timedelta(seconds=10)
            while "not sent" not in caplog.text and datetime.now(UTC) < deadline:
                time.sleep(0.02)
        assert response.status_code == 200 and "Kijk in je mailbox" in response.text
        assert "sign-up mail for subscriber" in caplog.text and "not sent" in caplog.text
        assert "anna@example.com" not in caplog.text  # logs name the row, not the person
        found = subscriber(factory, "anna@example.com")
        assert found is not None and found.status is SubscriberStatus.PENDING
    finally:
        site.live.stop()


def test_the_outbox_takes_the_mail_when_there_is_no_relay(
    env: dict[str, str], engine: Engine, tmp_path: object
) -> None:
    from pathlib import Path

    from newsletter.web.app import create_app
    from tests.support.databases import settings_from
    from tests.support.servers import serve_app

    port = free_port()
    settings = settings_from({**env, "NEWSLETTER_BASE_URL": f"http://127.0.0.1:{port}"})
    live = serve_app(create_app(settings, engine), port)
    try:
        assert sign_up(live, "anna@example.com").status_code == 200
        outbox = Path(env["NEWSLETTER_OUTBOX_DIR"])
        deadline = datetime.now(UTC) + timedelta(seconds=10)
        while not list(outbox.glob("*.eml")) and datetime.now(UTC) < deadline:
            time.sleep(0.02)
        [eml] = list(outbox.glob("*.eml"))
        assert b"/bevestig/" in eml.read_bytes()
    finally:
        live.stop()


# --- bodies, methods, headers -----------------------------------------------------------------


def test_oversized_and_malformed_bodies_are_refused(
    site: Site, factory: sessionmaker[Session]
) -> None:
    big = b"email=a%40example.com&name=" + b"x" * 20_000
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    response = httpx.post(f"{site.url}/aanmelden", content=big, headers=form)
    assert response.status_code == 413 and "te veel" in response.text

    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b"x" * 1000

    streamed = httpx.post(f"{site.url}/aanmelden", content=chunks(), headers=form)
    assert streamed.status_code == 413
    broken = httpx.post(
        f"{site.url}/aanmelden",
        content=b"--zzz\r\nContent-Disposition: form-data; name=\r\n\r\nx",
        headers={"Content-Type": "multipart/form-data; boundary=zzz"},
    )
    assert broken.status_code == 400
    no_boundary = httpx.post(
        f"{site.url}/aanmelden", content=b"x", headers={"Content-Type": "multipart/form-data"}
    )
    assert no_boundary.status_code == 400
    for content, ctype in [
        (b'{"email": "a@example.com"}', "application/json"),
        (b"\xff\xfe\x00email=%ff%fe", "application/x-www-form-urlencoded"),
        (b"&&&===&", "application/x-www-form-urlencoded"),
    ]:
        response = httpx.post(
            f"{site.url}/aanmelden", content=content, headers={"Content-Type": ctype}
        )
        assert response.status_code == 400, content
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Subscriber)) == 0


def test_other_methods_and_unknown_paths_get_dutch_pages_with_the_headers(site: Site) -> None:
    cases = [
        ("PUT", "/aanmelden", 405),
        ("DELETE", "/bevestig/abc", 405),
        ("GET", "/bestaat-niet", 404),
        ("GET", "/aanmelden", 200),
        ("GET", "/static/style.css", 200),
    ]
    for method, path, status in cases:
        response = httpx.request(method, site.url + path)
        assert response.status_code == status, (method, path)
        assert response.headers["referrer-policy"] == "no-referrer"
        csp = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src" not in csp
        assert "'unsafe-inline'" not in csp
        if status != 200:
            assert '<html lang="nl"' in response.text


# --- purge --------------------------------------------------------------------------------


def test_unconfirmed_sign_ups_are_purged_after_30_days(
    site: Site, factory: sessionmaker[Session], engine: Engine
) -> None:
    keys = site.settings.secret_keys()
    now = datetime.now(UTC)
    for email, age in [("oud@example.com", 31), ("jong@example.com", 29)]:
        with factory() as session, session.begin():
            signup.request(
                session, site.settings, keys, email=email, name=None, client_host="192.0.2.9",
                now=now - timedelta(days=age),
            )  # fmt: skip
    site.cli("subscribers", "add", "lid@example.com", "--consent", "test")
    jobs = Jobs(engine, factory, site.settings)
    jobs.purge_unconfirmed()
    assert subscriber(factory, "oud@example.com") is None
    assert subscriber(factory, "jong@example.com") is not None
    assert subscriber(factory, "lid@example.com") is not None
    with factory() as session:
        orphans = session.scalar(
            select(func.count())
            .select_from(ConsentEvent)
            .where(ConsentEvent.subscriber_id.is_(None))
        )
        assert orphans == 0
    scheduler = build_scheduler(jobs, site.settings)
    assert scheduler.get_job(PURGE_JOB_ID) is not None
