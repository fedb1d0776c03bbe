"""The letter's sign-off and footer: the author's name, no name said twice, 'Afmelden of
pauzeren', and a pause link that opens the page with pausing first."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.support.cli import Cli
from tests.support.issue_files import write_issue
from tests.support.relays import Received, SmtpServer, body_of
from tests.support.servers import Site

DEFAULT_FROM = "Wekelijks moment van rust <nieuwsbrief@example.org>"


def send_one(cli: Cli, tmp_path: Path, smtp: SmtpServer, **env: str) -> Received:
    cli("issues", "queue", str(write_issue(tmp_path / "issues", "een")))
    cli("subscribers", "add", "anna@example.com", "--name", "Anna")
    cli("send", "--now", "2025-11-02T07:00", env={"NEWSLETTER_SMTP_URL": smtp.url, **env})
    (item,) = smtp.received
    return item


def visible(html: str) -> str:
    body = re.sub(r"<style.*?</style>|<!--.*?-->", " ", html.split("<body", 1)[1], flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))


def test_with_the_default_names_the_footer_says_each_name_once(
    cli: Cli, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    # The built-in From is refused with a relay, except in demo mode (a trial on one machine).
    item = send_one(cli, tmp_path, smtp_server, NEWSLETTER_FROM=DEFAULT_FROM, NEWSLETTER_DEMO="on")
    html = visible(body_of(item.message, "html"))
    text = re.sub(r"\s+", " ", body_of(item.message, "plain"))
    for part in (html, text):
        assert "van Wekelijks moment van rust omdat" not in part
        assert "Je krijgt deze wekelijkse brief omdat je je voor Wekelijks moment van rust" in part
        assert "Met warme groet, Wekelijks moment van rust" in part


def test_the_author_signs_and_the_sender_is_named_when_it_is_someone_else(
    cli: Cli, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    item = send_one(cli, tmp_path, smtp_server, NEWSLETTER_AUTHOR_NAME="Marieke de Wit")
    html = visible(body_of(item.message, "html"))
    assert "Met warme groet, Marieke de Wit" in html
    assert "brief van Zachte Zondag omdat je je voor Wekelijks moment van rust" in html


def test_afmelden_of_pauzeren_and_the_pause_link_puts_pausing_first(
    site: Site, tmp_path: Path
) -> None:
    site.cli("issues", "queue", str(write_issue(tmp_path / "issues", "een")))
    site.cli("subscribers", "add", "anna@example.com", "--name", "Anna", "--consent", "test")
    site.cli("send", "--now", "2025-11-02T07:00")
    [letter] = site.wait_for_mail(1)
    url = re.fullmatch(r"<(.+)>", letter.message["List-Unsubscribe"])
    assert url is not None
    leave = url.group(1)
    html = body_of(letter.message, "html")
    assert f'<a href="{leave}">Afmelden</a> of <a href="{leave}?pauzeren">pauzeren</a>' in html
    assert "één klik" not in visible(html)

    first = httpx.get(leave).text
    assert first.index("<h1>Afmelden</h1>") < first.index("Liever even niets")
    paused = httpx.get(f"{leave}?pauzeren").text
    assert "<h1>Even pauzeren</h1>" in paused and "<h1>Afmelden</h1>" not in paused
    assert paused.index('name="weken"') < paused.index("Of liever afmelden")
    assert paused.index("Of liever afmelden") < paused.index('value="One-Click"')
