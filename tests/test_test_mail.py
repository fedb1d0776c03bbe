"""`issues test`: the letter in the author's own mailbox, as a reader gets it on its Sunday.

It arrives at a real relay with the date the queue plans, `[Proef]` before the subject, the
greeting and the footer; nothing is stored; its links open a page that changes nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.settings import Settings
from newsletter.storage.models import ConsentEvent, Delivery, Edition, Issue, Subscriber
from tests.support.cli import Cli
from tests.support.issue_files import write_issue
from tests.support.relays import SmtpServer, body_of
from tests.support.servers import LiveServer

BASE = "https://nieuws.example.nl"


def counts(factory: sessionmaker[Session]) -> tuple[int, ...]:
    with factory() as session:
        return tuple(
            session.scalar(select(func.count()).select_from(table)) or 0
            for table in (Edition, Delivery, Issue, ConsentEvent)
        )


def test_the_test_mail_arrives_with_its_planned_sunday_and_stores_nothing(
    cli: Cli, tmp_path: Path, smtp_server: SmtpServer, factory: sessionmaker[Session]
) -> None:
    folder = tmp_path / "issues"
    first = write_issue(folder, "a-los", theme="loslaten", subject="Open handen")
    second = write_issue(
        folder, "b-vast", theme="vasthouden", subject="Wat draagt je: een anker"
    ).read_text(encoding="utf-8")
    # A colon in the subject needs quotes in YAML; the letter shows it as written.
    second_path = folder / "b-vast.md"
    second_path.write_text(
        second.replace("subject: Wat draagt je: een anker", "subject: 'Wat draagt je: een anker'"),
        encoding="utf-8",
    )
    cli("issues", "queue", str(first), str(second_path))
    cli("subscribers", "add", "lezer@example.com", "--name", "Lezer")
    before = counts(factory)
    relay = {
        "NEWSLETTER_SMTP_URL": smtp_server.url,
        "NEWSLETTER_AUTHOR_EMAIL": "auteur@example.org",
    }

    # On Tuesday 24 November: a-los goes out on the 29th, b-vast (next theme) on 6 December.
    out = cli("issues", "test", str(second_path), "--name", "Marieke", "--now",
              "2026-11-24T10:00", env=relay).stdout  # fmt: skip
    assert "dated zondag 6 december 2026 (the date the queue plans it for)" in out
    (mail,) = smtp_server.received
    assert mail.rcpt_tos == ["auteur@example.org"]
    message = mail.message
    assert message["Subject"] == "[Proef] Wat draagt je: een anker"
    assert message["To"] == "Marieke <auteur@example.org>"
    text, html = body_of(message, "plain"), body_of(message, "html")
    for part in (text, html):
        assert "zondag 6 december 2026" in part
        assert "Hallo Marieke," in part
        assert "Lezer" not in part  # no reader's data in it
    assert "Afmelden, of een paar weken pauzeren:" in text
    link = re.fullmatch(r"<(\S+)>", message["List-Unsubscribe"])
    assert link and link.group(1).startswith(f"{BASE}/proefmail/")
    assert link.group(1) in text and f"{link.group(1)}?pauzeren" in html
    assert message.get_all("List-Unsubscribe-Post") == ["List-Unsubscribe=One-Click"]
    assert counts(factory) == before, "a test mail stores nothing: no edition, no delivery"

    # The first Sunday's letter is still the one the rotation chose.
    plan = cli("issues", "plan", "--weeks", "2", "--now", "2026-11-24T10:00").stdout
    assert plan.index("Open handen") < plan.index("Wat draagt je")


def test_a_pinned_issue_is_tested_on_its_pinned_date_and_a_new_file_as_if_queued_now(
    cli: Cli, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    folder = tmp_path / "issues"
    queued = [write_issue(folder, f"los-{n}", theme="loslaten") for n in range(2)]
    cli("issues", "queue", *map(str, queued))
    relay = {"NEWSLETTER_SMTP_URL": smtp_server.url}
    cli("issues", "pin", "los-1", "--date", "2027-03-07", "--now", "2026-11-24T10:00")
    out = cli("issues", "test", str(queued[1]), "--to", "ik@example.org",
              "--now", "2026-11-24T10:00", env=relay).stdout  # fmt: skip
    assert "dated zondag 7 maart 2027 (the date it is pinned to)" in out
    # Not queued yet: planned as if queued now, after los-0 (29 Nov) in the only theme queued.
    new = write_issue(folder, "los-nieuw", theme="loslaten")
    out = cli("issues", "test", str(new), "--to", "ik@example.org",
              "--now", "2026-11-24T10:00", env=relay).stdout  # fmt: skip
    assert "dated zondag 6 december 2026" in out
    assert [m.message["Subject"] for m in smtp_server.received] == ["[Proef] Een open hand"] * 2
    cli("issues", "list")  # the queue is as it was: los-nieuw was never queued
    assert "los-nieuw" not in cli("issues", "list").stdout


def test_its_links_open_a_page_that_says_it_was_a_test_and_changes_nothing(
    cli: Cli,
    tmp_path: Path,
    live_app: LiveServer,
    factory: sessionmaker[Session],
) -> None:
    issue = write_issue(tmp_path / "issues", "een")
    cli("subscribers", "add", "auteur@example.org", "--name", "Auteur")  # she reads it too
    cli("issues", "test", str(issue), env={"NEWSLETTER_AUTHOR_EMAIL": "auteur@example.org"})
    (eml,) = (tmp_path / "outbox").glob("*.eml")
    link = re.search(rb"List-Unsubscribe: <(\S+)>", eml.read_bytes())
    assert link is not None
    url = link.group(1).decode().replace(BASE, live_app.url)
    before = counts(factory)
    with httpx.Client() as browser:
        page = browser.get(url)
        assert page.status_code == 200 and "Dit was een proefmail" in page.text
        assert "Er is niets veranderd" in page.text
        paused = browser.get(url + "?pauzeren")
        assert "pauzeren" in paused.text and "Dit was een proefmail" in paused.text
        one_click = browser.post(url, data={"List-Unsubscribe": "One-Click"})
        assert one_click.status_code == 200 and "Dit was een proefmail" in one_click.text
        forged = browser.get(url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB"))
        assert forged.status_code == 404
    assert counts(factory) == before
    with factory() as session:
        (reader,) = session.scalars(select(Subscriber))
        assert reader.status.value == "subscribed" and reader.paused_until is None


def test_without_an_address_it_says_where_to_set_one(cli: Cli, tmp_path: Path) -> None:
    issue = write_issue(tmp_path / "issues", "een")
    result = cli("issues", "test", str(issue), code=1)
    assert "NEWSLETTER_AUTHOR_EMAIL" in result.stderr and "--to" in result.stderr
    bad = cli("issues", "test", str(issue), "--to", "geen adres", code=2)
    assert "--to" in bad.stderr
    assert not (tmp_path / "outbox").exists()


def test_a_bad_author_address_is_refused_at_the_door(cli: Cli, settings: Settings) -> None:
    result = cli("issues", "list", code=1, NEWSLETTER_AUTHOR_EMAIL="auteur@")
    assert "NEWSLETTER_AUTHOR_EMAIL" in result.stderr
