"""A real browser through a reader's whole life: sign up, confirm, read, leave, come back.

Chromium is Debian's (/usr/bin/chromium), driven by Playwright; nothing is downloaded. Each page
is kept as a screenshot at phone and desktop size in test-artifacts/screenshots/.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.storage.models import Subscriber, SubscriberStatus
from tests.support.issue_files import write_issue
from tests.support.relays import Received, body_of
from tests.support.servers import Site

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
SIZES = {"phone": (390, 844), "desktop": (1280, 900)}
SUNDAYS = ["2026-11-29T07:00", "2026-12-06T07:00", "2026-12-13T07:00"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (make browser)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(locale="nl-NL", viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        # A page that is itself a 404 (a bad link, on purpose) logs that; anything else counts.
        if message.type == "error" and message.location.get("url") != opened.url:
            problems.append(f"{message.text} ({message.location.get('url')})")

    opened.on("console", on_console)
    opened.on("pageerror", lambda e: problems.append(str(e)))
    try:
        yield opened
    finally:
        context.close()
    assert problems == [], f"the browser reported: {problems}"  # e.g. a CSP violation


def shoot(page: Page, name: str) -> None:
    """Keep the page as it looks on a phone and on a desktop."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for size, (width, height) in SIZES.items():
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(SHOTS / f"{name}-{size}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})


def html_link(mail: Received, text: str) -> str:
    """The href of the link or button in the mail's HTML whose text contains `text`."""
    html = body_of(mail.message, "html")
    for match in re.finditer(r'<a [^>]*href="([^"]+)"[^>]*>(.*?)</a>', html, re.S):
        if text in re.sub(r"<[^>]+>|\s+", " ", match.group(2)):
            return match.group(1).replace("&amp;", "&")
    raise AssertionError(f"no link with {text!r} in the mail")


def status_of(factory: sessionmaker[Session], email: str) -> SubscriberStatus | None:
    with factory() as session:
        return session.scalar(select(Subscriber.status).where(Subscriber.email_key == email))


def test_sign_up_confirm_receive_leave_and_come_back(
    page: Page, site: Site, factory: sessionmaker[Session], tmp_path: Path
) -> None:
    folder = tmp_path / "issues"
    letters = [
        write_issue(folder, "een", theme="loslaten", subject="Open handen"),
        write_issue(folder, "twee", theme="vasthouden", subject="Wat draagt je"),
        write_issue(folder, "drie", theme="zachtheid", subject="Zacht voor jezelf"),
    ]
    site.cli("issues", "queue", *map(str, letters))
    site.cli("subscribers", "add", "bram@example.com", "--consent", "test")

    # Sign up in the form.
    page.goto(f"{site.url}/aanmelden")
    expect(page.locator("h1")).to_have_text("Ontvang wekelijks een moment van rust")
    trap = page.locator("#website").bounding_box()  # the honeypot stays out of sight
    assert trap is not None and trap["x"] + trap["width"] <= 0
    shoot(page, "01-aanmelden")
    page.emulate_media(color_scheme="dark")
    shoot(page, "01-aanmelden-donker")
    page.emulate_media(color_scheme="light")
    # An address the browser lets through but the server refuses: said kindly, nothing lost.
    page.get_by_label("Je e-mailadres").fill("lotte@localhost")
    page.get_by_role("button", name="Aanmelden").click()
    expect(page.get_by_role("alert")).to_contain_text("lijkt niet helemaal te kloppen")
    expect(page.get_by_label("Je e-mailadres")).to_have_value("lotte@localhost")
    shoot(page, "01-aanmelden-fout")
    page.get_by_label("Je e-mailadres").fill("lotte@example.com")
    page.get_by_label("Je voornaam").fill("Lotte")
    page.get_by_role("button", name="Aanmelden").click()
    expect(page.locator("h1")).to_have_text("Kijk in je mailbox")
    shoot(page, "02-kijk-in-je-mailbox")
    assert status_of(factory, "lotte@example.com") is SubscriberStatus.PENDING

    # The confirmation mail arrives; its button leads to a page with a button.
    [confirmation] = site.wait_for_mail(1)
    assert confirmation.rcpt_tos == ["lotte@example.com"]
    page.goto(html_link(confirmation, "Aanmelding bevestigen"))
    expect(page.locator("h1")).to_have_text("Nog één stap")
    shoot(page, "03-bevestigen")
    assert status_of(factory, "lotte@example.com") is SubscriberStatus.PENDING
    page.get_by_role("button", name="Ja, ik meld me aan").click()
    expect(page.locator("h1")).to_have_text("Welkom")
    shoot(page, "04-welkom")
    assert status_of(factory, "lotte@example.com") is SubscriberStatus.SUBSCRIBED
    welcome = site.wait_for_mail(2)[1]  # the welcome mail (tests/test_welcome.py)
    assert welcome.rcpt_tos == ["lotte@example.com"]

    # The next edition reaches her.
    site.cli("send", "--now", SUNDAYS[0])
    first = [m for m in site.wait_for_mail(4)[2:] if m.rcpt_tos == ["lotte@example.com"]]
    assert len(first) == 1 and first[0].message["Subject"] == "Open handen"
    assert "Hallo Lotte," in body_of(first[0].message, "plain")

    # She leaves from the letter's link, with the button on the page.
    page.goto(html_link(first[0], "Afmelden"))
    expect(page.locator("h1")).to_have_text("Afmelden")
    shoot(page, "05-afmelden-of-pauzeren")
    assert status_of(factory, "lotte@example.com") is SubscriberStatus.SUBSCRIBED
    page.get_by_role("button", name="Afmelden").click()
    expect(page.locator("h1")).to_have_text("Je bent afgemeld")
    shoot(page, "06-afgemeld")
    assert status_of(factory, "lotte@example.com") is SubscriberStatus.UNSUBSCRIBED

    # Nothing more arrives for her; Bram still gets his.
    site.cli("send", "--now", SUNDAYS[1])
    second = site.wait_for_mail(5)[4:]
    assert [m.rcpt_tos for m in second] == [["bram@example.com"]]

    # She comes back from the same page, and the week after the letter is there again.
    page.get_by_role("button", name="Toch weer ontvangen").click()
    expect(page.locator("h1")).to_have_text("Fijn dat je er weer bent")
    shoot(page, "07-weer-welkom")
    assert status_of(factory, "lotte@example.com") is SubscriberStatus.SUBSCRIBED
    site.cli("send", "--now", SUNDAYS[2])
    third = site.wait_for_mail(7)[5:]
    assert sorted(m.rcpt_tos[0] for m in third) == ["bram@example.com", "lotte@example.com"]


def test_the_letters_link_lets_a_reader_pause_or_leave(
    page: Page, site: Site, factory: sessionmaker[Session], tmp_path: Path
) -> None:
    site.cli("issues", "queue", str(write_issue(tmp_path / "issues", "een")))
    site.cli("subscribers", "add", "anna@example.com", "--name", "Anna", "--consent", "test")
    site.cli("send", "--now", SUNDAYS[0])
    [letter] = site.wait_for_mail(1)

    page.goto(html_link(letter, "Afmelden"))
    page.get_by_label("Pauzeer").select_option("8")
    page.get_by_role("button", name="Pauzeren").click()
    expect(page.locator("h1")).to_have_text("Even pauze")
    shoot(page, "08-pauze")
    with factory() as session:
        anna = session.scalars(select(Subscriber)).one()
        assert anna.paused_until is not None and anna.status is SubscriberStatus.SUBSCRIBED

    page.goto(html_link(letter, "Afmelden"))
    expect(page.get_by_text("Je pauzeert tot")).to_be_visible()
    shoot(page, "09-gepauzeerd")
    page.get_by_role("button", name="Nu al weer ontvangen").click()
    expect(page.locator("h1")).to_have_text("De pauze is voorbij")
    shoot(page, "10-pauze-voorbij")

    page.goto(html_link(letter, "Afmelden"))
    page.get_by_role("button", name="Afmelden").click()
    expect(page.locator("h1")).to_have_text("Je bent afgemeld")
    assert status_of(factory, "anna@example.com") is SubscriberStatus.UNSUBSCRIBED

    page.goto(html_link(letter, "Afmelden")[:-6] + "AAAAAA")
    expect(page.locator("h1")).to_have_text("Deze link werkt niet")
    shoot(page, "11-link-werkt-niet")
    page.goto(f"{site.url}/bevestig/verlopen")
    shoot(page, "12-bevestiglink-werkt-niet")
