"""The welcome after confirming: it reaches a real relay once, from a confirmation in Chromium."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.storage.models import Subscriber, SubscriberStatus
from tests.support.browsers import chromium, watched_page
from tests.support.issue_files import write_issue
from tests.support.readers import link_in, sign_up
from tests.support.relays import Received, SmtpServer, body_of
from tests.support.servers import Site, start_site

PAST = "2025-11-02T07:00"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def subjects(mails: list[Received]) -> list[str]:
    return [str(m.message["Subject"]) for m in mails]


def welcomed_at(factory: sessionmaker[Session], email: str) -> list[object]:
    with factory() as session:
        return list(
            session.scalars(select(Subscriber.welcomed_at).where(Subscriber.email == email))
        )


@pytest.mark.browser
def test_the_welcome_arrives_once_after_a_confirmation_in_the_browser(
    browser: Browser, site: Site, factory: sessionmaker[Session], tmp_path: Path
) -> None:
    site.cli("issues", "queue", str(write_issue(tmp_path / "issues", "een-open-hand")))
    site.cli("send", "--now", PAST)  # a letter in the archive; nobody on the list yet
    with watched_page(browser) as page:
        page.goto(f"{site.url}/aanmelden")
        page.get_by_label("Je e-mailadres").fill("lotte@example.com")
        page.get_by_label("Je voornaam").fill("Lotte")
        page.get_by_role("button", name="Aanmelden").click()
        expect(page.locator("h1")).to_have_text("Kijk in je mailbox")
        [confirmation] = site.wait_for_mail(1)
        confirm_url = link_in(confirmation, f"{site.url}/bevestig/")
        page.goto(confirm_url)
        page.get_by_role("button", name="Ja, ik meld me aan").click()
        expect(page.locator("h1")).to_have_text("Welkom")
        welcome = site.wait_for_mail(2)[1]
        # Back to the link: it was used; the button's POST sent once more welcomes no one.
        page.go_back()
        expect(page.locator("h1")).to_have_text("Deze link is al gebruikt")
        assert page.request.post(confirm_url).status == 200

    assert welcome.rcpt_tos == ["lotte@example.com"]
    assert welcome.message["Subject"] == "Welkom bij Wekelijks moment van rust"
    text = body_of(welcome.message, "plain").replace("\r\n", "\n")
    html = body_of(welcome.message, "html")
    letter = f"{site.url}/archief/een-open-hand"
    assert "Hallo Lotte," in text and "Hallo Lotte," in html
    assert (
        "De laatste brief heette ‘Een open hand’; je\nkunt hem online lezen:\n" + letter + "\n"
        in text
    )
    assert f'href="{letter}"' in html and "Lees de laatste brief" in html
    leave = link_in(welcome, f"{site.url}/afmelden/")
    assert httpx.get(leave).status_code == 200  # how to leave: the reader's own page
    assert f'href="{leave}?pauzeren"' in html
    assert welcome.data.isascii()

    # Another mail to her after that (she signs up once more: "already on the list") comes
    # next; no second welcome came before it.
    sign_up(site, "lotte@example.com")
    mails = site.wait_for_mail(3)
    assert subjects(mails)[2].startswith("Je staat al op de lijst")
    assert subjects(site.smtp.received).count("Welkom bij Wekelijks moment van rust") == 1
    assert len(welcomed_at(factory, "lotte@example.com")) == 1


def test_no_welcome_when_it_is_off_and_none_for_readers_added_by_the_operator(
    env: dict[str, str], engine: Engine, smtp_server: SmtpServer, factory: sessionmaker[Session]
) -> None:
    site = start_site(env, engine, smtp_server, NEWSLETTER_WELCOME="off")
    try:
        sign_up(site, "lotte@example.com", "Lotte")
        [confirmation] = site.wait_for_mail(1)
        confirmed = httpx.post(link_in(confirmation, f"{site.url}/bevestig/"))
        assert confirmed.status_code == 200 and "Welkom" in confirmed.text
        site.cli("subscribers", "add", "bram@example.org", "--consent", "test")
        sign_up(site, "lotte@example.com")
        mails = site.wait_for_mail(2)
    finally:
        site.live.server.should_exit = True
        site.live.thread.join(timeout=10)
    assert [m.rcpt_tos for m in mails] == [["lotte@example.com"], ["lotte@example.com"]]
    assert "Welkom bij" not in " ".join(subjects(smtp_server.received))
    with factory() as session:
        lotte = session.scalars(
            select(Subscriber).where(Subscriber.email == "lotte@example.com")
        ).one()
        assert lotte.status is SubscriberStatus.SUBSCRIBED and lotte.welcomed_at is None


def test_a_reader_who_left_and_signs_up_again_is_not_welcomed_twice(site: Site) -> None:
    sign_up(site, "anna@example.com", "Anna")
    httpx.post(link_in(site.wait_for_mail(1)[0], f"{site.url}/bevestig/"))
    assert subjects(site.wait_for_mail(2))[1].startswith("Welkom")
    site.cli("subscribers", "unsubscribe", "anna@example.com")
    sign_up(site, "anna@example.com")
    again = site.wait_for_mail(3)[2]
    assert re.search(r"Bevestig je aanmelding", str(again.message["Subject"]))
    httpx.post(link_in(again, f"{site.url}/bevestig/"))
    sign_up(site, "anna@example.com")  # a mail that must come after any welcome would
    last = site.wait_for_mail(4)[3]
    assert str(last.message["Subject"]).startswith("Je staat al op de lijst")
    assert subjects(site.smtp.received).count("Welkom bij Wekelijks moment van rust") == 1
